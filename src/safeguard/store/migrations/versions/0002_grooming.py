"""grooming detection state

Revision ID: 0002_grooming
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_grooming"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "grooming_conversations",
        sa.Column("conversation_id", sa.String(length=200), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("risk", sa.Float(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id"),
    )
    op.create_index("ix_grooming_conversations_risk", "grooming_conversations", ["risk"])
    op.create_index("ix_grooming_conversations_updated_at", "grooming_conversations", ["updated_at"])
    op.create_table(
        "grooming_users",
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("risk", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_index("ix_grooming_users_risk", "grooming_users", ["risk"])
    op.create_index("ix_grooming_users_updated_at", "grooming_users", ["updated_at"])
    op.create_table(
        "grooming_messages",
        sa.Column("conversation_id", sa.String(length=200), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=False),
        sa.Column("decision_id", sa.String(length=64), nullable=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "message_id"),
    )
    op.create_index("ix_grooming_messages_created", "grooming_messages", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_grooming_messages_created", table_name="grooming_messages")
    op.drop_table("grooming_messages")
    op.drop_index("ix_grooming_users_updated_at", table_name="grooming_users")
    op.drop_index("ix_grooming_users_risk", table_name="grooming_users")
    op.drop_table("grooming_users")
    op.drop_index("ix_grooming_conversations_updated_at", table_name="grooming_conversations")
    op.drop_index("ix_grooming_conversations_risk", table_name="grooming_conversations")
    op.drop_table("grooming_conversations")

"""live streams watched by the stream monitor

Revision ID: 0003_streams
Revises: 0002_grooming
Create Date: 2026-11-23 09:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_streams"
down_revision = "0002_grooming"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "streams",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("platform_stream_id", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("frames_sampled", sa.Integer(), nullable=False),
        sa.Column("last_frame_time", sa.Float(), nullable=True),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("decision_id", sa.String(length=64), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_streams_platform_stream_id"), ["platform_stream_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_streams_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_streams_status"))
        batch_op.drop_index(batch_op.f("ix_streams_platform_stream_id"))
    op.drop_table("streams")

"""exchange: banks shared with partner keys, subscriptions to partners' feeds, opinions sent back

Revision ID: 0012_exchange
Revises: 0012_statements
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_exchange"
down_revision = "0012_statements"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "exchange_shares",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("bank_id", sa.BigInteger(), sa.ForeignKey("banks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key_id", sa.BigInteger(), sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("bank_id", "key_id", name="uq_exchange_share"),
    )
    op.create_table(
        "exchange_subscriptions",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("remote_bank", sa.String(200), nullable=False),
        sa.Column("key_sealed", sa.Text(), nullable=False),
        sa.Column("public_key", sa.String(200), nullable=False),
        sa.Column("bank_id", sa.BigInteger(), sa.ForeignKey("banks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("cursor", sa.String(200), nullable=False, server_default=""),
        sa.Column("entries_applied", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("pages_applied", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("last_sync_at", TS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_code", sa.String(64), nullable=True),
        sa.Column("last_error_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "exchange_opinion_outbox",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("subscription", sa.String(64), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("signal_type", sa.String(32), nullable=False),
        sa.Column("value", sa.String(512), nullable=False),
        sa.Column("opinion", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
    )
    op.create_index("ix_exchange_outbox_status", "exchange_opinion_outbox", ["status", "id"], unique=False)
    op.create_table(
        "exchange_received_opinions",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("key_id", sa.BigInteger(), nullable=False),
        sa.Column("remote_id", sa.BigInteger(), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("key_id", "remote_id", name="uq_exchange_received_opinion"),
    )


def downgrade() -> None:
    op.drop_table("exchange_received_opinions")
    op.drop_index("ix_exchange_outbox_status", table_name="exchange_opinion_outbox")
    op.drop_table("exchange_opinion_outbox")
    op.drop_table("exchange_subscriptions")
    op.drop_table("exchange_shares")

"""drop bank_entries' (signal_type, value) index: no query needs it, and it cost a third of a bulk import

Every lookup of an entry by its value names the bank too, so the unique constraint's index
(bank_id, signal_type, value) answers it. The second index on random hash values was written for
every imported row: a 1M-row import took 62-66 s with it and 37-43 s without (bench/import_bench.py).

Revision ID: 0006_entry_value_ix
Revises: 0005_groom2
"""

from alembic import op

revision = "0006_entry_value_ix"
down_revision = "0005_groom2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain DROP INDEX (no batch mode: SQLite needs no table copy for it)
    op.drop_index("ix_entry_signal_value", table_name="bank_entries")


def downgrade() -> None:
    op.create_index("ix_entry_signal_value", "bank_entries", ["signal_type", "value"], unique=False)

"""streams.key_id: the API key that registered a stream, for the per-key limit on watched streams

Nullable: streams registered before this revision, and from the command line, belong to no key.

Revision ID: 0007b_stream_owner
Revises: 0006_entry_value_ix
"""

import sqlalchemy as sa
from alembic import op

revision = "0007b_stream_owner"
down_revision = "0007_tenants"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_streams_key_id"), ["key_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_streams_key_id"))
        batch_op.drop_column("key_id")

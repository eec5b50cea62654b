"""signed checkpoints of the event log; webhook secrets sealed, no longer copied into the outbox

- ``event_checkpoints``: signed heads of the event chain (``safeguard.ledger``).
- ``webhook_endpoints.secret`` becomes TEXT: it holds a sealed token (``safeguard.secrets``), longer
  than the plain secret. The migration cannot seal: the key lives in a file outside the database
  that migrations are not given. Plain secrets left by earlier versions are sealed when the service
  (or ``safeguard worker``) starts, or by ``safeguard secrets migrate``; until then the delivery
  worker refuses to use them (the delivery waits and is retried).
- ``outbox.endpoint_secret`` is dropped; ``outbox.endpoint_id`` names the endpoint whose secret signs
  the delivery (NULL: the default endpoint of the settings). Existing rows are matched to their
  endpoint by URL and secret, which are still both in the clear at this point.

Downgrading cannot unseal: ``outbox.endpoint_secret`` comes back holding the sealed token.

Revision ID: 0008_ledger
Revises: 0006_entry_value_ix
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_ledger"
down_revision = "0007b_stream_owner"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_checkpoints",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=100), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_event_checkpoints_created_at", "event_checkpoints", ["created_at"], unique=False)
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.alter_column("secret", existing_type=sa.String(length=200), type_=sa.Text(), existing_nullable=False)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("endpoint_id", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE outbox SET endpoint_id = (SELECT MIN(w.id) FROM webhook_endpoints w"
        " WHERE w.url = outbox.endpoint_url AND w.secret = outbox.endpoint_secret)"
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("endpoint_secret")
        batch_op.create_index("ix_outbox_endpoint", ["endpoint_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_endpoint")
        batch_op.add_column(sa.Column("endpoint_secret", sa.String(length=200), nullable=False, server_default=""))
    op.execute(
        "UPDATE outbox SET endpoint_secret = COALESCE((SELECT w.secret FROM webhook_endpoints w"
        " WHERE w.id = outbox.endpoint_id), '')"
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("endpoint_id")
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.alter_column("secret", existing_type=sa.Text(), type_=sa.String(length=200), existing_nullable=False)
    op.drop_index("ix_event_checkpoints_created_at", table_name="event_checkpoints")
    op.drop_table("event_checkpoints")

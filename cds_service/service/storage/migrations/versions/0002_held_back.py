"""Why a card was not shown: silent mode, a remembered dismissal (A22) or a repeat at order-sign (A21).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07

`silent` alone could not tell a site's silent mode (cards a site would have seen: what go-live monitoring counts)
from cards held back on purpose, so the analytics counted both as one.
"""

from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issued_cards") as batch:
        batch.add_column(sa.Column("held_back", sa.String(16), nullable=True))
    # Cards recorded silent before this revision could only have been silent-mode ones.
    op.execute("UPDATE issued_cards SET held_back = 'silent-mode' WHERE silent")


def downgrade() -> None:
    with op.batch_alter_table("issued_cards") as batch:
        batch.drop_column("held_back")

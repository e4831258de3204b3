"""Initial schema: issued cards and their findings, feedback, dismissals (A22), JWT replay entries.

Revision ID: 0001
Revises:
Create Date: 2026-12-06

Self-contained on purpose: the models will change, this revision must not.
"""

from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "issued_cards",
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("service_id", sa.String(200), nullable=False),
        sa.Column("hook", sa.String(64), nullable=False),
        sa.Column("stable_key", sa.String(200), nullable=False),
        sa.Column("indicator", sa.String(16), nullable=False),
        sa.Column("knowledge_version", sa.String(100), nullable=False),
        sa.Column("issuer", sa.String(500), nullable=True),
        sa.Column("tenant", sa.String(200), nullable=True),
        sa.Column("issued_at", UTC, nullable=False),
        sa.Column("iso_week", sa.String(8), nullable=False),
        sa.Column("patient_hash", sa.String(64), nullable=False),
        sa.Column("fhir_server_hash", sa.String(64), nullable=False),
        sa.Column("silent", sa.Boolean(), nullable=False),
        sa.Column("draft_order_key", sa.String(200), nullable=True),
        sa.Column("suggestion_uuids", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("uuid", name="pk_issued_cards"),
    )
    op.create_index("ix_issued_cards_issued_at", "issued_cards", ["issued_at"])
    op.create_index("ix_issued_cards_patient_hook_time", "issued_cards", ["patient_hash", "hook", "issued_at"])

    op.create_table(
        "card_findings",
        sa.Column("card_uuid", sa.String(36), nullable=False),
        sa.Column("rule_id", sa.String(16), nullable=False),
        sa.Column("finding_key", sa.String(200), nullable=False),
        sa.Column("severity_rank", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["card_uuid"], ["issued_cards.uuid"], name="fk_card_findings_card_uuid_issued_cards", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("card_uuid", "rule_id", "finding_key", name="pk_card_findings"),
    )
    op.create_index("ix_card_findings_rule_finding", "card_findings", ["rule_id", "finding_key"])

    op.create_table(
        "feedback",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("card_uuid", sa.String(128), nullable=False),
        sa.Column("service_id", sa.String(200), nullable=False),
        sa.Column("known_card", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("outcome_at", UTC, nullable=False),
        sa.Column("accepted_suggestions", sa.JSON(), nullable=False),
        sa.Column("override_code", sa.String(200), nullable=True),
        sa.Column("override_system", sa.String(500), nullable=True),
        sa.Column("override_display", sa.String(500), nullable=True),
        sa.Column("user_comment", sa.Text(), nullable=True),
        sa.Column("issuer", sa.String(500), nullable=True),
        sa.Column("tenant", sa.String(200), nullable=True),
        sa.Column("received_at", UTC, nullable=False),
        sa.Column("iso_week", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
        sa.UniqueConstraint("idempotency_key", name="uq_feedback_idempotency_key"),
    )
    op.create_index("ix_feedback_card_uuid", "feedback", ["card_uuid"])
    op.create_index("ix_feedback_received_at", "feedback", ["received_at"])

    op.create_table(
        "dismissals",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("patient_hash", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(16), nullable=False),
        sa.Column("finding_key", sa.String(200), nullable=False),
        sa.Column("severity_rank", sa.SmallInteger(), nullable=False),
        sa.Column("card_uuid", sa.String(36), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dismissals"),
        sa.UniqueConstraint("patient_hash", "rule_id", "finding_key", name="uq_dismissals_patient_rule_finding"),
    )
    op.create_index("ix_dismissals_expires_at", "dismissals", ["expires_at"])

    op.create_table(
        "replay_entries",
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("jti_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("issuer", "jti_hash", name="pk_replay_entries"),
    )
    op.create_index("ix_replay_entries_issuer_expires", "replay_entries", ["issuer", "expires_at"])


def downgrade() -> None:
    for table in ("replay_entries", "dismissals", "feedback", "card_findings", "issued_cards"):
        op.drop_table(table)

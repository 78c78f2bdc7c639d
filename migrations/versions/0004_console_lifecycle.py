"""conversation outcomes; counsellor capacity and availability; team out-of-office text;
audit log; second factor and invitations; canned responses; referrals

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        # Existing conversations start with no outcomes rather than NULL.
        batch.add_column(
            sa.Column("outcomes", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
    with op.batch_alter_table("counsellors") as batch:
        batch.add_column(sa.Column("capacity", sa.Integer(), nullable=False, server_default="5"))
        batch.add_column(
            sa.Column(
                "availability", sa.String(length=10), nullable=False, server_default="offline"
            )
        )
        batch.add_column(sa.Column("seen_at", core.db.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("totp_secret_sealed", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("totp_last_step", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("recovery_codes", sa.JSON(), nullable=True))
    with op.batch_alter_table("console_sessions") as batch:
        batch.add_column(
            sa.Column("mfa_passed", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("pending_totp_sealed", sa.LargeBinary(), nullable=True))
    op.create_table(
        "invitations",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", core.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", core.db.UTCDateTime(), nullable=False),
        sa.Column("used_at", core.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_invitations_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["counsellors.id"],
            name=op.f("fk_invitations_created_by_counsellors"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_invitations")),
    )
    with op.batch_alter_table("teams") as batch:
        batch.add_column(sa.Column("out_of_office", sa.JSON(), nullable=True))
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("at", core.db.UTCDateTime(), nullable=False),
        sa.Column("counsellor_id", sa.Uuid(), nullable=True),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["counsellor_id"],
            ["counsellors.id"],
            name=op.f("fk_audit_log_counsellor_id_counsellors"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_team_at", "audit_log", ["team_id", "at"], unique=False)
    op.create_table(
        "canned_responses",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_at", core.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_canned_responses_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_responses")),
    )
    op.create_index(
        "ix_canned_responses_team_language",
        "canned_responses",
        ["team_id", "language"],
        unique=False,
    )
    op.create_table(
        "referrals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("counsellor_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", core.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_referrals_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["counsellor_id"],
            ["counsellors.id"],
            name=op.f("fk_referrals_counsellor_id_counsellors"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
    )
    op.create_index(
        op.f("ix_referrals_conversation_id"), "referrals", ["conversation_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_referrals_conversation_id"), table_name="referrals")
    op.drop_table("referrals")
    op.drop_index("ix_canned_responses_team_language", table_name="canned_responses")
    op.drop_table("canned_responses")
    op.drop_table("invitations")
    with op.batch_alter_table("console_sessions") as batch:
        batch.drop_column("pending_totp_sealed")
        batch.drop_column("mfa_passed")
    op.drop_index("ix_audit_log_team_at", table_name="audit_log")
    op.drop_table("audit_log")
    with op.batch_alter_table("teams") as batch:
        batch.drop_column("out_of_office")
    with op.batch_alter_table("counsellors") as batch:
        batch.drop_column("recovery_codes")
        batch.drop_column("totp_last_step")
        batch.drop_column("totp_secret_sealed")
        batch.drop_column("seen_at")
        batch.drop_column("availability")
        batch.drop_column("capacity")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("outcomes")

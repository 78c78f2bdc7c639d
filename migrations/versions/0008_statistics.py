"""statistics: anonymous events, published reports, referral categories

The follow-up answers move into `stat_events` (unit "followup"), the one place the statistics
count from.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 13:30:00
"""

import json
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    events = op.create_table(
        "stat_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("unit", sa.String(length=20), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=True),
        sa.Column("federal_state", sa.String(length=2), nullable=True),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("outcomes", sa.JSON(), nullable=False),
        sa.Column("crisis", sa.Boolean(), nullable=True),
        sa.Column("found", sa.Boolean(), nullable=True),
        sa.Column("category", sa.String(length=20), nullable=True),
        sa.Column("answer", sa.String(length=20), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stat_events")),
    )
    with op.batch_alter_table("stat_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stat_events_month"), ["month"], unique=False)
    op.create_table(
        "stat_reports",
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("granularity", sa.String(length=10), nullable=False),
        sa.Column("starts", sa.String(length=7), nullable=False),
        sa.Column("ends", sa.String(length=7), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("period", name=op.f("pk_stat_reports")),
    )
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("category", sa.String(length=20), nullable=True))

    connection = op.get_bind()
    answers = connection.execute(
        sa.text("SELECT answer, topics, federal_state, month FROM followup_answers")
    ).all()
    if answers:
        op.bulk_insert(
            events,
            [
                {
                    "id": uuid.uuid4(),
                    "unit": "followup",
                    "month": row.month,
                    "federal_state": row.federal_state,
                    "topics": row.topics if isinstance(row.topics, list) else _json(row.topics),
                    "outcomes": [],
                    "answer": row.answer,
                }
                for row in answers
            ],
        )
    op.drop_table("followup_answers")


def _json(value: object) -> list[str]:
    # Read through plain SQL, JSON comes back as its text on both databases' drivers.
    return list(json.loads(value)) if isinstance(value, str) else []


def downgrade() -> None:
    op.create_table(
        "followup_answers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("answer", sa.String(length=20), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("federal_state", sa.String(length=2), nullable=True),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_followup_answers")),
    )
    op.execute(
        "INSERT INTO followup_answers (id, answer, topics, federal_state, month) "
        "SELECT id, answer, topics, federal_state, month FROM stat_events "
        "WHERE unit = 'followup'"
    )
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_column("category")
    op.drop_table("stat_reports")
    with op.batch_alter_table("stat_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stat_events_month"))
    op.drop_table("stat_events")

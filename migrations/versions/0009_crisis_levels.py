"""crisis levels: how urgent and what kind, on conversations and in the statistics

`crisis_rank` (0 none, 1 concern, 2 high, 3 imminent) is the queue's first key; conversations
flagged before this revision were all treated alike, and become "high". `crisis_category` is
the kind, never the words.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 22:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(
            sa.Column("crisis_rank", sa.SmallInteger(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("crisis_category", sa.String(length=20), nullable=True))
        batch.drop_index("ix_conversations_queue")
        batch.create_index(
            "ix_conversations_queue", ["status", "crisis_rank", "waiting_since"], unique=False
        )
    op.execute(sa.text("UPDATE conversations SET crisis_rank = 2 WHERE crisis"))
    with op.batch_alter_table("stat_events") as batch:
        batch.add_column(sa.Column("crisis_category", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stat_events") as batch:
        batch.drop_column("crisis_category")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_index("ix_conversations_queue")
        batch.create_index(
            "ix_conversations_queue", ["status", "crisis", "waiting_since"], unique=False
        )
        batch.drop_column("crisis_category")
        batch.drop_column("crisis_rank")

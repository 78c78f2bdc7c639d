"""Follow-ups: a user who saw offers may ask to be asked, N days later, whether they helped.

A pending follow-up keeps what sending it needs (the keyed pseudonym, the chat reference sealed
under the routing key, the language) and coarse metadata for statistics (topic codes, federal
state): never an offer name or free text. The answer is kept apart from it, anonymously (answer,
topics, federal state, month; no pseudonym, no link to the follow-up), and the follow-up row
goes. "Nicht mehr nachfragen", /stopp and /loeschen delete pending ones; one that nobody
answered goes 30 days after it was due.

`send_due_followups` is the scheduled job: each due check-in is claimed (marked sent) in the
transaction that finds it, so a second run, or a second process, never sends it again; it then
leaves through the relay, which paces it under Telegram's limits like any reply.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.clock import Clock
from core.db import transaction
from core.hours import local_month
from core.i18n import Catalogue
from core.models import Followup, StatEvent
from core.outcomes import FOLLOWUP_ANSWERS
from core.relay import Buttons, OutboundJob, Relay
from core.schemas import ContactRoute

log = logging.getLogger(__name__)
ANSWERS = FOLLOWUP_ANSWERS
STOP = "stop"
# The callback action of the opt-in button, and the prefix of the answers ("followup:helped").
ACTION = "followup"
OPT_IN = "yes"
# A check-in nobody answered is not kept longer than this after it was due.
EXPIRE_AFTER = timedelta(days=30)
# Bounds one run; the rest are due on the next one.
BATCH = 1000


@dataclass(frozen=True)
class FollowupRun:
    sent: int = 0
    expired: int = 0


class FollowupService:
    """What the bot does with follow-ups during a conversation; one transaction per call."""

    def __init__(
        self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock, days: int
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self.days = days

    async def opt_in(
        self,
        *,
        channel: str,
        pseudonym: str,
        chat_ref: bytes,
        language: str,
        topics: Sequence[str],
        federal_state: str | None,
    ) -> datetime:
        """One pending check-in per user: asking again moves it to the new date."""
        now = self._clock.now()
        due = now + timedelta(days=self.days)
        async with transaction(self._sessions) as session:
            await session.execute(delete(Followup).where(Followup.pseudonym == pseudonym))
            session.add(
                Followup(
                    pseudonym=pseudonym,
                    channel=channel,
                    chat_ref=chat_ref,
                    language=language,
                    topics=list(topics),
                    federal_state=federal_state,
                    due_at=due,
                    created_at=now,
                )
            )
        log.info("follow-up requested", extra={"days": self.days})
        return due

    async def answer(self, *, pseudonym: str, answer: str) -> bool:
        """Records the answer to a check-in that was sent, and deletes the follow-up. False
        when there is none (answered already, cancelled, expired)."""
        if answer not in ANSWERS:
            raise ValueError("unknown follow-up answer")
        month = local_month(self._clock.now())
        async with transaction(self._sessions) as session:
            followup = await session.scalar(
                select(Followup).where(
                    Followup.pseudonym == pseudonym, Followup.sent_at.is_not(None)
                )
            )
            if followup is None:
                return False
            session.add(
                StatEvent(
                    unit="followup",
                    answer=answer,
                    topics=list(followup.topics),
                    federal_state=followup.federal_state,
                    month=month,
                )
            )
            await session.delete(followup)
        log.info("follow-up answered", extra={"answer": answer})
        return True

    async def cancel(self, *, pseudonym: str) -> int:
        """Deletes the user's pending follow-ups; how many went (0 the second time)."""
        async with transaction(self._sessions) as session:
            removed = await delete_for(session, pseudonym=pseudonym)
        if removed:
            log.info("follow-up cancelled", extra={"count": removed})
        return removed


async def delete_for(session: AsyncSession, *, pseudonym: str) -> int:
    """Inside the caller's transaction: for opt-out and for erasure (/loeschen)."""
    result = await session.execute(delete(Followup).where(Followup.pseudonym == pseudonym))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def check_in(catalogue: Catalogue, language: str, days: int) -> tuple[str, Buttons]:
    """The check-in message and its answer buttons, in the user's language."""
    text = catalogue.text(language, "followup.ask", days=days)
    buttons = tuple(
        ((catalogue.text(language, f"followup.answer.{code}"), f"{ACTION}:{code}"),)
        for code in (*ANSWERS, STOP)
    )
    return text, buttons


async def send_due_followups(
    *,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    relay: Relay,
    catalogue: Catalogue,
    days: int,
) -> FollowupRun:
    """The scheduled job (idempotent): expire what was due 30 days ago and never answered, then
    claim every due check-in and hand it to the relay for paced delivery.

    Claiming marks the row sent in the same transaction (a conditional update on `sent_at IS
    NULL`, so of two concurrent runs only one wins each row): a check-in is sent at most once.
    A process that dies between the commit and the send loses that check-in rather than
    risking a second one."""
    now = clock.now()
    jobs: list[OutboundJob] = []
    async with transaction(sessions) as session:
        expired = await session.execute(
            delete(Followup).where(Followup.due_at <= now - EXPIRE_AFTER)
        )
        due = (
            await session.scalars(
                select(Followup)
                .where(Followup.due_at <= now, Followup.sent_at.is_(None))
                .order_by(Followup.due_at)
                .limit(BATCH)
            )
        ).all()
        for followup in due:
            claimed = await session.execute(
                update(Followup)
                .where(Followup.id == followup.id, Followup.sent_at.is_(None))
                .values(sent_at=now)
                .execution_options(synchronize_session=False)
            )
            if not claimed.rowcount:  # type: ignore[attr-defined]
                continue  # another run took it
            text, buttons = check_in(catalogue, followup.language, days)
            route = ContactRoute(
                contact_id=followup.id,
                channel=followup.channel,
                pseudonym=followup.pseudonym,
                chat_ref=followup.chat_ref,
            )
            # No stored message behind it: the relay's delivery mark finds nothing and skips.
            jobs.append(OutboundJob(uuid.uuid4(), route, text, buttons))
    for job in jobs:
        await relay.enqueue(job)
    result = FollowupRun(sent=len(jobs), expired=int(expired.rowcount or 0))  # type: ignore[attr-defined]
    log.info("follow-ups run", extra=asdict(result))
    return result

"""Outbound relay: counsellor replies leave through one paced queue, in order, per channel sender.

A reply is stored first (delivery=queued) and then sent; the outcome is written back so the
console shows a reply that could not be delivered instead of losing it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Protocol

from core.clock import Clock
from core.conversations import ConversationService
from core.schemas import ContactRoute

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    def __init__(self, reason: str, *, retry_after: float | None = None, permanent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.permanent = permanent


class ChannelSender(Protocol):
    async def send(self, *, route: ContactRoute, text: str) -> None:
        """Deliver or raise DeliveryError."""


@dataclass(frozen=True)
class OutboundJob:
    message_id: uuid.UUID
    route: ContactRoute
    text: str


class Relay:
    max_attempts = 5

    def __init__(
        self,
        *,
        senders: dict[str, ChannelSender],
        conversations: ConversationService,
        clock: Clock,
        rate_per_second: float,
    ) -> None:
        self._senders = senders
        self._conversations = conversations
        self._clock = clock
        self._interval = 1.0 / rate_per_second
        self._queue: asyncio.Queue[OutboundJob] = asyncio.Queue()

    def register(self, channel: str, sender: ChannelSender) -> None:
        self._senders[channel] = sender

    async def enqueue(self, job: OutboundJob) -> None:
        await self._queue.put(job)

    async def drain(self) -> None:
        await self._queue.join()

    async def run(self) -> None:
        """One worker keeps replies in order; pacing keeps us under Telegram's global limit."""
        while True:
            job = await self._queue.get()
            try:
                await self._deliver(job)
            except Exception:  # the worker must outlive any single failure
                log.exception("relay job failed", extra={"message_id": str(job.message_id)})
                await self._mark_failed_quietly(job)
            finally:
                self._queue.task_done()
            await asyncio.sleep(self._interval)

    async def _mark_failed_quietly(self, job: OutboundJob) -> None:
        try:
            await self._conversations.mark_delivery(message_id=job.message_id, delivery="failed")
        except Exception:  # the database itself is failing; the row stays "queued"
            log.exception("could not mark delivery", extra={"message_id": str(job.message_id)})

    async def _deliver(self, job: OutboundJob) -> None:
        sender = self._senders.get(job.route.channel)
        if sender is None:
            await self._conversations.mark_delivery(message_id=job.message_id, delivery="failed")
            return
        for attempt in range(1, self.max_attempts + 1):
            try:
                await sender.send(route=job.route, text=job.text)
            except DeliveryError as error:
                if error.permanent or attempt == self.max_attempts:
                    log.warning(
                        "delivery failed",
                        extra={"message_id": str(job.message_id), "reason": error.reason},
                    )
                    state = "blocked" if error.reason == "blocked" else "failed"
                    await self._conversations.mark_delivery(
                        message_id=job.message_id, delivery=state
                    )
                    return
                # Never send again before Telegram's RetryAfter has passed.
                await asyncio.sleep(error.retry_after or min(2.0**attempt * 0.2, 5.0))
            else:
                await self._conversations.mark_delivery(message_id=job.message_id, delivery="sent")
                return

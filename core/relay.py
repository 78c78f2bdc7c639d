"""Outbound relay: counsellor replies leave paced per channel and per chat, in order per chat.

A reply is stored first (delivery=queued) and then sent; the outcome is written back so the
console shows a reply that could not be delivered instead of losing it.

Pacing follows Telegram's limits: about 30 messages/s per bot (`rate_per_second`, one slot per
1/rate seconds across all chats of a channel) and about one message/s per chat
(`chat_rate_per_second`). Each chat is a FIFO queue with at most one message in flight, so a
burst to one chat waits for its own slots while other chats keep flowing. A RetryAfter (HTTP 429)
pauses the whole channel until it has passed, because Telegram counts it per bot.

A job may carry answer buttons (a follow-up's check-in, core/followups.py): rows of
(label, callback action), as plain strings so the core stays free of any channel's types.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

from core.clock import Clock
from core.conversations import ConversationService
from core.schemas import ContactRoute

log = logging.getLogger(__name__)
_ChatKey = tuple[str, str]  # (channel, pseudonym)
Buttons = tuple[tuple[tuple[str, str], ...], ...]  # rows of (label, action)


class DeliveryError(Exception):
    def __init__(self, reason: str, *, retry_after: float | None = None, permanent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.permanent = permanent


class ChannelSender(Protocol):
    async def send(self, *, route: ContactRoute, text: str, buttons: Buttons = ()) -> None:
        """Deliver or raise DeliveryError."""


@dataclass(frozen=True)
class OutboundJob:
    message_id: uuid.UUID
    route: ContactRoute
    text: str
    buttons: Buttons = ()


@dataclass
class _Chat:
    jobs: deque[OutboundJob] = field(default_factory=deque)
    attempts: int = 0  # failed attempts of the job at the head


class Relay:
    # Attempts per message that failed for a reason other than the provider's RetryAfter: a
    # flood wait always ends, so waiting it out never counts against the message.
    max_attempts = 5
    # Sent-to-arrived time varies by a few milliseconds: a chat's sends are spaced this much more
    # than its rate, so two of them never reach Telegram less than its 1 s apart.
    chat_guard_seconds = 0.05
    # Bounds the sends waiting on a slow Telegram; pacing alone would let them pile up.
    max_in_flight = 32
    max_backoff_seconds = 5.0

    def __init__(
        self,
        *,
        senders: dict[str, ChannelSender],
        conversations: ConversationService,
        clock: Clock,
        rate_per_second: float,
        chat_rate_per_second: float = 1.0,
        unpaced: Collection[str] = ("web",),
        retry_base_seconds: float = 0.2,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`unpaced` channels (the web chat publishes on our own event bus) have no outside
        limit to respect; they still keep each chat's order. Pacing uses `monotonic`, not the
        wall `clock`: slots must not jump with the wall time, and a test's FakeClock does not
        advance while the relay waits."""
        self._senders = senders
        self._conversations = conversations
        self._clock = clock
        self._interval = 1.0 / rate_per_second
        self._chat_interval = 1.0 / chat_rate_per_second + self.chat_guard_seconds
        self._unpaced = frozenset(unpaced)
        self._retry_base = retry_base_seconds
        self._now = monotonic
        self._chats: dict[_ChatKey, _Chat] = {}
        # Per channel, the chats whose head job may start at (time, tie-breaker, chat).
        self._ready: dict[str, list[tuple[float, int, _ChatKey]]] = {}
        self._chat_next: dict[_ChatKey, float] = {}  # earliest next start per chat
        self._channel_next: dict[str, float] = {}
        self._paused_until: dict[str, float] = {}
        self._order = itertools.count()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._wakeup = asyncio.Event()

    def register(self, channel: str, sender: ChannelSender) -> None:
        self._senders[channel] = sender

    def reserve(self, channel: str) -> float:
        """A send slot for a message that leaves outside the queue (the bot's direct answers,
        bot/telegram/pacing.py): the seconds to wait before sending it. It shares the
        channel's rate and any RetryAfter pause with the queued jobs, so together they stay
        under the provider's limit."""
        now = self._now()
        start = max(now, self._paused_until.get(channel, 0.0))
        if channel not in self._unpaced:
            start = self._take_slot(channel, start)
        return start - now

    def pause(self, channel: str, seconds: float) -> None:
        """A RetryAfter met outside the queue: the queued jobs wait it out too."""
        until = self._now() + seconds
        self._paused_until[channel] = max(self._paused_until.get(channel, 0.0), until)
        self._wakeup.set()

    async def enqueue(self, job: OutboundJob) -> None:
        key = (job.route.channel, job.route.pseudonym)
        self._pending += 1
        self._idle.clear()
        chat = self._chats.get(key)
        if chat is None:
            chat = self._chats[key] = _Chat()
            chat.jobs.append(job)
            self._schedule(key, self._now())
        else:
            chat.jobs.append(job)  # behind the head, which is scheduled or in flight

    async def drain(self) -> None:
        """Wait until every enqueued job has been sent or marked as failed."""
        await self._idle.wait()

    async def run(self) -> None:
        """The scheduler: starts each due job as a task and sleeps until the next slot."""
        try:
            while True:
                self._wakeup.clear()
                delay = self._start_due(self._now())
                if delay is None:
                    await self._wakeup.wait()
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), delay)
        finally:
            # Jobs cut off here stay "queued"; the next start marks them failed.
            for task in self._in_flight:
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    # -- scheduling ------------------------------------------------------------------------

    def _schedule(self, key: _ChatKey, at: float) -> None:
        channel = key[0]
        at = max(at, self._chat_next.get(key, 0.0))
        heapq.heappush(self._ready.setdefault(channel, []), (at, next(self._order), key))
        self._wakeup.set()

    def _start_due(self, now: float) -> float | None:
        """Start what may start now; return the seconds until the next start (None: wait)."""
        delay: float | None = None
        for channel, ready in self._ready.items():
            paced = channel not in self._unpaced
            while ready and len(self._in_flight) < self.max_in_flight:
                due = max(ready[0][0], self._paused_until.get(channel, 0.0))
                if paced:
                    due = max(due, self._channel_next.get(channel, 0.0))
                if due > now:
                    delay = due - now if delay is None else min(delay, due - now)
                    break
                _, _, key = heapq.heappop(ready)
                if paced:
                    self._take_slot(channel, now)
                    self._chat_next[key] = now + self._chat_interval
                self._start(key)
        self._forget_idle_chats(now)
        return delay

    def _take_slot(self, channel: str, at: float) -> float:
        """The channel's next send slot at or after `at`, taken. Counted from the slot, not
        from when the loop woke: wake-up delays must not add up and slow a backlog below the
        rate. A slot more than one interval old is not made up, so no second ever carries
        more than rate + 1."""
        slot = self._channel_next.get(channel, at)
        if at - slot >= self._interval:
            slot = at
        slot = max(slot, at)
        self._channel_next[channel] = slot + self._interval
        return slot

    def _start(self, key: _ChatKey) -> None:
        task = asyncio.create_task(self._attempt(key, self._chats[key].jobs[0]))
        self._in_flight.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wakeup.set()

    def _forget_idle_chats(self, now: float) -> None:
        # Slot times of chats without jobs matter only until they have passed.
        if len(self._chat_next) > len(self._chats) + 1024:
            for key in [k for k, t in self._chat_next.items() if t <= now]:
                if key not in self._chats:
                    del self._chat_next[key]

    # -- one attempt -----------------------------------------------------------------------

    async def _attempt(self, key: _ChatKey, job: OutboundJob) -> None:
        chat = self._chats[key]
        chat.attempts += 1
        sender = self._senders.get(job.route.channel)
        try:
            if sender is None:
                raise DeliveryError("no_sender", permanent=True)
            if job.buttons:
                await sender.send(route=job.route, text=job.text, buttons=job.buttons)
            else:  # plain replies keep the call every sender has always understood
                await sender.send(route=job.route, text=job.text)
        except DeliveryError as error:
            retry_at = self._retry_at(key[0], error, chat)
            if retry_at is not None:
                self._schedule(key, retry_at)  # the same job stays at the head: order holds
                return
            log.warning(
                "delivery failed",
                extra={
                    "message_id": str(job.message_id),
                    "reason": error.reason,
                    "attempts": chat.attempts,
                },
            )
            state = "blocked" if error.reason == "blocked" else "failed"
        except Exception:  # a sender bug must not stall the chat behind it
            log.exception("relay job failed", extra={"message_id": str(job.message_id)})
            state = "failed"
        else:
            state = "sent"
        self._next_job(key, chat)
        try:
            await self._conversations.mark_delivery(message_id=job.message_id, delivery=state)
        except Exception:  # the database itself is failing; the row stays "queued"
            log.exception("could not mark delivery", extra={"message_id": str(job.message_id)})
        finally:
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()

    def _retry_at(self, channel: str, error: DeliveryError, chat: _Chat) -> float | None:
        if error.permanent:
            return None
        now = self._now()
        if error.retry_after:
            chat.attempts -= 1  # a flood wait is not the message's failure
            # Telegram's 429 counts per bot: nothing leaves on this channel before it ends.
            until = now + error.retry_after
            self._paused_until[channel] = max(self._paused_until.get(channel, 0.0), until)
            log.warning(
                "channel paused by the provider",
                extra={"channel": channel, "retry_after": error.retry_after},
            )
            return until
        if chat.attempts >= self.max_attempts:
            return None
        return now + min(self._retry_base * 2.0**chat.attempts, self.max_backoff_seconds)

    def _next_job(self, key: _ChatKey, chat: _Chat) -> None:
        chat.jobs.popleft()
        chat.attempts = 0
        if chat.jobs:
            self._schedule(key, self._now())
        else:
            del self._chats[key]

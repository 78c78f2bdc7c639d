"""Outbound pacing: per chat about one message a second, per channel the global rate, one
chat's order kept, other chats never held up by a busy one, and Telegram's RetryAfter honoured
for the whole channel. Rates are fast here so that nothing sleeps for long; the send times come
from the same monotonic clock as the relay's slots."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from core.conversations import Profile
from core.relay import DeliveryError, OutboundJob, Relay
from core.schemas import ContactRoute
from tests.helpers import add_counsellor
from tests.keyring import keyring_of

# Scheduling is exact in monotonic time; the fake sender records a moment after the relay's
# slot, so two records can be this much closer than the slots were.
SLACK = 0.005


@dataclass
class Call:
    at: float
    pseudonym: str
    text: str
    ok: bool


@dataclass
class RecordingSender:
    """The edge we do not run (Telegram): records each send, fails the ones it is told to."""

    failures: dict[str, list[DeliveryError]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    async def send(self, *, route: ContactRoute, text: str) -> None:
        now = time.monotonic()
        errors = self.failures.get(text)
        if errors:
            self.calls.append(Call(now, route.pseudonym, text, ok=False))
            raise errors.pop(0)
        self.calls.append(Call(now, route.pseudonym, text, ok=True))

    def sent(self, pseudonym: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.ok and pseudonym in (None, c.pseudonym)]


def route(pseudonym: str, channel: str = "telegram") -> ContactRoute:
    return ContactRoute(
        contact_id=uuid.uuid4(), channel=channel, pseudonym=pseudonym, chat_ref=b"x"
    )


def job(pseudonym: str, text: str, channel: str = "telegram") -> OutboundJob:
    # Unknown message ids are fine: mark_delivery skips rows that do not exist.
    return OutboundJob(uuid.uuid4(), route(pseudonym, channel), text)


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
async def make_relay(services, sender) -> AsyncIterator:
    running: list[asyncio.Task[None]] = []

    def make(*, rate: float = 1000.0, chat_rate: float = 20.0, **options: object) -> Relay:
        relay = Relay(
            senders={"telegram": sender, "web": sender},
            conversations=services.conversations,
            clock=services.clock,
            rate_per_second=rate,
            chat_rate_per_second=chat_rate,
            retry_base_seconds=0.005,
            **options,  # type: ignore[arg-type]
        )
        running.append(asyncio.create_task(relay.run()))
        return relay

    yield make
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


async def drain(relay: Relay, seconds: float = 10.0) -> None:
    await asyncio.wait_for(relay.drain(), seconds)


def gaps(calls: list[Call]) -> list[float]:
    return [b.at - a.at for a, b in zip(calls, calls[1:], strict=False)]


async def test_a_burst_to_one_chat_is_spaced_by_the_chat_rate_in_order(make_relay, sender):
    relay = make_relay(chat_rate=20.0)  # one message per 50 ms per chat
    for n in range(6):
        await relay.enqueue(job("anna", f"a{n}"))
    await drain(relay)
    sent = sender.sent("anna")
    assert [c.text for c in sent] == [f"a{n}" for n in range(6)]
    assert min(gaps(sent)) >= 0.05 - SLACK


async def test_other_chats_are_not_held_up_by_a_busy_chat(make_relay, sender):
    relay = make_relay(chat_rate=5.0)  # the busy chat needs 0.8 s for its five messages
    for n in range(5):
        await relay.enqueue(job("busy", f"b{n}"))
    for name in ("ida", "jan", "kim"):
        await relay.enqueue(job(name, f"hallo {name}"))
    await drain(relay)
    busy = sender.sent("busy")
    assert [c.text for c in busy] == [f"b{n}" for n in range(5)]
    assert min(gaps(busy)) >= 0.2 - SLACK
    others = [c for c in sender.sent() if c.pseudonym != "busy"]
    assert len(others) == 3
    assert all(c.at < busy[1].at for c in others), "queued behind the busy chat's slots"


async def test_the_channel_rate_spaces_sends_across_chats(make_relay, sender):
    relay = make_relay(rate=50.0)  # one message per 20 ms for the whole bot
    for n in range(8):
        await relay.enqueue(job(f"chat{n}", "hallo"))
    await drain(relay)
    sent = sender.sent()
    assert len(sent) == 8
    # Slots, not gaps: the n-th send never comes before n intervals after the first, so no
    # window holds more than the rate allows, and a late wake-up is not added to the next gap.
    assert all(c.at - sent[0].at >= n * 0.02 - SLACK for n, c in enumerate(sent))


async def test_retry_after_pauses_every_chat_until_it_has_passed(make_relay, sender):
    sender.failures["a1"] = [DeliveryError("retry_after", retry_after=0.3)]
    relay = make_relay(rate=100.0)
    await relay.enqueue(job("anna", "a1"))
    await relay.enqueue(job("anna", "a2"))
    for name in ("ben", "cem", "dia"):
        await relay.enqueue(job(name, f"hallo {name}"))
    await drain(relay)
    refused = next(c for c in sender.calls if not c.ok)
    after = [c for c in sender.calls if c.at > refused.at]
    assert len(after) == 5, "everything is sent in the end"
    assert min(c.at for c in after) >= refused.at + 0.3 - SLACK
    assert [c.text for c in sender.sent("anna")] == ["a1", "a2"]


async def test_an_unpaced_channel_is_not_slowed_but_keeps_order(make_relay, sender):
    relay = make_relay(chat_rate=1.0, rate=1.0)
    started = time.monotonic()
    for n in range(5):
        await relay.enqueue(job("web-user", f"w{n}", channel="web"))
    await drain(relay)
    assert [c.text for c in sender.sent()] == [f"w{n}" for n in range(5)]
    # Paced at 1/s the five would take at least 4 s; the margin absorbs a loaded machine.
    assert time.monotonic() - started < 3.0


# -- outcomes written to the database ---------------------------------------------------------


async def queued_replies(
    services, texts: list[str]
) -> tuple[object, uuid.UUID, list[OutboundJob]]:
    """Real conversation rows: a Telegram contact, claimed, with counsellor replies queued."""
    counsellor = await add_counsellor(services, login=f"c{uuid.uuid4().hex[:8]}")
    pseudonym = services.identities.pseudonym(channel="telegram", identifier=uuid.uuid4().hex)
    handover = await services.conversations.request_handover(
        channel="telegram", pseudonym=pseudonym, chat_ref=b"sealed", profile=Profile()
    )
    conversation_id = handover.conversation.id
    await services.conversations.claim(conversation_id=conversation_id, counsellor=counsellor)
    jobs = []
    for text in texts:
        message, reply_route = await services.conversations.add_counsellor_reply(
            conversation_id=conversation_id, counsellor=counsellor, text=text
        )
        jobs.append(OutboundJob(message.id, reply_route, text))
    return counsellor, conversation_id, jobs


async def deliveries(services, counsellor, conversation_id) -> dict[str, str]:
    detail = await services.conversations.get_conversation(
        conversation_id=conversation_id, counsellor=counsellor
    )
    ring = keyring_of(services)
    return {ring.open(m): m.delivery for m in detail.messages if m.sender == "counsellor"}


async def test_a_transient_error_is_retried_then_sent_in_order(services, make_relay, sender):
    counsellor, conversation_id, jobs = await queued_replies(services, ["erste", "zweite"])
    sender.failures["erste"] = [DeliveryError("transient"), DeliveryError("transient")]
    relay = make_relay()
    for queued in jobs:
        await relay.enqueue(queued)
    await drain(relay)
    assert [(c.text, c.ok) for c in sender.calls] == [
        ("erste", False),
        ("erste", False),
        ("erste", True),
        ("zweite", True),
    ]
    assert await deliveries(services, counsellor, conversation_id) == {
        "erste": "sent",
        "zweite": "sent",
    }


async def test_a_blocked_user_is_marked_blocked_without_retrying(services, make_relay, sender):
    counsellor, conversation_id, jobs = await queued_replies(services, ["hallo", "noch da?"])
    sender.failures["hallo"] = [DeliveryError("blocked", permanent=True)]
    sender.failures["noch da?"] = [DeliveryError("bad_request", permanent=True)]
    relay = make_relay()
    for queued in jobs:
        await relay.enqueue(queued)
    await drain(relay)
    assert [c.text for c in sender.calls] == ["hallo", "noch da?"]
    assert await deliveries(services, counsellor, conversation_id) == {
        "hallo": "blocked",
        "noch da?": "failed",
    }


async def test_transient_errors_give_up_after_the_last_attempt(services, make_relay, sender):
    counsellor, conversation_id, jobs = await queued_replies(services, ["weg"])
    sender.failures["weg"] = [DeliveryError("transient") for _ in range(Relay.max_attempts + 1)]
    relay = make_relay()
    await relay.enqueue(jobs[0])
    await drain(relay)
    assert len(sender.calls) == Relay.max_attempts
    assert await deliveries(services, counsellor, conversation_id) == {"weg": "failed"}


async def test_a_crashing_sender_fails_one_reply_and_the_chat_goes_on(
    services, make_relay, sender
):
    counsellor, conversation_id, jobs = await queued_replies(services, ["kaputt", "heil"])

    class Crashing(RecordingSender):
        async def send(self, *, route: ContactRoute, text: str) -> None:
            if text == "kaputt":
                raise RuntimeError("a bug in the adapter")
            await super().send(route=route, text=text)

    crashing = Crashing()
    relay = make_relay()
    relay.register("telegram", crashing)
    for queued in jobs:
        await relay.enqueue(queued)
    await drain(relay)
    assert [c.text for c in crashing.sent()] == ["heil"]
    assert await deliveries(services, counsellor, conversation_id) == {
        "kaputt": "failed",
        "heil": "sent",
    }

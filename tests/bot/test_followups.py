"""Follow-ups through the engine and the scheduled job, on the real database and the real relay
(only Telegram itself is faked): the opt-in after offers, the check-in sent once on its day and
paced like any reply, the anonymous answer, opting out, /loeschen and the 30-day expiry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from bot.engine import Inbound, Sender
from core.followups import FollowupService, send_due_followups
from core.models import Followup, StatEvent
from core.relay import Buttons, Relay
from core.schemas import ContactRoute
from tests.keyring import table_dump, table_rows

CHAT_ID = 987654321012
SLACK = 0.005


@dataclass
class Sent:
    at: float
    pseudonym: str
    text: str
    buttons: Buttons


@dataclass
class FakeTelegram:
    """The edge we do not run: records every send with its buttons."""

    sent: list[Sent] = field(default_factory=list)

    async def send(self, *, route: ContactRoute, text: str, buttons: Buttons = ()) -> None:
        assert route.chat_ref is not None
        self.sent.append(Sent(time.monotonic(), route.pseudonym, text, buttons))


@pytest.fixture
def telegram() -> FakeTelegram:
    return FakeTelegram()


@pytest.fixture
async def make_relay(services, telegram) -> AsyncIterator:
    running: list[asyncio.Task[None]] = []

    def make(*, rate: float = 1000.0) -> Relay:
        relay = Relay(
            senders={"telegram": telegram},
            conversations=services.conversations,
            clock=services.clock,
            rate_per_second=rate,
            chat_rate_per_second=20.0,
        )
        running.append(asyncio.create_task(relay.run()))
        return relay

    yield make
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


def tg_sender(services, name="teen-1", chat_id=CHAT_ID):
    pseudonym = services.identities.pseudonym(channel="telegram", identifier=str(chat_id))
    chat_ref = services.identities.seal_chat(pseudonym=pseudonym, chat_id=chat_id)
    return Sender("telegram", pseudonym, chat_ref)


async def say(services, who, kind, value=""):
    return await services.engine.handle(sender=who, inbound=Inbound(kind, value))


async def to_results(services, who):
    replies = []
    for kind, value in [
        ("command", "start"),
        ("action", "role:teen"),
        ("text", "10115"),
        ("action", "need:visits"),
    ]:
        replies = await say(services, who, kind, value)
    return replies


def actions(replies):
    return [b.action for r in replies for row in r.buttons for b in row]


async def opted_in(services, who):
    replies = await to_results(services, who)
    assert "followup:yes" in actions(replies)
    return await say(services, who, "action", "followup:yes")


async def followups(services):
    async with services.sessions() as session:
        return (await session.scalars(select(Followup))).all()


async def answers(services):
    async with services.sessions() as session:
        return (await session.scalars(select(StatEvent).where(StatEvent.unit == "followup"))).all()


async def run_job(services, relay):
    return await send_due_followups(
        sessions=services.sessions,
        clock=services.clock,
        relay=relay,
        catalogue=services.catalogue,
        days=services.settings.followup_days,
    )


async def test_opt_in_after_results_keeps_one_row_without_plain_identifiers(services):
    who = tg_sender(services)
    results = await to_results(services, who)
    t = services.catalogue.text
    offer = t("de", "followup.offer", days=14)
    assert offer == "In 14 Tagen nachfragen, ob es geholfen hat"
    assert offer in [b.label for r in results for row in r.buttons for b in row]
    offer_texts = [r.text for r in results if not r.buttons]  # the offer cards
    assert offer_texts, "the test needs offers to be shown"

    replies = await say(services, who, "action", "followup:yes")
    assert replies[0].text == t("de", "followup.confirmed", days=14)
    await say(services, who, "action", "followup:yes")  # a second tap moves, never doubles

    rows = await followups(services)
    assert len(rows) == 1
    row = rows[0]
    assert row.pseudonym == who.pseudonym and row.channel == "telegram"
    assert row.chat_ref == who.chat_ref
    assert row.topics == ["visits"] and row.federal_state == "BE" and row.language == "de"
    assert row.created_at == services.clock.now()
    assert (row.due_at - row.created_at).days == 14
    dump = str((await table_rows(services))["followups"])
    assert str(CHAT_ID) not in await table_dump(services)
    for card in offer_texts:
        assert card.splitlines()[0] not in dump, "no offer name is kept"


async def test_the_web_chat_is_not_offered_a_follow_up(services):
    web = Sender("web", services.identities.pseudonym(channel="web", identifier="w"))
    replies = await to_results(services, web)
    assert "followup:yes" not in actions(replies)
    await say(services, web, "action", "followup:yes")
    assert await followups(services) == []


async def test_check_in_goes_out_on_day_14_and_only_once(services, make_relay, telegram):
    who = tg_sender(services)
    await opted_in(services, who)
    relay = make_relay()
    services.clock.advance(days=13)
    assert (await run_job(services, relay)).sent == 0
    services.clock.advance(days=1)
    first = await run_job(services, relay)
    second = await run_job(services, relay)
    await asyncio.wait_for(relay.drain(), 5)
    assert (first.sent, second.sent) == (1, 0)
    assert len(telegram.sent) == 1
    message = telegram.sent[0]
    assert message.pseudonym == who.pseudonym
    assert message.text == (
        "Hallo, hier ist Lotse. Vor 14 Tagen hast du dir Angebote angeschaut. "
        "Hat dir das geholfen?"
    )
    assert [a for row in message.buttons for _, a in row] == [
        "followup:helped",
        "followup:partly",
        "followup:not_helped",
        "followup:stop",
    ]
    services.clock.advance(days=1)
    assert (await run_job(services, relay)).sent == 0


async def test_two_concurrent_runs_send_each_check_in_once(services, make_relay, telegram):
    for n in range(5):
        await opted_in(services, tg_sender(services, chat_id=CHAT_ID + n))
    relay = make_relay()
    services.clock.advance(days=14)
    runs = await asyncio.gather(run_job(services, relay), run_job(services, relay))
    await asyncio.wait_for(relay.drain(), 5)
    assert sum(r.sent for r in runs) == 5
    assert len(telegram.sent) == 5
    assert len({s.pseudonym for s in telegram.sent}) == 5


async def test_many_due_check_ins_leave_no_faster_than_the_relay_rate(
    services, make_relay, telegram
):
    store = FollowupService(sessions=services.sessions, clock=services.clock, days=14)
    for n in range(10):
        who = tg_sender(services, chat_id=CHAT_ID + n)
        await store.opt_in(
            channel="telegram",
            pseudonym=who.pseudonym,
            chat_ref=who.chat_ref,
            language="de",
            topics=("visits",),
            federal_state="BE",
        )
    relay = make_relay(rate=50.0)  # one message per 20 ms for the whole bot
    services.clock.advance(days=14)
    assert (await run_job(services, relay)).sent == 10
    await asyncio.wait_for(relay.drain(), 5)
    sent = telegram.sent
    assert len(sent) == 10
    assert all(s.at - sent[0].at >= n * 0.02 - SLACK for n, s in enumerate(sent))


async def test_an_answer_is_kept_without_pseudonym_and_the_follow_up_goes(services, make_relay):
    who = tg_sender(services)
    await opted_in(services, who)
    services.clock.advance(days=14)
    await run_job(services, make_relay())
    replies = await say(services, who, "action", "followup:not_helped")
    t = services.catalogue.text
    assert replies[0].text == t("de", "followup.thanks.not_helped")
    assert "handover" in actions(replies)
    assert await followups(services) == []
    (answer,) = await answers(services)
    assert answer.answer == "not_helped"
    assert answer.topics == ["visits"] and answer.federal_state == "BE"
    assert answer.month == services.clock.now().strftime("%Y-%m")
    assert who.pseudonym not in str((await table_rows(services))["stat_events"])
    again = await say(services, who, "action", "followup:helped")
    assert again[0].text == t("de", "followup.gone")
    assert len(await answers(services)) == 1


async def test_an_answer_before_the_check_in_was_sent_is_not_counted(services):
    who = tg_sender(services)
    await opted_in(services, who)
    replies = await say(services, who, "action", "followup:helped")
    assert replies[0].text == services.catalogue.text("de", "followup.gone")
    assert await answers(services) == [] and len(await followups(services)) == 1


async def test_do_not_ask_again_deletes_the_pending_follow_up(services, make_relay, telegram):
    who = tg_sender(services)
    await opted_in(services, who)
    replies = await say(services, who, "action", "followup:stop")
    assert replies[0].text == services.catalogue.text("de", "followup.stopped")
    assert await followups(services) == [] and await answers(services) == []
    services.clock.advance(days=14)
    await run_job(services, make_relay())
    assert telegram.sent == []


async def test_stopp_cancels_pending_follow_ups(services):
    who = tg_sender(services)
    await opted_in(services, who)
    replies = await say(services, who, "command", "stopp")
    assert replies[0].text == services.catalogue.text("de", "followup.stopped")
    assert await followups(services) == []


async def test_loeschen_removes_follow_ups_from_every_table(services):
    who = tg_sender(services)
    await opted_in(services, who)
    await say(services, who, "action", "handover")  # a contact and a conversation too
    assert who.pseudonym in await table_dump(services)
    await say(services, who, "command", "loeschen")
    await say(services, who, "action", "erase:yes")
    dump = await table_dump(services)
    assert who.pseudonym not in dump
    assert str(who.chat_ref) not in dump
    assert await followups(services) == []


async def test_an_unanswered_check_in_expires_30_days_after_it_was_due(services, make_relay):
    who = tg_sender(services)
    await opted_in(services, who)
    relay = make_relay()
    services.clock.advance(days=14)
    await run_job(services, relay)
    services.clock.advance(days=29)
    assert (await run_job(services, relay)).expired == 0
    assert len(await followups(services)) == 1
    services.clock.advance(days=1)
    assert (await run_job(services, relay)).expired == 1
    assert await followups(services) == []
    assert await answers(services) == []


async def test_referral_cards_from_a_counsellor_come_with_the_follow_up_offer(
    services, make_relay, telegram
):
    from counsellor_console.referrals import ReferralSend, send_referrals
    from referral.api import area_for
    from tests.helpers import add_counsellor

    who = tg_sender(services)
    await to_results(services, who)
    await say(services, who, "action", "handover")
    anna = await add_counsellor(services, login="anna")
    conversation_id = await services.conversations.open_conversation_id(pseudonym=who.pseudonym)
    await services.conversations.claim(conversation_id=conversation_id, counsellor=anna)
    found = services.referrals.current.search(area=area_for("10115"), needs=["visits"], limit=5)
    services.relay = make_relay()
    request = ReferralSend(
        service_ids=[found.matches[0].offer.service_id], postcode="10115", needs=["visits"]
    )
    await send_referrals(
        services=services, conversation_id=conversation_id, counsellor=anna, request=request
    )
    await asyncio.wait_for(services.relay.drain(), 5)
    card, offer = telegram.sent
    assert not card.buttons
    assert offer.text == services.catalogue.text("de", "followup.offer_after_cards")
    assert [a for row in offer.buttons for _, a in row] == ["followup:yes"]
    await say(services, who, "action", "followup:yes")
    (row,) = await followups(services)
    assert row.topics == ["visits"] and row.federal_state == "BE"


async def test_the_scheduler_sends_due_followups_in_the_leading_process(services):
    from lotse.scheduler import create_scheduler, send_followups

    assert "followups" in {job.id for job in create_scheduler(services).get_jobs()}
    run = await send_followups(services)
    assert (run.sent, run.expired) == (0, 0), "nothing due, nothing sent"

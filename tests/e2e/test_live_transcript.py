"""A message that arrives while the counsellor is opening its conversation is shown: the
transcript read may be older than the message, and the live event comes before the view is
there. Made certain here by holding the transcript's answer in Chromium until the teen's new
message is stored and its event has reached the page."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import (
    BOT_TOKEN,
    RunningService,
    console_login,
    conversation_of,
    message_count,
    reach_the_team,
    run_on_service_db,
)
from tests.e2e.telegram_harness import BotApiEmulator

pytestmark = pytest.mark.e2e


def test_a_message_sent_while_the_conversation_opens_is_not_lost(
    service: RunningService, e2e_emulator: BotApiEmulator, page: Page
) -> None:
    console_login(page, service, service.login, service.password)
    expect(page.locator("#live.on")).to_be_visible()
    teen = e2e_emulator.user(BOT_TOKEN)
    reach_the_team(teen, "Erste Nachricht beim Öffnen")
    conversation = conversation_of(service, teen)
    deadline = time.monotonic() + 20
    while message_count(service, conversation) < 1 and time.monotonic() < deadline:
        time.sleep(0.2)

    held: list[tuple[Any, Any]] = []

    def hold(route: Any) -> None:
        # The transcript as it is now, before the second message; answered later.
        held.append((route, route.fetch()))

    page.route(f"**/api/v1/console/conversations/{conversation}", hold)
    item = page.locator(f'.queue-item[data-id="{conversation}"]')
    item.get_by_role("button", name="Übernehmen").click()
    deadline = time.monotonic() + 20
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert held, "the console asked for the transcript"

    teen.send_text("Zweite Nachricht, während du öffnest")
    deadline = time.monotonic() + 20
    while message_count(service, conversation) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert message_count(service, conversation) == 2, "the second message is stored"
    page.wait_for_timeout(1000)  # its live event reaches the page, before the view exists

    route, stale = held[0]
    route.fulfill(response=stale)
    transcript = page.locator("#transcript")
    expect(transcript).to_contain_text("Erste Nachricht beim Öffnen")
    expect(transcript).to_contain_text("Zweite Nachricht, während du öffnest")
    expect(transcript.locator(".msg.user")).to_have_count(2)  # each once
    page.unroute(f"**/api/v1/console/conversations/{conversation}")


def delivery_of(service: RunningService, conversation: str) -> list[str]:
    import uuid

    from sqlalchemy import select

    from core.models import Message

    async def states(sessions: Any) -> list[str]:
        async with sessions() as session:
            rows = await session.scalars(
                select(Message.delivery)
                .where(
                    Message.conversation_id == uuid.UUID(conversation),
                    Message.sender == "counsellor",
                )
                .order_by(Message.seq)
            )
            return list(rows)

    return list(run_on_service_db(service, states))


def test_a_reply_delivered_before_its_answer_arrives_shows_delivered(
    service: RunningService, e2e_emulator: BotApiEmulator, page: Page
) -> None:
    """The reply's own live event (message.created, published before the relay can send it)
    puts it in the view, so the delivery event that follows finds it, however late the
    answer to the POST comes."""
    console_login(page, service, service.login, service.password)
    expect(page.locator("#live.on")).to_be_visible()
    teen = e2e_emulator.user(BOT_TOKEN)
    reach_the_team(teen, "Bitte antworte mir")
    conversation = conversation_of(service, teen)
    page.locator(f'.queue-item[data-id="{conversation}"]').get_by_role(
        "button", name="Übernehmen"
    ).click()
    expect(page.locator("#transcript")).to_contain_text("Bitte antworte mir")

    held: list[tuple[Any, Any]] = []
    path = f"**/api/v1/console/conversations/{conversation}/messages"
    page.route(path, lambda route: held.append((route, route.fetch())))
    page.get_by_label("Antwort").fill("Ich bin da.")
    page.get_by_role("button", name="Senden").click()
    teen.wait_for_message("Ich bin da.")  # sent to Telegram while the answer is held
    deadline = time.monotonic() + 20
    while delivery_of(service, conversation) != ["sent"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert delivery_of(service, conversation) == ["sent"]
    page.wait_for_timeout(1000)  # the delivery event reaches the page before the reply
    route, answer = held[0]
    route.fulfill(response=answer)
    reply = page.locator("#transcript .msg.counsellor")
    expect(reply).to_contain_text("Ich bin da.")
    expect(reply.locator(".delivery")).to_have_text("zugestellt")
    page.unroute(path)

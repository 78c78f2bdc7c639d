"""The guided conversation for every role, in German and in English, as a Telegram user through
the Bot API emulator, against `./dev serve` (one service for the whole suite).

Each reply is checked in the order it arrives against the translation catalogue (the exact
text and the exact buttons), and the offers against the service's own referral API for the
same query: role, postcode, topic, the role's info card and its offers for every topic; back,
start over, /neu and "I'd rather not say"; the "I am not okay" button; /sprache mid-flow;
/loeschen answered "no" and "yes"; the parent's prison, with its visit facts."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest

from core.i18n import load_catalogue
from core.settings import Settings
from referral.cards import offer_card
from tests.e2e.conftest import BOT_TOKEN, RunningService
from tests.e2e.telegram_harness import BotApiEmulator, TelegramUser

pytestmark = pytest.mark.e2e

CATALOGUE = load_catalogue()
LANGUAGES = ("de", "en")  # the order /sprache offers them in
ROLES = ("child", "teen", "young_adult", "caregiver", "professional")
# The topics with an info card for every role, and those only some roles get (without a card).
NEEDS = ("visits", "talking", "school", "money", "rights", "release")
EXTRA_NEEDS = {"caregiver": ("material",), "professional": ("material", "training")}
# A place for each role; the search near it is asked of the referral API as well.
POSTCODES = {
    "child": "90402",
    "teen": "10115",
    "young_adult": "50667",
    "caregiver": "33647",
    "professional": "80331",
}
RESULT_LIMIT = 3  # offers the bot shows at once
FOLLOWUP_DAYS = Settings.model_fields["followup_days"].default  # the service runs on defaults
# The visit facts of a prison card, in the order the card gives them.
VISIT_FACTS = (
    "regular_times",
    "booking",
    "children_rules",
    "family_rooms",
    "family_days",
    "video_visits",
    "special_visits_minors",
)


def t(lang: str, key: str, /, **values: object) -> str:
    return CATALOGUE.text(lang, key, **values)


def lead(lang: str, key: str) -> str:
    """The fixed beginning of a text with placeholders (`{when}`), for texts that vary."""
    return t(lang, key).split("{", 1)[0]


# -- the expected buttons ----------------------------------------------------------------------

Rows = list[list[str]]


def keyboard(message: dict[str, Any]) -> Rows:
    markup = message.get("reply_markup")
    if not isinstance(markup, dict):
        return []
    return [[button["text"] for button in row] for row in markup.get("inline_keyboard") or []]


def nav_rows(lang: str, *, back: bool = True) -> Rows:
    rows = [[t(lang, "button.handover")], [t(lang, "button.restart")]]
    return [[t(lang, "button.back")], *rows] if back else rows


def role_rows(lang: str) -> Rows:
    roles = [[t(lang, f"role.{role}")] for role in ROLES]
    others = [t(other, "language.name") for other in LANGUAGES if other != lang]
    return [*roles, [t(lang, "button.handover")], others]


def postcode_rows(lang: str) -> Rows:
    return [[t(lang, "button.skip_postcode")], *nav_rows(lang)]


def needs_for(role: str) -> tuple[str, ...]:
    return NEEDS + EXTRA_NEEDS.get(role, ())


def need_rows(lang: str, role: str) -> Rows:
    topics = [[t(lang, f"need.{need}")] for need in needs_for(role)]
    return [*topics, [t(lang, "button.feel_bad")], *nav_rows(lang)]


def what_next_rows(lang: str, *, visits: bool, followup: bool) -> Rows:
    prison, handover = [t(lang, "prison.button")], [t(lang, "button.handover")]
    rows = [prison, handover] if visits else [handover, prison]
    if followup:
        rows.append([t(lang, "followup.offer", days=FOLLOWUP_DAYS)])
    return [*rows, [t(lang, "button.back")], [t(lang, "button.restart")]]


# -- reading the chat in order -----------------------------------------------------------------


def said(user: TelegramUser, text: str, rows: Rows | None = None) -> dict[str, Any]:
    """The bot's next message in this chat (in order, none skipped) is exactly `text`, with
    exactly these buttons when `rows` is given."""
    message = user.wait_for_message(None)
    assert message.get("text") == text, f"expected {text!r}, got {message.get('text')!r}"
    if rows is not None:
        assert keyboard(message) == rows
    return message


def begin(user: TelegramUser, lang: str) -> None:
    """/start as a new user: the welcome and the role question come in German, the other
    languages are right under it."""
    user.send_command("/start")
    said(user, t("de", "flow.welcome"))
    said(user, t("de", "flow.ask_role"), role_rows("de"))
    if lang != "de":
        user.click(t(lang, "language.name"))
        said(user, t(lang, "flow.language_set"))
        said(user, t(lang, "flow.ask_role"), role_rows(lang))


def to_need(user: TelegramUser, lang: str, role: str, postcode: str) -> None:
    user.click(t(lang, f"role.{role}"))
    said(user, t(lang, "flow.ask_postcode"), postcode_rows(lang))
    user.send_text(postcode)
    said(user, t(lang, "flow.ask_need"), need_rows(lang, role))


def referrals(service: RunningService, **query: str | None) -> dict[str, Any]:
    """The service's referral API for the query the bot makes (same index, same ranking)."""
    params = {key: value for key, value in query.items() if value is not None}
    response = httpx.get(
        service.url + "/api/v1/referrals", params={**params, "limit": RESULT_LIMIT}, timeout=10
    )
    assert response.status_code == 200, response.text
    return cast(dict[str, Any], response.json())


def offer_text(lang: str, match: dict[str, Any]) -> str:
    """An offer of the API as the chat card shows it (referral.cards renders both)."""
    reason = match["reason"]
    offer = SimpleNamespace(
        name=match["name"],
        organisation=match["organisation"],
        description=match["description"],
        phone=match["phone"],
        website=match["website"],
        source=match["source"],
        assured_date=date.fromisoformat(match["last_checked"]),
    )
    found = SimpleNamespace(
        offer=offer,
        reason=SimpleNamespace(
            scope=reason["scope"],
            distance_km=reason["distance_km"],
            state=reason["state"],
            target_group=reason["target_group"],
            needs=tuple(reason["needs"]),
            language=reason["language"],
            delivery=tuple(reason["delivery"]),
        ),
    )
    return offer_card(CATALOGUE, lang, cast(Any, found))


def results(
    user: TelegramUser,
    service: RunningService,
    lang: str,
    role: str,
    need: str,
    postcode: str | None,
) -> list[dict[str, Any]]:
    """After a topic: the role's info card, the offers the API finds for the same query,
    each as a card, then what to do next. Returns the offers."""
    found = referrals(service, postcode=postcode, role=role, needs=need, lang=lang)["matches"]
    if need in NEEDS:
        card = said(user, t(lang, f"card.{need}.{role}"))
        assert len(card["text"]) < 1200  # fits a phone screen or two
    if found:
        said(user, t(lang, f"card.more.{need}" if need in NEEDS else "flow.results_intro"))
    else:
        said(user, t(lang, "flow.results_none"))
    for match in found:
        said(user, offer_text(lang, match))
    rows = what_next_rows(lang, visits=need == "visits", followup=bool(found))
    said(user, t(lang, "flow.what_next"), rows)
    return list(found)


# -- every role, every topic -------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("role", ROLES)
def test_every_role_gets_its_own_card_and_offers_for_every_topic(
    service: RunningService, e2e_emulator: BotApiEmulator, role: str, lang: str
) -> None:
    """Role, postcode, topic: the card written for this role, then the offers. "Back" leads to
    the topics again, and each other topic brings its own card."""
    user = e2e_emulator.user(BOT_TOKEN, first_name="Mira", username="mira_private")
    begin(user, lang)
    to_need(user, lang, role, POSTCODES[role])
    offers = 0
    for index, need in enumerate(needs_for(role)):
        if index:
            user.click(t(lang, "button.back"))
            said(user, t(lang, "flow.ask_need"), need_rows(lang, role))
        user.click(t(lang, f"need.{need}"))
        offers += len(results(user, service, lang, role, need, POSTCODES[role]))
    assert offers, "the directory has offers for this role"
    # Telegram's names and the place never reach the logs.
    logs = service.logs()
    for private in ("mira_private", "Mira", str(user.user_id), POSTCODES[role]):
        assert private not in logs


def test_each_role_reads_a_card_of_its_own() -> None:
    """The cards are written per age band: no two roles share a card, and a child's is the
    shortest (short, plain words)."""
    for lang in LANGUAGES:
        for need in NEEDS:
            cards = {role: t(lang, f"card.{need}.{role}") for role in ROLES}
            assert len(set(cards.values())) == len(ROLES), (lang, need)
            assert len(cards["child"]) == min(len(card) for card in cards.values()), (lang, need)


# -- navigation: back, start over, /neu, rather not say ----------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
def test_back_leads_step_by_step_from_the_prison_question_to_the_role_question(
    service: RunningService, e2e_emulator: BotApiEmulator, lang: str
) -> None:
    user = e2e_emulator.user(BOT_TOKEN)
    begin(user, lang)
    to_need(user, lang, "young_adult", POSTCODES["young_adult"])
    user.click(t(lang, "need.visits"))
    results(user, service, lang, "young_adult", "visits", POSTCODES["young_adult"])
    user.click(t(lang, "prison.button"))
    said(user, t(lang, "flow.prison_ask"), nav_rows(lang))

    user.click(t(lang, "button.back"))
    said(user, t(lang, "flow.what_next"), what_next_rows(lang, visits=True, followup=False))
    user.click(t(lang, "button.back"))
    said(user, t(lang, "flow.ask_need"), need_rows(lang, "young_adult"))
    user.click(t(lang, "button.back"))
    said(user, t(lang, "flow.ask_postcode"), postcode_rows(lang))
    user.click(t(lang, "button.back"))
    # The first question has no "back" (and the language stays as chosen).
    said(user, t(lang, "flow.ask_role"), role_rows(lang))


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("how", ["button", "/neu"])
def test_start_over_at_a_later_step_forgets_the_answers_but_not_the_language(
    service: RunningService, e2e_emulator: BotApiEmulator, how: str, lang: str
) -> None:
    user = e2e_emulator.user(BOT_TOKEN)
    begin(user, lang)
    to_need(user, lang, "caregiver", POSTCODES["caregiver"])
    user.click(t(lang, "need.money"))
    results(user, service, lang, "caregiver", "money", POSTCODES["caregiver"])
    user.click(t(lang, "prison.button"))
    said(user, t(lang, "flow.prison_ask"), nav_rows(lang))

    if how == "button":
        user.click(t(lang, "button.restart"))
    else:
        user.send_command(how)
    said(user, t(lang, "flow.welcome"))
    said(user, t(lang, "flow.ask_role"), role_rows(lang))
    # The postcode is asked again: nothing of the first round is kept.
    user.click(t(lang, "role.professional"))
    said(user, t(lang, "flow.ask_postcode"), postcode_rows(lang))
    user.send_text(POSTCODES["professional"])
    said(user, t(lang, "flow.ask_need"), need_rows(lang, "professional"))
    user.click(t(lang, "need.training"))
    results(user, service, lang, "professional", "training", POSTCODES["professional"])


@pytest.mark.parametrize("lang", LANGUAGES)
def test_rather_not_say_skips_the_postcode_and_finds_nationwide_offers(
    service: RunningService, e2e_emulator: BotApiEmulator, lang: str
) -> None:
    user = e2e_emulator.user(BOT_TOKEN)
    begin(user, lang)
    user.click(t(lang, "role.child"))
    said(user, t(lang, "flow.ask_postcode"), postcode_rows(lang))
    user.click(t(lang, "button.skip_postcode"))
    said(user, t(lang, "flow.ask_need"), need_rows(lang, "child"))
    user.click(t(lang, "need.talking"))
    found = results(user, service, lang, "child", "talking", None)
    assert found, "a nationwide offer is always among the results"
    assert {match["reason"]["scope"] for match in found} <= {"national", "online"}


# -- "I am not okay" ---------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_not_okay_button_brings_the_crisis_card_and_a_person(
    service: RunningService, e2e_emulator: BotApiEmulator, lang: str
) -> None:
    user = e2e_emulator.user(BOT_TOKEN)
    begin(user, lang)
    to_need(user, lang, "teen", POSTCODES["teen"])
    user.click(t(lang, "button.feel_bad"))

    # The card lists who answers now and when the others open (bot/hotlines.py): by the hour.
    card = user.wait_for_message(None)
    assert card["text"].startswith(t(lang, "crisis.intro") + "\n\n"), card["text"]
    for number in ("116 111", "0800 111 0 111", "0800 111 0 222", "112", "110"):
        assert number in card["text"]
    # Whether someone of the team is online depends on the tests before: each answer says so.
    alerted = user.wait_for_message(None)
    keys = ("crisis.alerted", "crisis.alerted_nobody", "crisis.alerted_closed")
    assert any(alerted["text"].startswith(lead(lang, key)) for key in keys), alerted["text"]
    # The user is with the team now: what they write goes there, /stopp ends it.
    user.send_text("bist du noch da?" if lang == "de" else "are you still there?")
    user.send_command("/stopp")
    said(user, t(lang, "flow.stopped"), nav_rows(lang, back=False))
    assert "category=button" in service.logs()


# -- /sprache mid-flow -------------------------------------------------------------------------


@pytest.mark.parametrize(("first", "then"), [("de", "en"), ("en", "de")], ids=["de-en", "en-de"])
def test_sprache_switches_the_language_mid_flow_and_keeps_the_answers(
    service: RunningService, e2e_emulator: BotApiEmulator, first: str, then: str
) -> None:
    user = e2e_emulator.user(BOT_TOKEN)
    begin(user, first)
    to_need(user, first, "young_adult", POSTCODES["young_adult"])
    user.send_command("/sprache")
    said(user, t(first, "flow.ask_language"), [[t(lang, "language.name") for lang in LANGUAGES]])
    user.click(t(then, "language.name"))
    said(user, t(then, "flow.language_set"))
    # The same step, now in the other language; the postcode given before still counts.
    said(user, t(then, "flow.ask_need"), need_rows(then, "young_adult"))
    user.click(t(then, "need.release"))
    results(user, service, then, "young_adult", "release", POSTCODES["young_adult"])
    user.send_command("/hilfe")
    said(user, t(then, "flow.help"), nav_rows(then))


# -- /loeschen: "no" keeps everything, "yes" erases --------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
def test_loeschen_answered_no_erases_nothing_and_the_flow_goes_on(
    service: RunningService, e2e_emulator: BotApiEmulator, lang: str
) -> None:
    postcode = "90402"
    local = referrals(service, postcode=postcode, role="caregiver", needs="visits", lang=lang)
    nationwide = referrals(service, role="caregiver", needs="visits", lang=lang)
    assert local["matches"] != nationwide["matches"], "the postcode must make a difference here"
    user = e2e_emulator.user(BOT_TOKEN)
    begin(user, lang)
    to_need(user, lang, "caregiver", postcode)

    user.send_command("/loeschen")
    said(
        user,
        t(lang, "flow.erase_confirm"),
        [[t(lang, "button.erase_yes")], [t(lang, "button.erase_no")]],
    )
    user.click(t(lang, "button.erase_no"))
    said(user, t(lang, "flow.erase_cancelled"))
    said(user, t(lang, "flow.ask_need"), need_rows(lang, "caregiver"))
    # Role and postcode are still known: the offers are those near the postcode.
    user.click(t(lang, "need.visits"))
    results(user, service, lang, "caregiver", "visits", postcode)


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("answer", ["no", "yes"])
def test_loeschen_during_a_talk_with_the_team(
    service: RunningService, e2e_emulator: BotApiEmulator, answer: str, lang: str
) -> None:
    """Answered "no", the conversation stays (/stopp still ends it); "yes" erases it (/stopp
    then finds nothing to end)."""
    user = e2e_emulator.user(BOT_TOKEN)
    begin(user, lang)
    to_need(user, lang, "teen", POSTCODES["teen"])
    user.click(t(lang, "need.school"))
    results(user, service, lang, "teen", "school", POSTCODES["teen"])
    user.click(t(lang, "button.handover"))
    keys = ("flow.handover", "flow.handover_nobody_online", "flow.handover_closed")
    user.wait_for_any(*(lead(lang, key) for key in keys))
    user.send_text("Hallo, ist jemand da?" if lang == "de" else "Hello, is anyone there?")

    user.send_command("/loeschen")
    # Further handover notes (the expected wait) may come first: from here on, by content.
    confirm = user.wait_for_message(t(lang, "flow.erase_confirm"))
    user.pass_over_until(confirm)
    buttons = [[t(lang, "button.erase_yes")], [t(lang, "button.erase_no")]]
    assert keyboard(confirm) == buttons
    user.click(t(lang, f"button.erase_{answer}"))
    if answer == "no":
        said(user, t(lang, "flow.erase_cancelled"))
        said(user, t(lang, "flow.relay_reminder"))
        user.send_command("/stopp")
        said(user, t(lang, "flow.stopped"), nav_rows(lang))
    else:
        said(user, t(lang, "flow.erased"), [[t(lang, "button.restart")]])
        # The language went with everything else; only that answer's button carries it.
        user.click(t(lang, "button.restart"))
        said(user, t(lang, "flow.welcome"))
        said(user, t(lang, "flow.ask_role"), role_rows(lang))
        user.send_command("/stopp")
        said(user, t(lang, "flow.stop_nothing"), nav_rows(lang, back=False))


# -- the parent's prison -----------------------------------------------------------------------


def prison_card(lang: str, prison: dict[str, Any]) -> str:
    """The card the bot shows for a prison of the API: each known visit fact with its label,
    the unknown ones in one sentence that says whom to ask, the source and its date."""
    visits = prison["visits"]
    assert visits["booking_lead_time"] is None  # not in these prisons, so not in this oracle
    lines = [prison["name"], t(lang, "prison.city", city=prison["city"])]
    known, unknown = [], []
    for fact in VISIT_FACTS:
        value = visits[fact]
        if isinstance(value, bool):
            known.append(t(lang, f"prison.{fact}.{'yes' if value else 'no'}"))
        elif value:
            known.append(t(lang, f"prison.{fact}", value=value))
        else:
            unknown.append(t(lang, f"prison.ask.{fact}"))
    if known:
        lines += [t(lang, "prison.heading"), *known]
    if unknown:
        facts = unknown[0]
        if len(unknown) > 1:
            facts = t(lang, "prison.and", first=", ".join(unknown[:-1]), last=unknown[-1])
        phone, website = prison["phone"], prison["website"]
        key = {
            (True, True): "prison.find_out_phone_website",
            (True, False): "prison.find_out_phone",
            (False, True): "prison.find_out_website",
            (False, False): "prison.find_out",
        }[(bool(phone), bool(website))]
        lines.append(t(lang, key, facts=facts, phone=phone, website=website))
    checked = date.fromisoformat(prison["last_checked"]).strftime("%d.%m.%Y")
    lines.append(t(lang, "offer.checked", date=checked, source=prison["source"]))
    return "\n".join(lines)


def shows_prison(
    user: TelegramUser, service: RunningService, lang: str, slug: str, postcode: str
) -> str:
    """The prison's card, the offers near it, then what next (visits first)."""
    found = referrals(
        service, postcode=postcode, role="caregiver", needs="visits", lang=lang, prison=slug
    )
    card = said(user, prison_card(lang, found["prison"]))
    if found["near_prison"]:
        said(user, t(lang, "flow.prison_near_intro"))
        for match in found["near_prison"]:
            said(user, offer_text(lang, match))
    said(user, t(lang, "flow.what_next"), what_next_rows(lang, visits=True, followup=False))
    return str(card["text"])


# Key phrases a person reads, written out (not composed from the catalogue like the oracle).
WILLICH_II = {
    "en": (
        "Town: Willich\nHow visits work there (details in German, as the sources say):",
        "Best ask the prison directly about the visiting times, how to book a visit, family "
        "rooms and video visits – I don't have information on that yet.",
        "Checked: 21.11.2026 · Source: https://www.land.nrw/node/21995",
    ),
    "de": (
        "Frag am besten direkt bei der JVA nach den Besuchszeiten",
        "Stand: 21.11.2026 · Quelle: https://www.land.nrw/node/21995",
    ),
}
BIELEFELD = {
    "en": (
        "Visiting times: Privatbesuche: Mo 10:00–11:00",
        "Family rooms: yes, there are",
        "Best call the prison directly and ask about video visits",
        "Phone: 0521 4896-0 · Website: https://www.jva-bielefeld-brackwede.nrw.de",
    ),
    "de": ("Besuchszeiten: Privatbesuche: Mo 10:00–11:00",),
}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_caregiver_asks_about_visits_to_the_prison(
    service: RunningService, e2e_emulator: BotApiEmulator, lang: str
) -> None:
    """The prison step (German as in test_prison_flow.py, and in English): two prisons in
    Willich are offered as buttons, one chosen; then one clear hit, Bielefeld."""
    caregiver = e2e_emulator.user(BOT_TOKEN, first_name="Sven", username="sven_private")
    postcode = POSTCODES["caregiver"]
    begin(caregiver, lang)
    to_need(caregiver, lang, "caregiver", postcode)
    caregiver.click(t(lang, "need.visits"))
    results(caregiver, service, lang, "caregiver", "visits", postcode)
    caregiver.click(t(lang, "prison.button"))
    said(caregiver, t(lang, "flow.prison_ask"), nav_rows(lang))

    caregiver.send_text("Willich")
    choices = [["JVA Willich I"], ["JVA Willich II"], *nav_rows(lang)]
    said(caregiver, t(lang, "flow.prison_choose"), choices)
    caregiver.click("JVA Willich II")
    card = shows_prison(caregiver, service, lang, "jva-willich-2", postcode)
    assert card.startswith("Justizvollzugsanstalt Willich II\n")
    for phrase in WILLICH_II[lang]:
        assert phrase in card

    caregiver.click(t(lang, "prison.button"))
    said(caregiver, t(lang, "flow.prison_ask"), nav_rows(lang))
    caregiver.send_text("Bielefeld")
    card = shows_prison(caregiver, service, lang, "jva-bielefeld-brackwede", postcode)
    assert card.startswith("Justizvollzugsanstalt Bielefeld-Brackwede\n")
    for phrase in BIELEFELD[lang]:
        assert phrase in card

    # The place of the parent's prison could identify a family: it never reaches the logs.
    logs = service.logs()
    for private in ("Bielefeld", "Willich", "willich", "sven_private", str(caregiver.user_id)):
        assert private not in logs

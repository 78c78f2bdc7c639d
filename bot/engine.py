"""The guided conversation, independent of any channel.

Adapters turn a channel's update into an `Inbound`, call `ConversationEngine.handle`, and render
the returned `Reply` objects. Nothing here knows about Telegram or HTTP.

Every free-text message, at any step, is first checked for a crisis (bot/crisis_triage.py: the
lexicon, the model and the chat's last few messages): a hit gets the crisis card at once and puts
the conversation into the team's queue by urgency, before anything else happens. Then, and only
without a crisis, a gentle tip if the text holds personal data. Text the flow cannot use gets a
kind answer with a way to a person, never a bare "use the buttons".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.exc import SQLAlchemyError

from bot import personal_data
from bot.crisis_triage import Assessment, CrisisTriage, RecentTexts, default_triage
from bot.hotlines import HotlineBook, default_hotlines
from bot.state import FlowStateStore
from core import followups as followup
from core.clock import Clock, SystemClock
from core.conversations import ConversationClosed, ConversationService, NoTeamKeys, Profile
from core.followups import FollowupService
from core.hours import InvalidHours
from core.i18n import Catalogue
from core.schemas import Handover
from core.statistics import StatisticsService
from referral import gazetteer
from referral.cards import offer_card
from referral.index import Match, Referral, ReferralIndex, ReferralIndexHolder, UnknownPrison
from referral.prisons import find_prisons, short_name
from referral.records import PrisonRecord, VisitInfo
from referral.text import needs_from_text

log = logging.getLogger(__name__)

ROLES = ("child", "teen", "young_adult", "caregiver", "professional")
# The topics with an info card for every role (card.<need>.<role> in cards.po).
NEEDS = ("visits", "talking", "school", "money", "rights", "release")
# Directory needs that only some roles are offered as a button (no info card).
EXTRA_NEEDS = {"caregiver": ("material",), "professional": ("material", "training")}
# Commands in the order the menu shows them; English names are understood as well.
COMMANDS = ("start", "neu", "hilfe", "sprache", "notfall", "stopp", "loeschen")
COMMAND_ALIASES = {
    "new": "neu",
    "help": "hilfe",
    "language": "sprache",
    "emergency": "notfall",
    "stop": "stopp",
    "löschen": "loeschen",
    "delete": "loeschen",
}
# Where "back" leads from each step; the first step and the talk with a person have none.
PREVIOUS_STEP = {"postcode": "role", "need": "postcode", "results": "need", "prison": "results"}
MAX_TEXT = 4096
# Flow-state mark: handed over while nobody of the team was there (see `_mark_unattended`).
UNATTENDED = "unattended"
# Three cards fit on a phone screen; the nationwide fallback is always among them.
RESULT_LIMIT = 3
# Telegram's limit for callback data; a longer slug falls back to the prison's id.
MAX_ACTION_BYTES = 64
# Flow state that survives /start: the privacy tip is given once, not once per restart.
PRIVACY_TIP_GIVEN = "privacy_tip"
# The visit facts a prison card shows, in this order; the booking lead time goes with booking.
VISIT_FACTS = (
    "regular_times",
    "booking",
    "children_rules",
    "family_rooms",
    "family_days",
    "video_visits",
    "special_visits_minors",
)


@dataclass(frozen=True)
class Button:
    label: str
    action: str


@dataclass(frozen=True)
class Reply:
    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()


@dataclass(frozen=True)
class Inbound:
    # "location" carries "latitude,longitude", used once to find the nearest postcode.
    kind: Literal["command", "text", "action", "location", "unsupported"]
    # For "unsupported": a photo's caption, which is checked for a crisis (the photo never is).
    value: str = ""


@dataclass(frozen=True)
class Sender:
    channel: str
    pseudonym: str
    chat_ref: bytes | None = None


@dataclass
class Turn:
    """One update being handled: the flow state it may change and the replies it produces."""

    sender: Sender
    state: dict[str, Any]
    replies: list[Reply] = field(default_factory=list)

    @property
    def lang(self) -> str:
        return str(self.state.get("lang", "de"))


class ConversationEngine:
    def __init__(
        self,
        *,
        catalogue: Catalogue,
        states: FlowStateStore,
        conversations: ConversationService,
        referrals: ReferralIndexHolder,
        crisis: CrisisTriage | None = None,
        recent: RecentTexts | None = None,
        hotlines: HotlineBook | None = None,
        followups: FollowupService | None = None,
        statistics: StatisticsService | None = None,
        clock: Clock | None = None,
    ) -> None:
        """Without `followups` the bot does not offer to check back after showing offers;
        without `statistics` its searches are not counted; without `recent` every message is
        checked for a crisis on its own."""
        self._catalogue = catalogue
        self._t = catalogue.text
        self._languages = tuple(catalogue.interface_languages)
        self._states = states
        self._conversations = conversations
        self._referrals = referrals
        self._crisis = crisis or default_triage()
        self._recent = recent
        self._clock = clock or SystemClock()
        self._hotlines = hotlines or default_hotlines()
        self._followups = followups
        self._statistics = statistics

    @property
    def followup_days(self) -> int | None:
        """After how many days a check-in may be offered; None: follow-ups are off."""
        return self._followups.days if self._followups is not None else None

    async def language(self, *, pseudonym: str) -> str:
        """The language the user chose (German until they chose), for replies made outside a
        turn, such as the error answer."""
        state = await self._states.get(pseudonym)
        lang = state.get("lang", "de")
        return lang if lang in self._languages else "de"

    async def handle(self, *, sender: Sender, inbound: Inbound) -> list[Reply]:
        turn = Turn(sender=sender, state=await self._states.get(sender.pseudonym))
        if inbound.kind == "command":
            await self._command(turn, inbound.value)
        elif inbound.kind == "action":
            await self._action(turn, inbound.value)
        elif inbound.kind == "text":
            await self._free_text(turn, inbound.value[:MAX_TEXT])
        elif inbound.kind == "location":
            await self._location(turn, inbound.value)
        elif inbound.value and (found := self._crisis.assess(inbound.value[:MAX_TEXT])):
            # A photo with a caption: the words are read like a message, the photo is not.
            await self._on_crisis(turn, found, inbound.value[:MAX_TEXT])
        else:
            self._say(turn, "flow.unsupported_media")
        await self._states.set(sender.pseudonym, turn.state)
        return turn.replies

    # -- dispatch ---------------------------------------------------------------------------

    async def _command(self, turn: Turn, command: str) -> None:
        command = COMMAND_ALIASES.get(command, command)
        if command in ("start", "neu"):
            self._start(turn)
        elif command == "hilfe":
            self._say(turn, "flow.help", buttons=self._nav(turn))
        elif command == "sprache":
            self._ask_language(turn)
        elif command == "notfall":
            self._crisis_card(turn, "flow.notfall")
        elif command == "stopp":
            await self._stop(turn)
        elif command == "loeschen":
            self._ask_erase(turn)
        else:
            self._say(turn, "flow.unknown_command")

    async def _action(self, turn: Turn, action: str) -> None:
        name, _, value = action.partition(":")
        if name == "restart":
            if value in self._languages:  # after an erasure the button carries the language
                turn.state["lang"] = value
            self._start(turn)
        elif name == "handover":
            await self._handover(turn)
        elif name == "back" and turn.state.get("step") in PREVIOUS_STEP:
            turn.state["step"] = PREVIOUS_STEP[turn.state["step"]]
            if turn.state["step"] == "role":
                # Walked back past the postcode question: it is asked again. Only a location
                # shared before a role was picked stands in for it.
                turn.state["area"] = None
            self._repeat_step(turn)
        elif name == "lang" and value in self._languages:
            turn.state["lang"] = value
            self._say(turn, "flow.language_set")
            self._repeat_step(turn)
        elif name == "crisis":
            await self._on_crisis(turn, None, None)
        elif name == "erase" and value == "yes":
            await self._erase(turn)
        elif name == "erase" and value == "no":
            self._say(turn, "flow.erase_cancelled")
            self._repeat_step(turn)
        elif name == "role" and value in ROLES and turn.state.get("area"):
            turn.state.update(role=value, step="need")  # a shared location came first
            self._ask_need(turn)
        elif name == "role" and value in ROLES:
            turn.state.update(role=value, step="postcode")
            self._ask_postcode(turn)
        elif name == "postcode" and value == "skip":
            turn.state.update(area=None, step="need")
            self._ask_need(turn)
        elif name == "need" and value in self._needs_for(turn):
            turn.state.update(needs=[value], step="results")
            await self._results(turn)
        elif name == followup.ACTION and self._followups is not None:
            await self._followup(turn, value)
        elif name == "prison" and not value:
            turn.state["step"] = "prison"
            self._ask_prison(turn)
        elif name == "prison" and (prison := self._known_prison(value)) is not None:
            self._show_prison(turn, prison)
        else:
            # A button from an old message: say so and show where we are, never fail silently.
            self._say(turn, "flow.stale_button")
            self._repeat_step(turn)

    async def _free_text(self, turn: Turn, text: str) -> None:
        key = turn.sender.pseudonym
        earlier = self._recent.earlier(key) if self._recent is not None else []
        reading = self._crisis.read(text, earlier=earlier)
        if reading.crisis is not None:
            if self._recent is not None:
                self._recent.forget(key)  # one alarm per crisis, not one per later message
            await self._on_crisis(turn, reading.crisis, text, language=reading.language)
            return
        if self._recent is not None:
            self._recent.add(key, text)
        if reading.language not in (None, *self._languages) and turn.state.get("step") != "relay":
            # Written in a language the flow does not speak: a person reads it, and the answer
            # says so in that language where we have the words for it.
            await self._foreign(turn, text, reading.language)
            return
        await self._text(turn, text)
        self._privacy_tip(turn, text)

    async def _text(self, turn: Turn, text: str) -> None:
        step = turn.state.get("step")
        if step == "relay":
            await self._relay(turn, text)
        elif step == "postcode" and not any(c.isdigit() for c in text):
            self._kind_fallback(turn)  # words, not a postcode: maybe something else is going on
        elif step == "postcode":
            self._postcode(turn, text)
        elif step == "need":
            await self._need_from_text(turn, text)
        elif step == "prison":
            self._prison_from_text(turn, text)
        elif step is None:
            self._start(turn)
        else:
            self._kind_fallback(turn)

    def _kind_fallback(self, turn: Turn) -> None:
        """Free text the step cannot use: a short kind answer and the two ways on that matter
        most, then the step again."""
        self._say(
            turn,
            "flow.fallback",
            buttons=(
                (self._button(turn, "button.feel_bad", "crisis"),),
                (self._button(turn, "button.write_someone", "handover"),),
            ),
        )
        self._repeat_step(turn)

    async def _foreign(self, turn: Turn, text: str, language: str) -> None:
        self._say_in(turn, language, "flow.foreign_language")
        await self._handover(turn)
        if turn.state.get("step") == "relay":
            await self._relay(turn, text, acknowledge=False)

    # -- steps ------------------------------------------------------------------------------

    def _start(self, turn: Turn) -> None:
        lang = turn.lang
        kept = {k: v for k, v in turn.state.items() if k == PRIVACY_TIP_GIVEN}
        turn.state.clear()
        turn.state.update(kept, lang=lang, step="role")
        self._say(turn, "flow.welcome")
        self._ask_role(turn)

    def _ask_role(self, turn: Turn) -> None:
        """The first question; the other languages sit under it, so nobody has to read German
        first to find English."""
        rows = tuple((self._button(turn, f"role.{r}", f"role:{r}"),) for r in ROLES)
        others = tuple(
            Button(self._t(lang, "language.name"), f"lang:{lang}")
            for lang in self._languages
            if lang != turn.lang
        )
        handover = (self._button(turn, "button.handover", "handover"),)
        self._say(turn, "flow.ask_role", buttons=(*rows, handover, others))

    def _ask_language(self, turn: Turn) -> None:
        row = tuple(
            Button(self._t(lang, "language.name"), f"lang:{lang}") for lang in self._languages
        )
        self._say(turn, "flow.ask_language", buttons=(row,))

    def _ask_postcode(self, turn: Turn) -> None:
        skip = ((self._button(turn, "button.skip_postcode", "postcode:skip"),),)
        self._say(turn, "flow.ask_postcode", buttons=skip + self._nav(turn))

    def _ask_need(self, turn: Turn) -> None:
        rows = tuple(
            (self._button(turn, f"need.{n}", f"need:{n}"),) for n in self._needs_for(turn)
        )
        # A way to say "I am not okay" without having to type it.
        feel_bad = ((self._button(turn, "button.feel_bad", "crisis"),),)
        self._say(turn, "flow.ask_need", buttons=rows + feel_bad + self._nav(turn))

    @staticmethod
    def _needs_for(turn: Turn) -> tuple[str, ...]:
        return NEEDS + EXTRA_NEEDS.get(str(turn.state.get("role")), ())

    def _repeat_step(self, turn: Turn) -> None:
        step = turn.state.get("step")
        if step == "role":
            self._ask_role(turn)
        elif step == "postcode":
            self._ask_postcode(turn)
        elif step == "need":
            self._ask_need(turn)
        elif step == "results":
            self._what_next(turn)
        elif step == "prison":
            self._ask_prison(turn)
        elif step == "relay":
            self._say(turn, "flow.relay_reminder")
        else:
            self._start(turn)

    def _postcode(self, turn: Turn, text: str) -> None:
        try:
            area = gazetteer.lookup(text.strip())
        except gazetteer.MalformedPostcode:
            self._say(turn, "flow.postcode_malformed", buttons=self._nav(turn))
            return
        except gazetteer.UnknownPostcode:
            self._say(turn, "flow.postcode_unknown", buttons=self._nav(turn))
            return
        self._set_area(turn, area)
        turn.state["step"] = "need"
        self._ask_need(turn)

    @staticmethod
    def _set_area(turn: Turn, area: gazetteer.Area) -> None:
        turn.state["area"] = {
            "prefix": area.prefix,
            "lat": area.latitude,
            "lon": area.longitude,
            "state": area.federal_state,
            "precision": area.precision,
        }

    async def _need_from_text(self, turn: Turn, text: str) -> None:
        """Someone who types instead of tapping ("Wie besuche ich Papa im Knast?") still gets
        offers: the lexicon maps the words to needs; only unclear text asks for a button."""
        index = self._referrals.current
        needs = index.lexicon.needs(text) if index is not None else needs_from_text(text)
        if not needs:
            self._kind_fallback(turn)
            return
        # In the order of the buttons: the first one decides which info card comes.
        ordered = [n for n in (*NEEDS, *sorted(needs - set(NEEDS))) if n in needs]
        turn.state.update(needs=ordered, step="results")
        await self._results(turn)

    async def _results(self, turn: Turn) -> None:
        card = self._info_card(turn)
        referral = self._search(turn)
        matches = referral.matches if referral is not None else []
        if not matches:
            self._say(turn, "flow.results_none")
        else:
            self._say(turn, f"card.more.{card}" if card else "flow.results_intro")
        for match in matches:
            turn.replies.append(Reply(self._offer_card(turn, match)))
        if referral is not None:
            self._near_prison(turn, referral)
        self._what_next(turn, offer_followup=bool(matches))
        await self._count_search(turn, found=bool(matches))

    async def _count_search(self, turn: Turn, *, found: bool) -> None:
        if self._statistics is None:
            return
        profile = self._profile(turn)
        # Write-behind (core/statistics.py): this neither waits for nor fails on the database.
        await self._statistics.record_search(
            role=profile.role,
            federal_state=profile.federal_state,
            topics=profile.topics,
            found=found,
        )

    def _info_card(self, turn: Turn) -> str | None:
        """The explanation for the first topic, written for the user's age band; returns the
        topic it explained."""
        role = turn.state.get("role")
        need = next((n for n in turn.state.get("needs", ()) if n in NEEDS), None)
        if role not in ROLES or need is None:
            return None
        self._say(turn, f"card.{need}.{role}")
        return need

    async def _location(self, turn: Turn, value: str) -> None:
        """A shared location stands in for a postcode: only the nearest postcode is kept, the
        coordinates themselves are neither stored nor passed on."""
        step = turn.state.get("step")
        if step == "relay":
            self._say(turn, "flow.location_not_forwarded")
            return
        try:
            latitude, longitude = (float(part) for part in value.split(","))
            area = gazetteer.nearest(latitude, longitude)
        except (ValueError, gazetteer.UnknownPostcode):
            self._say(turn, "flow.location_outside", buttons=self._nav(turn))
            return
        self._set_area(turn, area)
        self._say(turn, "flow.location_used", place=area.prefix)
        if step == "results" and turn.state.get("needs"):
            await self._results(turn)
        elif not turn.state.get("role"):
            # Before the role: ask it now; the postcode question is then skipped.
            turn.state.update(lang=turn.lang, step="role")
            self._ask_role(turn)
        else:
            turn.state["step"] = "need"
            self._ask_need(turn)

    def _what_next(self, turn: Turn, *, offer_followup: bool = False) -> None:
        """Handover, restart and the prison question; for visits the prison comes first. Right
        after offers were shown, the check-in a few days later is offered too."""
        prison = (self._button(turn, "prison.button", "prison"),)
        back, handover, restart = self._nav(turn)
        if "visits" in turn.state.get("needs", ()):
            rows = (prison, handover)
        else:
            rows = (handover, prison)
        if offer_followup and self._can_follow_up(turn):
            label = self._t(turn.lang, "followup.offer", days=self._followups_days())
            rows += ((Button(label, f"{followup.ACTION}:{followup.OPT_IN}"),),)
        self._say(turn, "flow.what_next", buttons=(*rows, back, restart))

    # -- follow-ups: a check-in a few days after the offers ---------------------------------

    def _can_follow_up(self, turn: Turn) -> bool:
        # Only a channel that can reach the user later (Telegram: a sealed chat reference);
        # the web chat keeps no inbox.
        return self._followups is not None and turn.sender.chat_ref is not None

    def _followups_days(self) -> int:
        return self._followups.days if self._followups is not None else 0

    async def _followup(self, turn: Turn, value: str) -> None:
        assert self._followups is not None
        pseudonym = turn.sender.pseudonym
        try:
            if value == followup.OPT_IN and turn.sender.chat_ref is not None:
                area = turn.state.get("area") or {}
                await self._followups.opt_in(
                    channel=turn.sender.channel,
                    pseudonym=pseudonym,
                    chat_ref=turn.sender.chat_ref,
                    language=turn.lang,
                    topics=tuple(turn.state.get("needs", ())),
                    federal_state=area.get("state"),
                )
                self._say(turn, "followup.confirmed", days=self._followups.days)
            elif value in followup.ANSWERS:
                if await self._followups.answer(pseudonym=pseudonym, answer=value):
                    self._say(turn, f"followup.thanks.{value}", buttons=self._nav(turn))
                else:
                    self._say(turn, "followup.gone", buttons=self._nav(turn))
            elif value == followup.STOP:
                await self._followups.cancel(pseudonym=pseudonym)
                self._say(turn, "followup.stopped", buttons=self._nav(turn))
            else:
                self._say(turn, "flow.stale_button")
                self._repeat_step(turn)
        except SQLAlchemyError:
            log.exception("follow-up could not be stored")
            self._say(turn, "flow.save_failed", buttons=self._nav(turn))

    # -- the parent's prison: facts about visits, and offers near it ------------------------

    def _ask_prison(self, turn: Turn) -> None:
        self._say(turn, "flow.prison_ask", buttons=self._nav(turn))

    def _prison_from_text(self, turn: Turn, text: str) -> None:
        """One clear hit is shown, several are offered as buttons, none gets a kind answer;
        the step stays "prison" until one is shown, so the user can simply type again."""
        index = self._referrals.current
        found = find_prisons(index, text) if index is not None else []
        if len(found) == 1:
            self._show_prison(turn, found[0])
        elif found:
            rows = tuple((Button(short_name(p), self._prison_action(p)),) for p in found)
            self._say(turn, "flow.prison_choose", buttons=rows + self._nav(turn))
        else:
            self._say(turn, "flow.prison_none", buttons=self._nav(turn))

    def _show_prison(self, turn: Turn, prison: PrisonRecord) -> None:
        # Only the flow state knows the prison (it could identify a family): never the
        # conversation, its profile or a log line.
        turn.state.update(prison=prison.slug, step="results")
        for part in _parts(self._prison_card(turn.lang, prison), MAX_TEXT):
            turn.replies.append(Reply(part))
        referral = self._search(turn)
        if referral is not None:
            self._near_prison(turn, referral)
        self._what_next(turn)

    def _near_prison(self, turn: Turn, referral: Referral) -> None:
        if not referral.near_prison:
            return
        self._say(turn, "flow.prison_near_intro")
        for match in referral.near_prison:
            turn.replies.append(Reply(self._offer_card(turn, match)))

    def _known_prison(self, key: str) -> PrisonRecord | None:
        index = self._referrals.current
        try:
            return index.prison(key) if index is not None and key else None
        except UnknownPrison:
            return None

    def _search(self, turn: Turn) -> Referral | None:
        """Offers for the user's place and needs, and near the prison once one is known."""
        index = self._referrals.current
        if index is None:
            return None
        try:
            return self._query(turn, index, turn.state.get("prison"))
        except UnknownPrison:
            # The directory dropped the prison since it was chosen: search without it.
            turn.state.pop("prison", None)
            return self._query(turn, index, None)

    def _query(self, turn: Turn, index: ReferralIndex, prison: str | None) -> Referral:
        return index.search(
            area=self._area(turn.state.get("area")),
            role=turn.state.get("role"),
            needs=turn.state.get("needs", ()),
            language=turn.lang,
            prison=prison,
            limit=RESULT_LIMIT,
        )

    @staticmethod
    def _profile(turn: Turn) -> Profile:
        area = turn.state.get("area") or {}
        return Profile(
            language=turn.lang,
            role=turn.state.get("role"),
            federal_state=area.get("state"),
            topics=tuple(turn.state.get("needs", ())),
        )

    async def _handover(self, turn: Turn) -> None:
        try:
            handover = await self._conversations.request_handover(
                channel=turn.sender.channel,
                pseudonym=turn.sender.pseudonym,
                chat_ref=turn.sender.chat_ref,
                profile=self._profile(turn),
            )
        except (SQLAlchemyError, InvalidHours):
            log.exception("handover could not be stored")
            self._say(turn, "flow.save_failed", buttons=self._nav(turn))
            return
        except NoTeamKeys:
            # No team can receive sealed messages yet (set-up not finished): nothing is kept
            # in plain instead, and the user gets the numbers that answer now.
            log.warning("handover refused: no team has keys")
            self._crisis_card(turn, "flow.handover_no_team")
            return
        turn.state["step"] = "relay"
        self._mark_unattended(turn, handover)
        if handover.opens_at is not None:
            self._say(turn, "flow.handover_closed", when=self._when(turn.lang, handover.opens_at))
        elif handover.nobody_online:
            self._say(turn, "flow.handover_nobody_online")
        else:
            self._say(turn, "flow.handover", ahead=handover.waiting_ahead)
            if handover.expected_wait_minutes is not None:
                self._say(turn, "flow.expected_wait", minutes=handover.expected_wait_minutes)
        if handover.out_of_office:
            # The team's own words: sent as they are, in their own message.
            self._say(turn, "flow.out_of_office", text=handover.out_of_office)

    def _when(self, lang: str, at: datetime) -> str:
        """ "Montag, 9:00 Uhr": weekday names from the catalogue, the time as said locally."""
        day = self._t(lang, f"weekday.{at.weekday()}")
        return self._t(lang, "flow.when", day=day, time=f"{at.hour}:{at.minute:02d}")

    async def _stop(self, turn: Turn) -> None:
        """Ends the talk with the team, and any check-in the user asked for."""
        try:
            cancelled = 0
            if self._followups is not None:
                cancelled = await self._followups.cancel(pseudonym=turn.sender.pseudonym)
            ended = await self._conversations.end_by_user(pseudonym=turn.sender.pseudonym)
        except SQLAlchemyError:
            log.exception("conversation could not be ended")
            self._say(turn, "flow.save_failed")
            return
        if ended is None:
            key = "followup.stopped" if cancelled else "flow.stop_nothing"
            self._say(turn, key, buttons=self._nav(turn))
            return
        if cancelled:
            self._say(turn, "followup.stopped")
        turn.state["step"] = "results" if turn.state.get("needs") else "role"
        self._say(turn, "flow.stopped", buttons=self._nav(turn))

    def _ask_erase(self, turn: Turn) -> None:
        buttons = (
            (self._button(turn, "button.erase_yes", "erase:yes"),),
            (self._button(turn, "button.erase_no", "erase:no"),),
        )
        self._say(turn, "flow.erase_confirm", buttons=buttons)

    async def _erase(self, turn: Turn) -> None:
        """Conversations, messages and the flow state go; the language lives on only in this
        answer and its "start over" button, not with us. A second run finds nothing and says
        the same."""
        try:
            await self._conversations.erase_contact(pseudonym=turn.sender.pseudonym)
        except SQLAlchemyError:
            log.exception("erasure failed")
            self._say(turn, "flow.erase_failed")
            return
        lang = turn.lang
        turn.state.clear()
        if self._recent is not None:
            self._recent.forget(turn.sender.pseudonym)
        restart = Button(self._t(lang, "button.restart"), f"restart:{lang}")
        turn.replies.append(Reply(self._t(lang, "flow.erased"), ((restart,),)))

    @staticmethod
    def _mark_unattended(turn: Turn, handover: Handover) -> None:
        """Nobody of the team there yet: every message gets a word that it arrived, until
        someone is (checked per message only while this mark is set)."""
        if handover.conversation.status == "waiting" and (
            handover.opens_at is not None or handover.nobody_online
        ):
            turn.state[UNATTENDED] = True
        else:
            turn.state.pop(UNATTENDED, None)

    async def _relay(self, turn: Turn, text: str, *, acknowledge: bool = True) -> None:
        try:
            await self._conversations.record_user_message(
                pseudonym=turn.sender.pseudonym, text=text
            )
            if acknowledge and turn.state.get(UNATTENDED):
                if await self._conversations.unattended(pseudonym=turn.sender.pseudonym):
                    self._say(turn, "flow.relay_received_nobody")
                else:
                    turn.state.pop(UNATTENDED, None)
        except ConversationClosed:
            turn.state["step"] = "results"
            self._say(turn, "flow.conversation_closed", buttons=self._nav(turn))
        except (SQLAlchemyError, NoTeamKeys):
            # Logged without content; the user is asked to send it again, so nothing is lost.
            log.exception("user message could not be stored")
            self._say(turn, "flow.save_failed")

    # -- crisis and privacy -----------------------------------------------------------------

    async def _on_crisis(
        self,
        turn: Turn,
        found: Assessment | None,
        text: str | None,
        *,
        language: str | None = None,
    ) -> None:
        """Card first, whatever the step; then a person. Someone who was already talking to the
        team keeps doing so (the message is stored as always); anyone else is put in the queue
        now and goes on writing to the team: nobody in crisis is left behind a menu.

        `found` and `text` are None when the user tapped "I am not okay" instead of writing;
        `language` is the language the message was written in, when the model is sure."""
        # Category and level are the only trace of the message: no id, no words on this line.
        log.info(
            "crisis detected",
            extra={
                "category": found.category if found else "button",
                "level": found.level if found else "high",
            },
        )
        self._crisis_card(turn, "crisis.intro", language=language)
        in_relay = turn.state.get("step") == "relay"
        escalated, handover = await self._escalate(turn, found)
        if not escalated:
            # Could not reach the queue: the card is out; the flow goes on as without a crisis.
            if text is not None:
                await self._text(turn, text)
            return
        turn.state.update(lang=turn.lang, step="relay")
        if handover is not None:
            self._mark_unattended(turn, handover)
        if text is not None:
            # The counsellor who takes it needs the words that raised it; the answer below
            # already says whether anyone is there.
            await self._relay(turn, text, acknowledge=False)
        if handover is not None and handover.conversation.status == "active":
            pass  # a counsellor is already writing with them: they read it now
        elif handover is not None and handover.opens_at is not None:
            # Nobody from the team is there now: say so, and point to the numbers that are.
            when = self._when(turn.lang, handover.opens_at)
            self._say(turn, "crisis.alerted_closed", when=when)
        elif handover is not None and handover.nobody_online:
            self._say(turn, "crisis.alerted_nobody")
        elif not in_relay:
            self._say(turn, "crisis.alerted")

    async def _escalate(
        self, turn: Turn, found: Assessment | None
    ) -> tuple[bool, Handover | None]:
        """Into the queue flagged, or the open conversation flagged; the handover says whether
        anyone of the team is there."""
        try:
            handover = await self._conversations.request_handover(
                channel=turn.sender.channel,
                pseudonym=turn.sender.pseudonym,
                chat_ref=turn.sender.chat_ref,
                profile=self._profile(turn),
                crisis=True,
                crisis_level=found.level if found else "high",
                crisis_category=found.category if found else None,
            )
        except (SQLAlchemyError, InvalidHours, NoTeamKeys):
            log.exception("crisis could not be flagged")
            return False, None
        return True, handover

    def _crisis_card(self, turn: Turn, intro: str, *, language: str | None = None) -> None:
        """One message, so the numbers arrive at once and together: the services that answer
        now first, for the user's age and in the language they wrote in (bot/hotlines.py)."""
        lang = self._card_language(turn, language)
        card = self._hotlines.card(
            now=self._clock.now(),
            lang=lang,
            child=turn.state.get("role") == "child",
            catalogue=self._catalogue,
        )
        turn.replies.append(Reply(self._t(lang, intro) + "\n\n" + card))

    def _card_language(self, turn: Turn, language: str | None) -> str:
        # Only a language the flow does not speak switches the card: German and English the
        # user chooses (and short English words are common in German chat).
        if (
            language
            and language not in self._languages
            and self._catalogue.has(language, "crisis.intro")
        ):
            return language
        return turn.lang

    def _say_in(self, turn: Turn, language: str, key: str) -> None:
        """A message in a language the flow does not speak, with the German or English one
        under it, so that it is understood either way."""
        lang = self._card_language(turn, language)
        text = self._t(lang, key)
        if lang != turn.lang:
            text += "\n\n" + self._t(turn.lang, key)
        turn.replies.append(Reply(text))

    def _privacy_tip(self, turn: Turn, text: str) -> None:
        if turn.state.get(PRIVACY_TIP_GIVEN):
            return
        key = personal_data.advice_key(text)
        if key is not None:
            self._say(turn, key)
            turn.state[PRIVACY_TIP_GIVEN] = True

    # -- rendering helpers ------------------------------------------------------------------

    def _say(
        self, turn: Turn, key: str, buttons: tuple[tuple[Button, ...], ...] = (), **values: object
    ) -> None:
        turn.replies.append(Reply(self._t(turn.lang, key, **values), buttons))

    def _button(self, turn: Turn, key: str, action: str) -> Button:
        return Button(self._t(turn.lang, key), action)

    def _nav(self, turn: Turn) -> tuple[tuple[Button, ...], ...]:
        """Back (where there is a step to go back to), a person, and start over."""
        rows = (
            (self._button(turn, "button.handover", "handover"),),
            (self._button(turn, "button.restart", "restart"),),
        )
        if turn.state.get("step") in PREVIOUS_STEP:
            return ((self._button(turn, "button.back", "back"),), *rows)
        return rows

    @staticmethod
    def _area(data: dict[str, Any] | None) -> gazetteer.Area | None:
        if not data:
            return None
        return gazetteer.Area(
            data["prefix"], data["lat"], data["lon"], data["state"], data["precision"]
        )

    @staticmethod
    def _prison_action(prison: PrisonRecord) -> str:
        action = f"prison:{prison.slug}"
        if len(action.encode()) > MAX_ACTION_BYTES:
            return f"prison:{prison.prison_id}"
        return action

    def _prison_card(self, lang: str, prison: PrisonRecord) -> list[str]:
        """Each known visit fact with its label; the unknown ones in one line that says whom
        to ask. Nothing is filled in that the directory does not say."""
        lines = [prison.name]
        if prison.city:
            lines.append(self._t(lang, "prison.city", city=prison.city))
        known, unknown = self._visit_facts(lang, prison.visits)
        if known:
            lines.append(self._t(lang, "prison.heading"))
        lines += known
        if unknown:
            lines.append(self._find_out(lang, prison, unknown))
        else:
            if prison.phone:
                lines.append(self._t(lang, "offer.phone", phone=prison.phone))
            if prison.website:
                lines.append(prison.website)
        checked = prison.assured_date.strftime("%d.%m.%Y")
        lines.append(self._t(lang, "offer.checked", date=checked, source=prison.source))
        return lines

    def _visit_facts(self, lang: str, visits: VisitInfo) -> tuple[list[str], list[str]]:
        known: list[str] = []
        unknown: list[str] = []
        for fact in VISIT_FACTS:
            value = getattr(visits, fact)
            if isinstance(value, bool):
                known.append(self._t(lang, f"prison.{fact}.{'yes' if value else 'no'}"))
            elif value:
                known.append(self._t(lang, f"prison.{fact}", value=value))
            elif not (fact == "booking" and visits.booking_lead_time):
                unknown.append(fact)
            if fact == "booking" and visits.booking_lead_time:
                known.append(
                    self._t(lang, "prison.booking_lead_time", value=visits.booking_lead_time)
                )
        return known, unknown

    def _find_out(self, lang: str, prison: PrisonRecord, unknown: list[str]) -> str:
        """ "Ruf am besten direkt bei der JVA an und frag nach den Besuchszeiten und ..."."""
        names = [self._t(lang, f"prison.ask.{fact}") for fact in unknown]
        facts = names[0]
        if len(names) > 1:
            facts = self._t(lang, "prison.and", first=", ".join(names[:-1]), last=names[-1])
        if prison.phone and prison.website:
            key = "prison.find_out_phone_website"
        elif prison.phone:
            key = "prison.find_out_phone"
        elif prison.website:
            key = "prison.find_out_website"
        else:
            key = "prison.find_out"
        return self._t(lang, key, facts=facts, phone=prison.phone, website=prison.website)

    def _offer_card(self, turn: Turn, match: Match) -> str:
        return offer_card(self._catalogue, turn.lang, match)


def _parts(lines: list[str], size: int) -> list[str]:
    """Lines joined into messages of at most `size` characters, split only between lines
    (a single overlong line is cut): a long card must not fail to send."""
    parts: list[str] = []
    for line in lines:
        line = line if len(line) <= size else line[: size - 1] + "…"
        if parts and len(parts[-1]) + 1 + len(line) <= size:
            parts[-1] += "\n" + line
        else:
            parts.append(line)
    return parts

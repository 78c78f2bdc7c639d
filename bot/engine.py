"""The guided conversation, independent of any channel.

Adapters turn a channel's update into an `Inbound`, call `ConversationEngine.handle`, and render
the returned `Reply` objects. Nothing here knows about Telegram or HTTP.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.exc import SQLAlchemyError

from bot.state import FlowStateStore
from core.conversations import ConversationClosed, ConversationService, Profile
from core.i18n import Catalogue
from referral import gazetteer
from referral.gazetteer import STATE_NAMES
from referral.index import Match, Referral, ReferralIndex, ReferralIndexHolder, UnknownPrison
from referral.prisons import find_prisons, short_name
from referral.records import PrisonRecord, VisitInfo
from referral.text import needs_from_text

log = logging.getLogger(__name__)

ROLES = ("child", "teen", "young_adult", "caregiver", "professional")
NEEDS = ("visits", "talking", "school", "money", "rights", "release")
MAX_TEXT = 4096
# Three cards fit on a phone screen; the nationwide fallback is always among them.
RESULT_LIMIT = 3
# Telegram's limit for callback data; a longer slug falls back to the prison's id.
MAX_ACTION_BYTES = 64
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
    kind: Literal["command", "text", "action", "unsupported"]
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
    ) -> None:
        self._t = catalogue.text
        self._states = states
        self._conversations = conversations
        self._referrals = referrals

    async def handle(self, *, sender: Sender, inbound: Inbound) -> list[Reply]:
        turn = Turn(sender=sender, state=await self._states.get(sender.pseudonym))
        if inbound.kind == "command":
            await self._command(turn, inbound.value)
        elif inbound.kind == "action":
            await self._action(turn, inbound.value)
        elif inbound.kind == "text":
            await self._text(turn, inbound.value[:MAX_TEXT])
        else:
            self._say(turn, "flow.unsupported_media")
        await self._states.set(sender.pseudonym, turn.state)
        return turn.replies

    # -- dispatch ---------------------------------------------------------------------------

    async def _command(self, turn: Turn, command: str) -> None:
        if command in ("start", "neu"):
            self._start(turn)
        elif command == "hilfe":
            self._say(turn, "flow.help")
        else:
            self._say(turn, "flow.unknown_command")

    async def _action(self, turn: Turn, action: str) -> None:
        name, _, value = action.partition(":")
        if name == "restart":
            self._start(turn)
        elif name == "handover":
            await self._handover(turn)
        elif name == "role" and value in ROLES:
            turn.state.update(role=value, step="postcode")
            self._ask_postcode(turn)
        elif name == "postcode" and value == "skip":
            turn.state.update(area=None, step="need")
            self._ask_need(turn)
        elif name == "need" and value in NEEDS:
            turn.state.update(needs=[value], step="results")
            await self._results(turn)
        elif name == "prison" and not value:
            turn.state["step"] = "prison"
            self._ask_prison(turn)
        elif name == "prison" and (prison := self._known_prison(value)) is not None:
            self._show_prison(turn, prison)
        else:
            # A button from an old message: say so and show where we are, never fail silently.
            self._say(turn, "flow.stale_button")
            self._repeat_step(turn)

    async def _text(self, turn: Turn, text: str) -> None:
        step = turn.state.get("step")
        if step == "relay":
            await self._relay(turn, text)
        elif step == "postcode":
            self._postcode(turn, text)
        elif step == "need":
            await self._need_from_text(turn, text)
        elif step == "prison":
            self._prison_from_text(turn, text)
        elif step is None:
            self._start(turn)
        else:
            self._say(turn, "flow.use_buttons")
            self._repeat_step(turn)

    # -- steps ------------------------------------------------------------------------------

    def _start(self, turn: Turn) -> None:
        lang = turn.lang
        turn.state.clear()
        turn.state.update(lang=lang, step="role")
        self._say(turn, "flow.welcome")
        self._ask_role(turn)

    def _ask_role(self, turn: Turn) -> None:
        rows = tuple((self._button(turn, f"role.{r}", f"role:{r}"),) for r in ROLES)
        self._say(turn, "flow.ask_role", buttons=rows)

    def _ask_postcode(self, turn: Turn) -> None:
        skip = ((self._button(turn, "button.skip_postcode", "postcode:skip"),),)
        self._say(turn, "flow.ask_postcode", buttons=skip + self._nav(turn))

    def _ask_need(self, turn: Turn) -> None:
        rows = tuple((self._button(turn, f"need.{n}", f"need:{n}"),) for n in NEEDS)
        self._say(turn, "flow.ask_need", buttons=rows + self._nav(turn))

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
        turn.state.update(
            step="need",
            area={
                "prefix": area.prefix,
                "lat": area.latitude,
                "lon": area.longitude,
                "state": area.federal_state,
                "precision": area.precision,
            },
        )
        self._ask_need(turn)

    async def _need_from_text(self, turn: Turn, text: str) -> None:
        """Someone who types instead of tapping ("Wie besuche ich Papa im Knast?") still gets
        offers: the lexicon maps the words to needs; only unclear text asks for a button."""
        index = self._referrals.current
        needs = index.lexicon.needs(text) if index is not None else needs_from_text(text)
        if not needs:
            self._say(turn, "flow.use_buttons")
            self._ask_need(turn)
            return
        turn.state.update(needs=sorted(needs), step="results")
        await self._results(turn)

    async def _results(self, turn: Turn) -> None:
        referral = self._search(turn)
        matches = referral.matches if referral is not None else []
        self._say(turn, "flow.results_intro" if matches else "flow.results_none")
        for match in matches:
            turn.replies.append(Reply(self._offer_card(turn, match)))
        if referral is not None:
            self._near_prison(turn, referral)
        self._what_next(turn)

    def _what_next(self, turn: Turn) -> None:
        """Handover, restart and the prison question; for visits the prison comes first."""
        prison = (self._button(turn, "prison.button", "prison"),)
        handover, restart = self._nav(turn)
        if "visits" in turn.state.get("needs", ()):
            self._say(turn, "flow.what_next", buttons=(prison, handover, restart))
        else:
            self._say(turn, "flow.what_next", buttons=(handover, prison, restart))

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

    async def _handover(self, turn: Turn) -> None:
        area = turn.state.get("area") or {}
        profile = Profile(
            language=turn.lang,
            role=turn.state.get("role"),
            federal_state=area.get("state"),
            topics=tuple(turn.state.get("needs", ())),
        )
        try:
            handover = await self._conversations.request_handover(
                channel=turn.sender.channel,
                pseudonym=turn.sender.pseudonym,
                chat_ref=turn.sender.chat_ref,
                profile=profile,
            )
        except SQLAlchemyError:
            log.exception("handover could not be stored")
            self._say(turn, "flow.save_failed", buttons=self._nav(turn))
            return
        turn.state["step"] = "relay"
        self._say(turn, "flow.handover", ahead=handover.waiting_ahead)

    async def _relay(self, turn: Turn, text: str) -> None:
        try:
            await self._conversations.record_user_message(
                pseudonym=turn.sender.pseudonym, text=text
            )
        except ConversationClosed:
            turn.state["step"] = "results"
            self._say(turn, "flow.conversation_closed", buttons=self._nav(turn))
        except SQLAlchemyError:
            # Logged without content; the user is asked to send it again, so nothing is lost.
            log.exception("user message could not be stored")
            self._say(turn, "flow.save_failed")

    # -- rendering helpers ------------------------------------------------------------------

    def _say(
        self, turn: Turn, key: str, buttons: tuple[tuple[Button, ...], ...] = (), **values: object
    ) -> None:
        turn.replies.append(Reply(self._t(turn.lang, key, **values), buttons))

    def _button(self, turn: Turn, key: str, action: str) -> Button:
        return Button(self._t(turn.lang, key), action)

    def _nav(self, turn: Turn) -> tuple[tuple[Button, ...], ...]:
        return (
            (self._button(turn, "button.handover", "handover"),),
            (self._button(turn, "button.restart", "restart"),),
        )

    @staticmethod
    def _area(data: dict[str, Any] | None) -> gazetteer.Area | None:
        if not data:
            return None
        return gazetteer.Area(
            data["prefix"], data["lat"], data["lon"], data["state"], data["precision"]
        )

    def _reason(self, lang: str, match: Match) -> str:
        """The one-line why: "12 km · für Jugendliche · Besuche und Kontakt"."""
        reason = match.reason
        parts: list[str] = []
        if reason.distance_km is not None and reason.scope in ("local", "near_prison"):
            parts.append(self._t(lang, "offer.distance", km=round(reason.distance_km)))
        if reason.scope == "state" and reason.state:
            parts.append(self._t(lang, "offer.in_state", state=STATE_NAMES[reason.state]))
        elif reason.scope in ("national", "online", "near_prison"):
            parts.append(self._t(lang, f"offer.scope.{reason.scope}"))
        if reason.target_group:
            parts.append(self._t(lang, f"offer.for_role.{reason.target_group}"))
        parts += [self._t(lang, f"need.{need}") for need in reason.needs]
        return " · ".join(parts)

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
        offer, lang = match.offer, turn.lang
        lines = [offer.name, offer.organisation, self._reason(lang, match)]
        if offer.description:
            lines.append(offer.description)
        if offer.phone:
            lines.append(self._t(lang, "offer.phone", phone=offer.phone))
        if offer.website:
            lines.append(offer.website)
        checked = offer.assured_date.strftime("%d.%m.%Y")
        lines.append(self._t(lang, "offer.checked", date=checked, source=offer.source))
        return "\n".join(lines)


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

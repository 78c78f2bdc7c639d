"""The crisis card: which services answer now, for this age and in this language.

The facts (numbers, hours, languages, sources) are data, in directory/seed/hotlines.json, each
with its source and dates; the wording is in the catalogues (crisis.card_*). A service that is
closed now is listed under "later" with its hours, so that a child at 23:00 is not sent to a
line where nobody answers; the emergency numbers come on every card.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.hours import TIMEZONE
from core.i18n import Catalogue

HOTLINES_FILE = Path(__file__).resolve().parent.parent / "directory" / "seed" / "hotlines.json"
EMERGENCY = "emergency"


class HotlineDataError(ValueError):
    """hotlines.json is not usable: said at start, not on a child's crisis."""


@dataclass(frozen=True, slots=True)
class Hotline:
    id: str
    names: Mapping[str, str]
    phone: str | None
    phone_extra: str | None
    web: str | None
    audience: str  # child, young, all
    languages: tuple[str, ...]
    cards: tuple[str, ...]  # the card languages that list it
    always: bool
    hours: Mapping[int, tuple[tuple[time, time], ...]]
    source: str
    source_date: str
    last_checked: str

    def name(self, lang: str) -> str:
        return self.names.get(lang) or self.names.get("en" if lang != "de" else "de") or self.id

    def open_at(self, local: datetime) -> bool:
        if self.always:
            return True
        now = local.time()
        return any(start <= now < end for start, end in self.hours.get(local.weekday(), ()))

    def contact(self) -> str:
        parts = [p for p in (self.phone, self.phone_extra, self.web) if p]
        return " / ".join(parts)


def _parse(entry: Mapping[str, Any]) -> Hotline:
    try:
        hours_field = entry["hours"]
        always = hours_field == "always"
        hours: dict[int, tuple[tuple[time, time], ...]] = {}
        if not always:
            for day, spans in hours_field.items():
                hours[int(day)] = tuple(
                    (time.fromisoformat(a), time.fromisoformat(b)) for a, b in spans
                )
        if not entry.get("source") or not entry.get("last_checked"):
            raise HotlineDataError(f"{entry.get('id')}: a fact needs a source and a check date")
        languages = tuple(entry["languages"])
        return Hotline(
            id=entry["id"],
            names=dict(entry["name"]),
            phone=entry.get("phone"),
            phone_extra=entry.get("phone_extra"),
            web=entry.get("web"),
            audience=entry["audience"],
            languages=languages,
            cards=tuple(entry.get("cards", languages)),
            always=always,
            hours=hours,
            source=entry["source"],
            source_date=entry.get("source_date", ""),
            last_checked=entry["last_checked"],
        )
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, HotlineDataError):
            raise
        raise HotlineDataError(f"{entry.get('id')}: {error}") from error


class HotlineBook:
    def __init__(self, hotlines: Sequence[Hotline]) -> None:
        if not any(h.id == EMERGENCY for h in hotlines):
            raise HotlineDataError("the emergency numbers are missing")
        self.hotlines = tuple(hotlines)

    @classmethod
    def load(cls, path: Path = HOTLINES_FILE) -> HotlineBook:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls([_parse(entry) for entry in data["hotlines"]])

    def card(self, *, now: datetime, lang: str, child: bool, catalogue: Catalogue) -> str:
        """The card's text: open now, later (with hours), then the emergency numbers."""
        t = catalogue.text
        local = now.astimezone(TIMEZONE)
        own = [h for h in self.hotlines if h.id != EMERGENCY and lang in h.cards]
        german = [
            h
            for h in self.hotlines
            if h.id != EMERGENCY and "de" in h.cards and h not in own and lang not in ("de", "en")
        ]
        if lang in ("de", "en"):
            own = [h for h in self.hotlines if h.id != EMERGENCY and "de" in h.cards]
        if child:
            # For the youngest a plainer card: phone lines for children or everyone, no chats.
            own = [h for h in own if h.phone and h.audience in ("child", "all")]
            german = [h for h in german if h.phone and h.audience in ("child", "all")]
        prefix = "crisis.card_child" if child else "crisis.card"
        lines: list[str] = []
        for group, heading in ((own, None), (german, f"{prefix}_in_german")):
            open_now = [h for h in group if h.open_at(local)]
            later = [h for h in group if not h.open_at(local)]
            if heading and group:
                lines.append(t(lang, heading))
            if open_now:
                if heading is None:
                    lines.append(t(lang, f"{prefix}_now"))
                for h in open_now:
                    key = "crisis.line_always" if h.always else "crisis.line"
                    lines.append(t(lang, key, name=h.name(lang), contact=h.contact()))
            if later:
                if heading is None or open_now:
                    lines.append(t(lang, f"{prefix}_later"))
                for h in later:
                    hours = self.hours_text(h, lang=lang, catalogue=catalogue)
                    lines.append(
                        t(
                            lang,
                            "crisis.line_hours",
                            name=h.name(lang),
                            contact=h.contact(),
                            hours=hours,
                        )
                    )
        emergency = next(h for h in self.hotlines if h.id == EMERGENCY)
        lines.append(
            t(lang, f"{prefix}_danger", emergency=emergency.phone, police=emergency.phone_extra)
        )
        lines.append(t(lang, "crisis.card_again"))
        return "\n".join(lines)

    @staticmethod
    def hours_text(hotline: Hotline, *, lang: str, catalogue: Catalogue) -> str:
        """ "Mo–Sa 14–20 Uhr": runs of days with the same hours, joined."""
        t = catalogue.text
        runs: list[tuple[int, int, tuple[tuple[time, time], ...]]] = []
        for day in range(7):
            spans = hotline.hours.get(day)
            if not spans:
                continue
            if runs and runs[-1][1] == day - 1 and runs[-1][2] == spans:
                runs[-1] = (runs[-1][0], day, spans)
            else:
                runs.append((day, day, spans))
        parts = []
        for first, last, spans in runs:
            days = t(lang, f"weekday.short.{first}")
            if last != first:
                days += "–" + t(lang, f"weekday.short.{last}")
            times = ", ".join(f"{_clock(a)}–{_clock(b)}" for a, b in spans)
            parts.append(t(lang, "crisis.hours", days=days, times=times))
        return "; ".join(parts)


def _clock(at: time) -> str:
    return f"{at.hour}" if not at.minute else f"{at.hour}:{at.minute:02d}"


@lru_cache(maxsize=1)
def default_hotlines() -> HotlineBook:
    return HotlineBook.load()

"""An offer as a chat card, in the user's language: name, organisation, the one-line reason
("12 km · für Jugendliche · Besuche und Kontakt"), contact, and the source with its date. The
bot and the console's referral cards send the same text."""

from __future__ import annotations

from babel import Locale, UnknownLocaleError

from core.i18n import DEFAULT_LANGUAGE, Catalogue
from referral.index import Match


def reason_line(catalogue: Catalogue, lang: str, match: Match) -> str:
    t = catalogue.text
    reason = match.reason
    parts: list[str] = []
    if reason.distance_km is not None and reason.scope in ("local", "near_prison"):
        km = round(reason.distance_km)
        # "0 km" reads like an error: an offer in the user's own postcode area is "nearby".
        parts.append(t(lang, "offer.distance", km=km) if km else t(lang, "offer.nearby"))
    if reason.scope == "state" and reason.state:
        parts.append(t(lang, "offer.in_state", state=t(lang, f"state.{reason.state}")))
    elif reason.scope in ("national", "online", "near_prison"):
        parts.append(t(lang, f"offer.scope.{reason.scope}"))
    if reason.target_group:
        parts.append(t(lang, f"offer.for_role.{reason.target_group}"))
    parts += [t(lang, f"need.{need}") for need in reason.needs]
    # The asked-for language only when the card is not written in it anyway.
    if reason.language and reason.language != lang:
        parts.append(t(lang, "offer.in_language", language=language_name(lang, reason.language)))
    parts += [t(lang, f"offer.delivery.{mode}") for mode in reason.delivery]
    return " · ".join(parts)


def language_name(lang: str, code: str) -> str:
    """A language's name in the card's language, from CLDR (through Babel), so that no
    catalogue has to list every language an offer may speak; the code when CLDR has none."""
    try:
        names = Locale.parse(lang).languages
    except (UnknownLocaleError, ValueError):
        names = Locale.parse(DEFAULT_LANGUAGE).languages
    return names.get(code, code)


def offer_card(catalogue: Catalogue, lang: str, match: Match) -> str:
    t = catalogue.text
    offer = match.offer
    lines = [offer.name, offer.organisation, reason_line(catalogue, lang, match)]
    if offer.description:
        lines.append(offer.description)
    if offer.phone:
        lines.append(t(lang, "offer.phone", phone=offer.phone))
    if offer.website:
        lines.append(offer.website)
    checked = offer.assured_date.strftime("%d.%m.%Y")
    lines.append(t(lang, "offer.checked", date=checked, source=offer.source))
    return "\n".join(lines)

"""Spotting personal data in a message (phone numbers, e-mail and street addresses, a full name),
so the bot can say gently that nobody here needs them.

Nothing is removed or stored differently: the message goes where it would have gone anyway, and
the tip is a courtesy, not a filter. Like crisis detection, the answer names kinds, never text.
"""

from __future__ import annotations

import re

PHONE, EMAIL, ADDRESS, NAME = "phone", "email", "address", "name"
CONTACT_TIP = "privacy.contact"
NAME_TIP = "privacy.name"

# A number that starts like a phone number (+49, 0049, 0...) with separators people type; dots
# are left out on purpose, so a date (01.02.2024) is never a phone number.
_PHONE = re.compile(r"(?<![\w+])(?:\+|00|0)\d(?:[ \-/()]{0,2}\d){5,16}(?!\w)")
PHONE_MIN_DIGITS = 7
# Numbers the bot itself gives out: repeating one of them is no reason for a privacy tip.
_HOTLINES = frozenset({"116111", "08001110111", "08001110222", "0800111011", "0800111022"})
_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)*\.[^\W\d_]{2,}", re.UNICODE)
_STREET_END = (
    r"(?:stra(?:ß|ss)e|str\.?|weg|gasse|allee|platz|ring|damm|ufer|chaussee|steig|pfad|"
    r"zeile|graben|markt|hof)"
)
# "Hauptstraße 5", "Musterweg 12a", "Friedrich-Ebert-Str. 7", "Lange Straße 3"
_ADDRESS = re.compile(
    rf"(?<!\w)(?:[^\W\d_][\w\-]*{_STREET_END}|stra(?:ß|ss)e)\s*\d{{1,4}}\s?[a-zA-Z]?(?!\w)",
    re.IGNORECASE,
)
_NAME_INTRO = re.compile(
    r"(?:\bich\s+hei(?:ß|ss)e|\bmein\s+name\s+ist|\bmein\s+name\s+lautet|\bmy\s+name\s+is|"
    r"\bmy\s+names|\bmy\s+name's|\bi\s+am\s+called|\bim\s+called|\bi'm\s+called)"
    r"\s+([^\W\d_][\w'\-]+)\s+([^\W\d_][\w'\-]+)",
    re.IGNORECASE,
)
# Words that can follow a first name without being a surname ("ich heiße Max und bin 14").
_NOT_A_NAME = frozenset(
    """und aber oder bin ich bin und du mit aus von in im am auch nicht so eigentlich wirklich
    echt nur ganz gar doch halt mal jetzt schon noch sondern weil wenn dass das der die
    ja nein leider anders nicht and but or i im am from in at not so really just actually
    also too the a an is was""".split()
)


def find(text: str) -> frozenset[str]:
    """The kinds of personal data a text seems to contain."""
    kinds: set[str] = set()
    if any(_is_phone(m.group()) for m in _PHONE.finditer(text)):
        kinds.add(PHONE)
    if _EMAIL.search(text):
        kinds.add(EMAIL)
    if _ADDRESS.search(text):
        kinds.add(ADDRESS)
    if any(_is_name(m.group(1), m.group(2)) for m in _NAME_INTRO.finditer(text)):
        kinds.add(NAME)
    return frozenset(kinds)


def advice_key(text: str) -> str | None:
    """The catalogue key of the gentle tip for a text, or None when there is nothing to say."""
    kinds = find(text)
    if kinds & {PHONE, EMAIL, ADDRESS}:
        return CONTACT_TIP
    if NAME in kinds:
        return NAME_TIP
    return None


def _is_phone(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    return len(digits) >= PHONE_MIN_DIGITS and digits not in _HOTLINES


def _is_name(first: str, second: str) -> bool:
    return first.casefold() not in _NOT_A_NAME and second.casefold() not in _NOT_A_NAME

"""Codes the directory accepts, beyond the referral vocabularies in referral/records.py.

Codes are data, never display text: the bot and the console translate them.
"""

from __future__ import annotations

from referral.records import (
    COVERAGE,
    DELIVERY,
    FEDERAL_STATES,
    NEEDS,
    STATE_NAMES,
    TARGET_GROUPS,
)

__all__ = [
    "COVERAGE",
    "DELIVERY",
    "FEDERAL_STATES",
    "NEEDS",
    "STATE_NAMES",
    "TARGET_GROUPS",
]

# HSDS 3.0 service.status, spelled as the standard spells it.
SERVICE_STATUSES = ("active", "inactive", "defunct", "temporarily closed")
# Our curation step: only published records reach the bot.
PUBLICATION_STATUSES = ("draft", "published")
LOCATION_TYPES = ("physical", "postal", "virtual")
# RFC 6350 types, as HSDS 3.0 phone.type lists them.
PHONE_TYPES = ("text", "voice", "fax", "cell", "video", "pager", "textphone")
SCHEDULE_FREQUENCIES = ("WEEKLY", "MONTHLY")
PRISON_TYPES = (
    "men",
    "women",
    "youth",
    "open",
    "closed",
    "remand",
    "preventive_detention",
    "social_therapy",
    "hospital",
    "juvenile_arrest",
    "mother_child",
)

# The facets travel as HSDS attributes; each facet is one taxonomy of ours.
TAXONOMIES = {
    "lotse_target_group": TARGET_GROUPS,
    "lotse_need": NEEDS,
    "lotse_delivery": DELIVERY,
}
FACET_OF_TAXONOMY = {
    "lotse_target_group": "target_groups",
    "lotse_need": "needs",
    "lotse_delivery": "delivery",
}

_STATE_BY_NAME = {name.casefold(): code for code, name in STATE_NAMES.items()}

# A generous box around Germany: a point outside it is a typo or swapped coordinates.
LATITUDE_RANGE = (47.2, 55.1)
LONGITUDE_RANGE = (5.8, 15.1)
AGE_RANGE = (0, 99)


def state_code(value: str) -> str | None:
    """A federal state given as code ("NW") or German name ("Nordrhein-Westfalen")."""
    text = value.strip()
    if text.upper() in STATE_NAMES:
        return text.upper()
    return _STATE_BY_NAME.get(text.casefold())


def in_vocabulary_order(codes: list[str], vocabulary: tuple[str, ...]) -> list[str]:
    """Deduplicated, in the vocabulary's order, so equal sets compare equal."""
    present = set(codes)
    return [code for code in vocabulary if code in present]

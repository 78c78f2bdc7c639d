"""Outcome codes a counsellor sets when closing a conversation: what it was about and what came
of it. Codes only, so statistics can count them and nobody can write a name into them."""

from __future__ import annotations

from referral.records import NEEDS

RESULTS = ("referral_given", "crisis_handled", "follow_up_wished", "info_given", "no_contact")
# A topic is recorded as "topic:<need>", next to the result codes.
OUTCOMES = RESULTS + tuple(f"topic:{need}" for need in NEEDS)


# What a user may answer to a follow-up ("Hat dir das Angebot geholfen?"), counted by
# core/statistics.py; here, with the other codes, so the statistics need not import the sender.
FOLLOWUP_ANSWERS = ("helped", "partly", "not_helped")


class UnknownOutcome(ValueError):
    pass


def check_outcomes(codes: list[str]) -> list[str]:
    """The codes, each once and in vocabulary order; an unknown one is refused by name."""
    unknown = sorted(set(codes) - set(OUTCOMES))
    if unknown:
        raise UnknownOutcome(f"unknown outcome codes: {', '.join(unknown)}")
    return [code for code in OUTCOMES if code in codes]

"""What the referral API returns: codes and numbers, plus one rendered line per offer.

The reason comes twice: as codes (`reason`) for clients that render it themselves from the
translation catalogue, and as the one-line text the bot shows (`reason_text`, rendered by
`referral.cards.reason_line` in the request's language), so a simple client shows what a user
of the bot would read.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

from core.i18n import Catalogue
from referral.cards import reason_line
from referral.index import Match, Referral
from referral.records import PrisonRecord

Scope = Literal["local", "state", "national", "online", "near_prison"]


class ReasonPublic(BaseModel):
    """Why an offer fits, as parts to render: e.g. "12 km, for teens, visits"."""

    scope: Scope = Field(
        description="local: its radius reaches the user; state: it covers the user's federal "
        "state; national / online: anywhere in Germany; near_prison: it supports visits at, or "
        "works with, the parent's prison."
    )
    distance_km: float | None = Field(
        description="Kilometres from the user (for near_prison: from the prison) to the offer; "
        "null when the offer has no place.",
        examples=[12.4],
    )
    target_group: str | None = Field(
        description="The role the offer is for (the role asked for), null if none was given.",
        examples=["teen"],
    )
    needs: list[str] = Field(
        description="Requested needs the offer covers.", examples=[["visits"]]
    )
    language: str | None = Field(
        description="The requested language, when the offer is available in it.", examples=["tr"]
    )
    delivery: list[str] = Field(description="Requested delivery modes the offer has.")
    state: str | None = Field(
        description="For scope state: the federal state code (ISO 3166-2 suffix, e.g. NW).",
        examples=["NW"],
    )
    linked_prison: bool = Field(
        description="The directory lists the offer as working with the parent's prison."
    )


class OfferMatchPublic(BaseModel):
    """One offer at one place, with why it fits."""

    service_id: str = Field(examples=["treffpunkt-nuernberg-kinder"])
    name: str = Field(examples=["Angebote für Kinder von Inhaftierten"])
    organisation: str = Field(examples=["Treffpunkt e.V."])
    description: str
    coverage: Literal["radius", "states", "national", "online"]
    target_groups: list[str] = Field(examples=[["child", "teen", "caregiver"]])
    needs: list[str] = Field(examples=[["visits", "talking"]])
    delivery: list[str] = Field(examples=[["in_person", "phone"]])
    languages: list[str] = Field(examples=[["de", "en"]])
    min_age: int | None
    max_age: int | None
    city: str | None = Field(examples=["Nürnberg"])
    phone: str | None = Field(examples=["116 111"])
    website: str | None
    source: str = Field(description="Where the directory has this offer from.")
    last_checked: date = Field(description="When an editor last confirmed the offer.")
    score: float = Field(description="Ranking score; only the order means something.")
    reason: ReasonPublic
    reason_text: str = Field(
        description="The reason as one line in the request's language (`lang`: de or en; "
        "German for any other).",
        examples=["12 km · für Jugendliche · Besuche und Kontakt"],
    )

    @classmethod
    def from_match(cls, match: Match, *, reason_text: str) -> OfferMatchPublic:
        offer, reason = match.offer, match.reason
        return cls(
            service_id=offer.service_id,
            name=offer.name,
            organisation=offer.organisation,
            description=offer.description,
            coverage=offer.coverage,  # type: ignore[arg-type]
            target_groups=sorted(offer.target_groups),
            needs=sorted(offer.needs),
            delivery=sorted(offer.delivery),
            languages=sorted(offer.languages),
            min_age=offer.min_age,
            max_age=offer.max_age,
            city=offer.city,
            phone=offer.phone,
            website=offer.website,
            source=offer.source,
            last_checked=offer.assured_date,
            score=match.score,
            reason=ReasonPublic(
                scope=reason.scope,
                distance_km=reason.distance_km,
                target_group=reason.target_group,
                needs=list(reason.needs),
                language=reason.language,
                delivery=list(reason.delivery),
                state=reason.state,
                linked_prison=reason.linked_prison,
            ),
            reason_text=reason_text,
        )


class VisitInfoPublic(BaseModel):
    """Visit rules as data; null means unknown, and the client says how to find out."""

    regular_times: str | None = Field(default=None, description="Regular visiting times.")
    booking: str | None = Field(default=None, description="How to book a visit.")
    booking_lead_time: str | None = Field(default=None, description="How far ahead to book.")
    children_rules: str | None = Field(default=None, description="Rules for visiting children.")
    family_rooms: bool | None = Field(default=None, description="A child-friendly visiting room.")
    family_days: str | None = Field(default=None, description="Family days, if any.")
    video_visits: bool | None = Field(default=None, description="Video visits are possible.")
    special_visits_minors: str | None = Field(
        default=None, description="Extra visits for minors (e.g. NRW's weekly special visits)."
    )


class PrisonPublic(BaseModel):
    """The parent's prison, with its visit rules, source and last-checked date."""

    prison_id: str
    slug: str = Field(examples=["jva-bielefeld-brackwede"])
    name: str = Field(examples=["JVA Bielefeld-Brackwede"])
    federal_state: str = Field(examples=["NW"])
    city: str | None
    address: str | None
    postal_code: str | None
    latitude: float | None = Field(description="Null when no source gives the address.")
    longitude: float | None
    prison_types: list[str] = Field(examples=[["men", "closed", "remand"]])
    website: str | None
    phone: str | None
    source: str
    last_checked: date
    visits: VisitInfoPublic

    @classmethod
    def from_record(cls, prison: PrisonRecord) -> PrisonPublic:
        visits = prison.visits
        return cls(
            prison_id=prison.prison_id,
            slug=prison.slug,
            name=prison.name,
            federal_state=prison.federal_state,
            city=prison.city,
            address=prison.address,
            postal_code=prison.postal_code,
            latitude=prison.latitude,
            longitude=prison.longitude,
            prison_types=sorted(prison.prison_types),
            website=prison.website,
            phone=prison.phone,
            source=prison.source,
            last_checked=prison.assured_date,
            visits=VisitInfoPublic(
                regular_times=visits.regular_times,
                booking=visits.booking,
                booking_lead_time=visits.booking_lead_time,
                children_rules=visits.children_rules,
                family_rooms=visits.family_rooms,
                family_days=visits.family_days,
                video_visits=visits.video_visits,
                special_visits_minors=visits.special_visits_minors,
            ),
        )


class AreaPublic(BaseModel):
    """Where the search was centred, as coarse as the postcode given (the postcode itself is
    not repeated)."""

    federal_state: str | None = Field(
        description="Federal state code, null when a partial postcode spans several states.",
        examples=["BY"],
    )
    precision: int = Field(description="How many postcode digits were given.", examples=[5])


class ReferralPublic(BaseModel):
    """Ranked offers for one user, and optionally the parent's prison with offers near it."""

    area: AreaPublic | None = Field(description="Null when no postcode was given.")
    needs: list[str] = Field(
        description="The needs ranked for: the codes given plus those read from the free text.",
        examples=[["visits", "money"]],
    )
    needs_from_text: list[str] = Field(
        description="The needs read from the free text `q` alone.", examples=[["money"]]
    )
    matches: list[OfferMatchPublic] = Field(
        description="Best first, one place per service; a nationwide offer is always among them "
        "when one fits the role and age, and one with a phone number when none of the others "
        "has one and such an offer fits."
    )
    prison: PrisonPublic | None = Field(description="The parent's prison, when one was given.")
    near_prison: list[OfferMatchPublic] = Field(
        description="Visit support near the parent's prison, or offers that work with it; "
        "services already in `matches` are not repeated."
    )

    @classmethod
    def from_referral(
        cls, referral: Referral, *, area: AreaPublic | None, catalogue: Catalogue, lang: str
    ) -> ReferralPublic:
        def public(match: Match) -> OfferMatchPublic:
            return OfferMatchPublic.from_match(
                match, reason_text=reason_line(catalogue, lang, match)
            )

        return cls(
            area=area,
            needs=list(referral.needs),
            needs_from_text=list(referral.needs_from_text),
            matches=[public(m) for m in referral.matches],
            prison=PrisonPublic.from_record(referral.prison) if referral.prison else None,
            near_prison=[public(m) for m in referral.near_prison],
        )


class FieldProblemPublic(BaseModel):
    loc: list[str] = Field(examples=[["query", "postcode"]])
    msg: str = Field(examples=["postcode must be 2 to 5 digits"])


class ProblemPublic(BaseModel):
    """A 422 answer: readable messages, never the values that were sent."""

    detail: str = Field(
        description="The first problem's message.", examples=["postcode must be 2 to 5 digits"]
    )
    errors: list[FieldProblemPublic]

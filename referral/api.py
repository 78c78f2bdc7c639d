"""The referral JSON API (`GET /api/v1/referrals`) and the refresh of the index it reads.

The route reads the current index from `services.referrals` (a `ReferralIndexHolder`);
`refresh_referral_index` rebuilds it from the directory and swaps it in.
Bad input gets a 422 with a readable message per field, never the value that was sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from core.i18n import DEFAULT_LANGUAGE, Catalogue
from referral import gazetteer
from referral.index import MAX_AGE, InvalidQuery, ReferralIndex, ReferralIndexHolder, UnknownPrison
from referral.records import DELIVERY, NEEDS
from referral.schemas import AreaPublic, ProblemPublic, ReferralPublic

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

MAX_LIMIT = 20
MAX_TEXT = 500
Role = Literal["child", "teen", "young_adult", "caregiver", "parent_in_prison", "professional"]
# One readable message per query parameter, for whatever FastAPI's own validation finds wrong.
MESSAGES = {
    "postcode": "postcode must be 2 to 5 digits",
    "role": "unknown role: use child, teen, young_adult, caregiver, parent_in_prison or "
    "professional",
    "age": f"age must be a whole number from 0 to {MAX_AGE}",
    "needs": "unknown need code: use " + ", ".join(NEEDS),
    "q": f"q must be at most {MAX_TEXT} characters",
    "lang": "lang must be a two-letter language code (ISO 639-1)",
    "prison": "unknown prison",
    "delivery": "unknown delivery mode: use " + ", ".join(DELIVERY),
    "limit": f"limit must be a whole number from 1 to {MAX_LIMIT}",
}

POSTCODE = (
    "German postcode, 2 to 5 digits (a partial postcode stands for its whole region). "
    "Without it, only nationwide phone and online offers are ranked."
)
ROLE = "Who is asking; offers for other target groups are left out."
AGE = "Age in years; offers with an age range that excludes it are left out."
NEEDS_DOC = "Comma-separated need codes: " + ", ".join(NEEDS) + "."
TEXT = (
    "Free text in German or English (slang and typos are fine); it is mapped to need codes, "
    "returned as `needs_from_text`. Never logged."
)
LANG = (
    "Preferred language (ISO 639-1); offers in it rank higher. `reason_text` is written in it "
    "when it is de or en, otherwise (and without lang) in German."
)
PRISON = "The parent's prison (slug or id): adds the prison's visit rules and offers near it."
DELIVERY_DOC = "Preferred delivery modes, comma-separated: " + ", ".join(DELIVERY) + "."
LIMIT = "How many offers to return (a nationwide fallback is always among them)."
PostcodeParam = Annotated[str | None, Query(description=POSTCODE, examples=["33647"])]
RoleParam = Annotated[Role | None, Query(description=ROLE, examples=["teen"])]
AgeParam = Annotated[int | None, Query(ge=0, le=MAX_AGE, description=AGE, examples=[14])]
NeedsParam = Annotated[str | None, Query(description=NEEDS_DOC, examples=["visits,money"])]
TextParam = Annotated[
    str | None, Query(max_length=MAX_TEXT, description=TEXT, examples=["Papa sitzt im Knast"])
]
LangParam = Annotated[str | None, Query(pattern="^[a-z]{2}$", description=LANG, examples=["de"])]
PrisonParam = Annotated[
    str | None, Query(max_length=120, description=PRISON, examples=["jva-bielefeld-brackwede"])
]
DeliveryParam = Annotated[str | None, Query(description=DELIVERY_DOC, examples=["phone,online"])]
LimitParam = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=LIMIT)]


class _HasDirectory(Protocol):
    """The part of lotse.runtime.Services that the refresh needs."""

    sessions: async_sessionmaker[AsyncSession]
    referrals: ReferralIndexHolder


class ReadableErrorsRoute(APIRoute):
    """Answers FastAPI's validation errors on these routes with one readable message per
    field. FastAPI's default answer echoes the input, which could be what a child typed."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                fields = [str(e.get("loc", ("", ""))[-1]) for e in error.errors()]
                return problem(*dict.fromkeys(fields))

        return route


def problem(*fields: str, messages: dict[str, str] | None = None) -> JSONResponse:
    texts = messages or {}
    errors = [
        {"loc": ["query", name], "msg": texts.get(name) or MESSAGES.get(name, "invalid value")}
        for name in fields
    ]
    return JSONResponse({"detail": errors[0]["msg"], "errors": errors}, status_code=422)


def get_referral_index(request: Request) -> ReferralIndex:
    index = request.app.state.services.referrals.current
    if index is None:
        raise HTTPException(status_code=503, detail="referral directory is not loaded yet")
    return index


def get_catalogue(request: Request) -> Catalogue:
    catalogue: Catalogue = request.app.state.services.catalogue
    return catalogue


IndexDep = Annotated[ReferralIndex, Depends(get_referral_index)]
CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]


def create_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["referral"], route_class=ReadableErrorsRoute)

    @router.get(
        "/referrals",
        response_model=ReferralPublic,
        summary="Support offers for a child, a caregiver or a professional",
        responses={
            422: {"model": ProblemPublic, "description": "A parameter is malformed or unknown."},
            503: {"description": "The directory is still being loaded."},
        },
    )
    async def referrals(
        index: IndexDep,
        catalogue: CatalogueDep,
        postcode: PostcodeParam = None,
        role: RoleParam = None,
        age: AgeParam = None,
        needs: NeedsParam = None,
        q: TextParam = None,
        lang: LangParam = None,
        prison: PrisonParam = None,
        delivery: DeliveryParam = None,
        limit: LimitParam = 5,
    ) -> ReferralPublic | JSONResponse:
        try:
            return find_referrals(
                index=index,
                catalogue=catalogue,
                postcode=postcode,
                role=role,
                age=age,
                needs=needs,
                text=q,
                language=lang,
                prison=prison,
                delivery=delivery,
                limit=limit,
            )
        except InvalidQuery as error:
            return problem(error.field, messages={error.field: error.message})

    return router


def find_referrals(
    *,
    index: ReferralIndex,
    catalogue: Catalogue,
    postcode: str | None,
    role: str | None,
    age: int | None,
    needs: str | None,
    text: str | None,
    language: str | None,
    prison: str | None,
    delivery: str | None,
    limit: int,
) -> ReferralPublic:
    """Parses the raw query values and ranks; every input problem is an `InvalidQuery`.
    The reason lines are in `language` where the catalogue has it, else in German."""
    area = area_for(postcode)
    try:
        result = index.search(
            area=area,
            role=role,
            age=age,
            needs=_codes(needs, NEEDS, field_name="needs"),
            text=text,
            language=language,
            delivery=_codes(delivery, DELIVERY, field_name="delivery"),
            prison=prison,
            limit=limit,
        )
    except UnknownPrison:
        raise InvalidQuery("prison", MESSAGES["prison"]) from None
    public_area = (
        None
        if area is None
        else AreaPublic(federal_state=area.federal_state, precision=area.precision)
    )
    lang = language if language in catalogue.interface_languages else DEFAULT_LANGUAGE
    return ReferralPublic.from_referral(result, area=public_area, catalogue=catalogue, lang=lang)


def area_for(postcode: str | None) -> gazetteer.Area | None:
    if postcode is None or not postcode.strip():
        return None
    try:
        return gazetteer.lookup(postcode)
    except gazetteer.MalformedPostcode:
        raise InvalidQuery("postcode", MESSAGES["postcode"]) from None
    except gazetteer.UnknownPostcode:
        raise InvalidQuery("postcode", "unknown postcode") from None


def _codes(raw: str | None, vocabulary: tuple[str, ...], *, field_name: str) -> tuple[str, ...]:
    codes = tuple(dict.fromkeys(c.strip() for c in (raw or "").split(",") if c.strip()))
    if not set(codes) <= set(vocabulary):
        raise InvalidQuery(field_name, MESSAGES[field_name])
    return codes


async def refresh_referral_index(services: _HasDirectory) -> None:
    """Loads the published directory and swaps a freshly built index in."""
    # Imported here: the directory module is rebuilt independently of the referral engine.
    from directory.service import prison_records, referral_records

    async with services.sessions() as session:
        records = await referral_records(session)
        prisons = await prison_records(session)
    # Building takes a few hundred milliseconds at 50,000 offers: off the event loop.
    await asyncio.to_thread(services.referrals.rebuild, records, prisons)

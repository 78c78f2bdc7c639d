"""Directory curation: what a directory editor does in the console.

Search services and prisons, edit them, publish or withdraw them, mark them as checked today,
and read their change history. Every write goes through the import's writer
(`directory.io.store.write_directory`) with the editor as actor, so an edit is checked by the same
schema rules as an import and lands in the same history: one `directory_changes` row per action
with only the fields that changed, `{field: [old, new]}`; nothing changed, no row.

Errors come back as `CurationInvalid`: field -> catalogue key, turned into German text by
`CurationInvalid.messages`. Nothing here knows about HTTP.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from core.clock import Clock
from core.i18n import Catalogue
from core.models import Counsellor
from directory.freshness import is_overdue, local_today, local_zone, review_cutoff
from directory.io.store import prison_public, write_directory
from directory.models import (
    DirectoryChange,
    Location,
    Organization,
    Prison,
    Schedule,
    Service,
    ServiceAtLocation,
)
from directory.schemas import (
    DirectoryPublic,
    PhoneLine,
    PhonePublic,
    PrisonPublic,
    PrisonUpdate,
    SchedulePublic,
    ServiceAtLocationPublic,
    ServicePublic,
    ServiceUpdate,
)

EDITOR_ROLES = frozenset({"directory_editor", "admin"})
StatusFilter = Literal["all", "draft", "published", "stale"]
EntityType = Literal["service", "prison"]
_META = ("created_at", "updated_at")
_T = TypeVar("_T")
_Item = TypeVar("_Item", bound=BaseModel)


# -- time --------------------------------------------------------------------------------------
# Today in Germany and the freshness rule live in directory.freshness; the names stay here for
# the console and older callers.

stale_cutoff = review_cutoff
is_stale = is_overdue


# -- errors ------------------------------------------------------------------------------------


class NotFound(Exception):
    """No such service or prison."""


class NotAllowed(Exception):
    """The account may not curate the directory."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    key: str
    # 1-based line of a multi-line field (phones), so the editor finds the bad line.
    line: int | None = None


# Pydantic error types (and our field_error kinds) -> catalogue keys under curation.error.
_ERROR_KEYS = {
    "missing": "required",
    "string_type": "required",
    "string_too_short": "required",
    "string_too_long": "too_long",
    "too_long": "too_long",
    "literal_error": "unknown_code",
    "extra_forbidden": "unknown_field",
    "url": "url",
    "email": "email",
    "age_range": "age_range",
    "age_order": "age_order",
    "language": "language",
    "federal_state": "federal_state",
    "int_parsing": "whole_number",
    "int_from_float": "whole_number",
    "int_type": "whole_number",
    "float_parsing": "number",
    "float_type": "number",
    "greater_than": "radius_range",
    "less_than_equal": "radius_range",
    "bool_parsing": "yes_no",
    "bool_type": "yes_no",
}
# The coverage rules of ServiceCreate share one error kind; their messages tell them apart.
_COVERAGE_KEYS = {
    "required for coverage 'radius'": "radius_required",
    "only used with coverage 'radius'": "radius_unused",
    "coverage 'states' needs at least one state": "states_required",
    "listed states are only used with coverage 'states'": "states_unused",
}


def _field_name(loc: Sequence[Any], ctx: dict[str, Any] | None) -> tuple[str, int | None]:
    names = [part for part in loc if isinstance(part, str)]
    if not names:
        return str((ctx or {}).get("field") or "form"), None
    if names[0] == "visits" and len(names) > 1:
        return f"visit_{names[1]}", None
    if names[0] == "phones":
        line = next((part for part in loc if isinstance(part, int)), None)
        return "phones", None if line is None else line + 1
    return names[0], None


class CurationInvalid(Exception):
    """What an editor sent cannot be saved; nothing was written."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems

    @classmethod
    def from_error(cls, error: ValidationError) -> CurationInvalid:
        problems = []
        for item in error.errors(include_input=False, include_url=False):
            field, line = _field_name(item["loc"], item.get("ctx"))
            key = _ERROR_KEYS.get(item["type"], "invalid")
            if item["type"] == "coverage":
                key = _COVERAGE_KEYS.get(item["msg"], "invalid")
            problems.append(FieldProblem(field, key, line))
        return cls(problems)

    @property
    def fields(self) -> set[str]:
        return {problem.field for problem in self.problems}

    def messages(self, catalogue: Catalogue, lang: str = "de") -> dict[str, str]:
        """field -> readable text (several problems of one field joined)."""
        texts: dict[str, list[str]] = defaultdict(list)
        for problem in self.problems:
            text = catalogue.text(lang, f"curation.error.{problem.key}")
            if problem.line is not None:
                text = catalogue.text(lang, "curation.error.line", line=problem.line, text=text)
            if text not in texts[problem.field]:
                texts[problem.field].append(text)
        return {field: " ".join(items) for field, items in texts.items()}


def _validated(model: type[_T], values: dict[str, Any]) -> _T:
    try:
        return model.model_validate(values)  # type: ignore[attr-defined,no-any-return]
    except ValidationError as error:
        raise CurationInvalid.from_error(error) from None


def parse_service_update(raw: dict[str, Any]) -> ServiceUpdate:
    """A ServiceUpdate from form values, or CurationInvalid naming every bad field."""
    return _validated(ServiceUpdate, raw)


def parse_prison_update(raw: dict[str, Any]) -> PrisonUpdate:
    return _validated(PrisonUpdate, raw)


def _require_editor(editor: Counsellor) -> None:
    # The console checks the role as well; this keeps any other caller honest.
    if editor.role not in EDITOR_ROLES or not editor.is_active:
        raise NotAllowed()


# -- what the console reads --------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ServiceSummary(_Out):
    id: uuid.UUID
    name: str
    organization: str
    places: list[str]
    coverage: str
    status: str
    publication_status: str
    assured_date: date
    stale: bool


class PrisonSummary(_Out):
    id: uuid.UUID
    name: str
    city: str | None
    federal_state: str
    status: str
    publication_status: str
    assured_date: date
    stale: bool


class SearchPage(_Out, Generic[_Item]):
    items: list[_Item]
    total: int
    limit: int
    offset: int


class ServiceDetail(_Out):
    service: ServicePublic
    organization: str
    phones: list[PhonePublic]
    # Where the service is offered ("JVA Nürnberg, Nürnberg"); places are edited by import.
    places: list[str]
    located: bool
    stale: bool
    # The record's updated_at: a form sent with an older version would overwrite a newer edit.
    version: str


class PrisonDetail(_Out):
    prison: PrisonPublic
    stale: bool
    version: str


class FieldChange(_Out):
    field: str
    old: Any
    new: Any


class ChangePublic(_Out):
    changed_at: datetime
    action: str
    # "seed", "import" or the editor's login; `who` is the editor's display name while the
    # account exists.
    actor: str
    who: str | None
    changes: list[FieldChange]


def _fold(text: str | None) -> str:
    """Case- and accent-insensitive form: "nurnberg" finds "NÜRNBERG", "strasse" "Straße"."""
    decomposed = unicodedata.normalize("NFKD", (text or "").casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _matches(needle: str, haystack: Iterable[str | None]) -> bool:
    return not needle or any(needle in _fold(text) for text in haystack)


def _page(items: list[_Item], *, limit: int, offset: int) -> SearchPage[_Item]:
    limit, offset = max(1, min(limit, 200)), max(0, offset)
    return SearchPage(
        items=items[offset : offset + limit], total=len(items), limit=limit, offset=offset
    )


def _place(location: Location) -> str:
    parts = [location.name, location.city]
    return ", ".join(dict.fromkeys(part for part in parts if part)) or "–"


async def search_services(
    session: AsyncSession,
    *,
    query: str = "",
    status_filter: StatusFilter = "all",
    today: date,
    limit: int = 50,
    offset: int = 0,
) -> SearchPage[ServiceSummary]:
    """Services whose name, organization or city contains `query`, by name.

    The text match runs in Python: SQLite's lower() folds ASCII only, so "nürnberg" would miss
    "NÜRNBERG" there, and both databases must answer alike. A directory of tens of thousands of
    services is scanned in milliseconds; the status filter still runs in SQL."""
    statement = select(Service, Organization.name).join(Organization)
    if status_filter in ("draft", "published"):
        statement = statement.where(Service.publication_status == status_filter)
    elif status_filter == "stale":
        statement = statement.where(Service.assured_date < stale_cutoff(today))
    places: dict[uuid.UUID, list[str]] = defaultdict(list)
    located = select(ServiceAtLocation.service_id, Location).join(Location)
    for service_id, location in await session.execute(located):
        places[service_id].append(_place(location))
    needle = _fold(query.strip())
    found = []
    for service, organization in await session.execute(statement):
        cities = places.get(service.id, [])
        if not _matches(needle, [service.name, organization, *cities]):
            continue
        found.append(
            ServiceSummary(
                id=service.id,
                name=service.name,
                organization=organization,
                places=sorted(cities),
                coverage=service.coverage,
                status=service.status,
                publication_status=service.publication_status,
                assured_date=service.assured_date,
                stale=is_stale(service.assured_date, today),
            )
        )
    found.sort(key=lambda item: (_fold(item.name), _fold(item.organization), str(item.id)))
    return _page(found, limit=limit, offset=offset)


async def search_prisons(
    session: AsyncSession,
    *,
    query: str = "",
    status_filter: StatusFilter = "all",
    today: date,
    limit: int = 50,
    offset: int = 0,
) -> SearchPage[PrisonSummary]:
    """Prisons whose name or city contains `query` (same matching as search_services)."""
    statement = select(Prison)
    if status_filter in ("draft", "published"):
        statement = statement.where(Prison.publication_status == status_filter)
    elif status_filter == "stale":
        statement = statement.where(Prison.assured_date < stale_cutoff(today))
    needle = _fold(query.strip())
    found = [
        PrisonSummary(
            id=prison.id,
            name=prison.name,
            city=prison.city,
            federal_state=prison.federal_state,
            status=prison.status,
            publication_status=prison.publication_status,
            assured_date=prison.assured_date,
            stale=is_stale(prison.assured_date, today),
        )
        for prison in await session.scalars(statement)
        if _matches(needle, [prison.name, prison.city])
    ]
    found.sort(key=lambda item: (_fold(item.name), str(item.id)))
    return _page(found, limit=limit, offset=offset)


# -- services ----------------------------------------------------------------------------------


async def _service_row(session: AsyncSession, service_id: uuid.UUID) -> Service:
    row = await session.scalar(
        select(Service)
        .where(Service.id == service_id)
        .options(
            selectinload(Service.organization),
            selectinload(Service.phones),
            selectinload(Service.service_at_locations).selectinload(ServiceAtLocation.location),
            selectinload(Service.prisons),
        )
        # Relationships are view-only and the writer replaces parts with bulk statements:
        # always read them fresh.
        .execution_options(populate_existing=True)
    )
    if row is None:
        raise NotFound()
    return row


def _service_public(row: Service) -> ServicePublic:
    values = {
        column.key: getattr(row, column.key)
        for column in row.__mapper__.column_attrs
        if column.key not in _META
    }
    values["prison_ids"] = [prison.id for prison in row.prisons]
    return ServicePublic.model_validate(values)


def _phones(row: Service) -> list[PhonePublic]:
    ordered = sorted(row.phones, key=lambda phone: (phone.number, str(phone.id)))
    return [PhonePublic.model_validate(phone) for phone in ordered]


def _located(row: Service) -> bool:
    return any(
        place.location.latitude is not None and place.location.longitude is not None
        for place in row.service_at_locations
    )


def _version(row: Service | Prison) -> str:
    return row.updated_at.isoformat()


async def get_service(
    session: AsyncSession, *, service_id: uuid.UUID, today: date
) -> ServiceDetail:
    row = await _service_row(session, service_id)
    return ServiceDetail(
        service=_service_public(row),
        organization=row.organization.name,
        phones=_phones(row),
        places=sorted(_place(place.location) for place in row.service_at_locations),
        located=_located(row),
        stale=is_stale(row.assured_date, today),
        version=_version(row),
    )


def _merged_phones(row: Service, lines: list[PhoneLine]) -> list[PhonePublic]:
    """The form's phone lines as phone rows. A number that stays keeps its id, type and
    extension: the form shows neither, and an unchanged phone must not show up as changed."""
    old = {phone.number: phone for phone in row.phones}
    phones = []
    for line in lines:
        kept = old.pop(line.number, None)
        phones.append(
            PhonePublic(
                id=kept.id if kept else uuid.uuid4(),
                service_id=row.id,
                number=line.number,
                description=line.description,
                type=line.type or (kept.type if kept else None),
                extension=line.extension or (kept.extension if kept else None),
            )
        )
    return phones


async def _write_service(
    session: AsyncSession,
    *,
    row: Service,
    values: dict[str, Any],
    phones: list[PhonePublic],
    editor: Counsellor,
    clock: Clock,
) -> bool:
    candidate = _validated(ServicePublic, values)
    if candidate.coverage == "radius" and not _located(row):
        # The import's cross-record rule; places are not edited in the console.
        raise CurationInvalid([FieldProblem("coverage", "radius_place")])
    schedules = await session.scalars(select(Schedule).where(Schedule.service_id == row.id))
    data = DirectoryPublic(
        services=[candidate],
        phones=phones,
        schedules=[SchedulePublic.model_validate(item) for item in schedules],
        service_at_locations=[
            ServiceAtLocationPublic.model_validate(place) for place in row.service_at_locations
        ],
    )
    summary = await write_directory(
        session, data=data, clock=clock, actor=editor.login, counsellor_id=editor.id
    )
    return bool(summary.updated.get("service"))


def _check_version(row: Service | Prison, version: str | None) -> None:
    if version is not None and version != _version(row):
        raise CurationInvalid([FieldProblem("form", "conflict")])


async def update_service(
    session: AsyncSession,
    *,
    service_id: uuid.UUID,
    changes: ServiceUpdate,
    editor: Counsellor,
    clock: Clock,
    verified: bool = False,
    published: bool | None = None,
    version: str | None = None,
) -> bool:
    """Saves the editor's fields; with `verified` the check date becomes today, with
    `published` the publication status changes too: one action, one history row.
    Returns whether anything changed. Raises CurationInvalid (nothing written) or NotFound."""
    _require_editor(editor)
    row = await _service_row(session, service_id)
    _check_version(row, version)
    values = {**_service_public(row).model_dump(), **changes.model_dump(exclude={"phones"})}
    if verified:
        values["assured_date"] = local_today(clock)
    if published is not None:
        values["publication_status"] = "published" if published else "draft"
    phones = _merged_phones(row, changes.phones)
    return await _write_service(
        session, row=row, values=values, phones=phones, editor=editor, clock=clock
    )


async def set_publication(
    session: AsyncSession,
    *,
    service_id: uuid.UUID,
    published: bool,
    editor: Counsellor,
    clock: Clock,
) -> bool:
    """Draft -> published or back. Only published (and active) services reach the bot."""
    _require_editor(editor)
    row = await _service_row(session, service_id)
    values = _service_public(row).model_dump()
    values["publication_status"] = "published" if published else "draft"
    return await _write_service(
        session, row=row, values=values, phones=_phones(row), editor=editor, clock=clock
    )


async def mark_verified(
    session: AsyncSession,
    *,
    service_id: uuid.UUID,
    editor: Counsellor,
    clock: Clock,
    source: str | None = None,
) -> bool:
    """The editor checked the entry against its source today; a new source replaces the old."""
    _require_editor(editor)
    row = await _service_row(session, service_id)
    values = _service_public(row).model_dump()
    values["assured_date"] = local_today(clock)
    if source is not None:
        values["source"] = source
    return await _write_service(
        session, row=row, values=values, phones=_phones(row), editor=editor, clock=clock
    )


# -- prisons -----------------------------------------------------------------------------------


async def _prison_row(session: AsyncSession, prison_id: uuid.UUID) -> Prison:
    row = await session.get(Prison, prison_id, populate_existing=True)
    if row is None:
        raise NotFound()
    return row


async def get_prison(session: AsyncSession, *, prison_id: uuid.UUID, today: date) -> PrisonDetail:
    row = await _prison_row(session, prison_id)
    return PrisonDetail(
        prison=prison_public(row),
        stale=is_stale(row.assured_date, today),
        version=_version(row),
    )


async def _write_prison(
    session: AsyncSession, *, values: dict[str, Any], editor: Counsellor, clock: Clock
) -> bool:
    candidate = _validated(PrisonPublic, values)
    summary = await write_directory(
        session,
        data=DirectoryPublic(prisons=[candidate]),
        clock=clock,
        actor=editor.login,
        counsellor_id=editor.id,
    )
    return bool(summary.updated.get("prison"))


async def update_prison(
    session: AsyncSession,
    *,
    prison_id: uuid.UUID,
    changes: PrisonUpdate,
    editor: Counsellor,
    clock: Clock,
    verified: bool = False,
    published: bool | None = None,
    version: str | None = None,
) -> bool:
    """Like update_service, for a prison's visit rules, types, contact and source."""
    _require_editor(editor)
    row = await _prison_row(session, prison_id)
    _check_version(row, version)
    values = {**prison_public(row).model_dump(), **changes.model_dump()}
    if verified:
        values["assured_date"] = local_today(clock)
    if published is not None:
        values["publication_status"] = "published" if published else "draft"
    return await _write_prison(session, values=values, editor=editor, clock=clock)


async def set_prison_publication(
    session: AsyncSession,
    *,
    prison_id: uuid.UUID,
    published: bool,
    editor: Counsellor,
    clock: Clock,
) -> bool:
    _require_editor(editor)
    values = prison_public(await _prison_row(session, prison_id)).model_dump()
    values["publication_status"] = "published" if published else "draft"
    return await _write_prison(session, values=values, editor=editor, clock=clock)


async def mark_prison_verified(
    session: AsyncSession,
    *,
    prison_id: uuid.UUID,
    editor: Counsellor,
    clock: Clock,
    source: str | None = None,
) -> bool:
    _require_editor(editor)
    values = prison_public(await _prison_row(session, prison_id)).model_dump()
    values["assured_date"] = local_today(clock)
    if source is not None:
        values["source"] = source
    return await _write_prison(session, values=values, editor=editor, clock=clock)


# -- history -----------------------------------------------------------------------------------


async def history(
    session: AsyncSession, *, entity_type: EntityType, entity_id: uuid.UUID
) -> list[ChangePublic]:
    """Who changed the record when, and how; newest first."""
    rows = await session.execute(
        select(DirectoryChange, Counsellor.display_name)
        .outerjoin(Counsellor, Counsellor.id == DirectoryChange.counsellor_id)
        .where(DirectoryChange.entity_type == entity_type, DirectoryChange.entity_id == entity_id)
        .order_by(DirectoryChange.changed_at.desc(), DirectoryChange.id)
    )
    return [
        ChangePublic(
            changed_at=change.changed_at,
            action=change.action,
            actor=change.actor,
            who=who,
            changes=[
                FieldChange(field=field, old=pair[0], new=pair[1])
                for field, pair in sorted(change.changes.items())
            ],
        )
        for change, who in rows
    ]


__all__ = [
    "EDITOR_ROLES",
    "ChangePublic",
    "CurationInvalid",
    "NotAllowed",
    "NotFound",
    "PrisonDetail",
    "PrisonSummary",
    "SearchPage",
    "ServiceDetail",
    "ServiceSummary",
    "get_prison",
    "get_service",
    "history",
    "is_stale",
    "local_today",
    "local_zone",
    "mark_prison_verified",
    "mark_verified",
    "parse_prison_update",
    "parse_service_update",
    "search_prisons",
    "search_services",
    "set_prison_publication",
    "set_publication",
    "stale_cutoff",
    "update_prison",
    "update_service",
]

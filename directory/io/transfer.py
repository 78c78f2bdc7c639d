"""The operations behind `lotse directory`: read and validate, import, export."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock
from directory.io.csv_format import read_csv, write_csv
from directory.io.json_format import read_json, write_json
from directory.io.problems import DirectoryFileError, Problem, ValidationFailed
from directory.io.store import WriteSummary, read_directory, slug_owners, write_directory
from directory.io.tables import RawTables
from directory.io.validate import validate_tables
from directory.models import Organization, Prison, Service
from directory.progress import NoProgress, Progress
from directory.schemas import DirectoryPublic

Format = Literal["json", "csv"]


def detect_format(path: Path, requested: str | None = None) -> Format:
    """JSON for *.json, CSV for *.zip and directories, unless the caller says otherwise."""
    if requested in ("json", "csv"):
        return requested  # type: ignore[return-value]
    if path.suffix.lower() == ".json":
        return "json"
    if path.suffix.lower() == ".zip" or path.is_dir():
        return "csv"
    raise DirectoryFileError(
        f"{path.name}: cannot tell the format; use a .json file, a .zip archive or a directory"
    )


@dataclass
class LoadedFile:
    """A valid directory file, and where each record was found (for later report rows)."""

    data: DirectoryPublic
    positions: dict[tuple[str, uuid.UUID], tuple[str, int | str | None]] = field(
        default_factory=dict
    )

    def where(self, table: str, record_id: uuid.UUID) -> tuple[str, int | str | None]:
        return self.positions.get((table, record_id), (f"{table}", None))


def _positions(raw: RawTables) -> dict[tuple[str, uuid.UUID], tuple[str, int | str | None]]:
    positions = {}
    for table in ("organizations", "services", "prisons"):
        for row in raw.rows[table]:
            try:
                positions[(table, uuid.UUID(str(row.data.get("id"))))] = (row.file, row.row)
            except ValueError:
                continue
    return positions


def read_file(path: Path, *, progress: Progress | None = None) -> LoadedFile:
    """Read and validate a JSON file, a zip archive or a directory of CSV files.

    Raises DirectoryFileError when the path cannot be used and ValidationFailed with every
    problem when the content is not valid.
    """
    if not path.exists():
        raise DirectoryFileError(f"{path}: no such file or directory")
    reader = read_json if detect_format(path) == "json" else read_csv
    raw, problems = reader(path)
    try:
        data = validate_tables(raw, progress=progress)
    except ValidationFailed as failed:
        raise ValidationFailed(problems + failed.problems) from None
    if problems:
        raise ValidationFailed(problems)
    return LoadedFile(data, _positions(raw))


@dataclass(frozen=True)
class ImportSummary:
    counts: dict[str, int]
    created: dict[str, int]
    updated: dict[str, int]
    unchanged: dict[str, int]

    @classmethod
    def of(cls, data: DirectoryPublic, written: WriteSummary) -> ImportSummary:
        return cls(
            data.counts(), dict(written.created), dict(written.updated), dict(written.unchanged)
        )


def _synthetic_problems(loaded: LoadedFile) -> list[Problem]:
    problems = []
    for table in ("organizations", "services", "prisons"):
        synthetic = [item for item in getattr(loaded.data, table) if item.synthetic]
        if synthetic:
            file, row = loaded.where(table, synthetic[0].id)
            message = f"synthetic data is never imported in production ({len(synthetic)} records)"
            problems.append(Problem(file, row, "synthetic", message))
    return problems


async def _slug_conflicts(session: AsyncSession, loaded: LoadedFile) -> list[Problem]:
    problems = []
    for table, model in (
        ("organizations", Organization),
        ("services", Service),
        ("prisons", Prison),
    ):
        items: list[Any] = getattr(loaded.data, table)
        slugs = {item.slug: item.id for item in items if item.slug}
        ours = {item.id: item.slug for item in items}
        for slug, owner in (await slug_owners(session, model, list(slugs))).items():
            # Not a conflict if the current holder gives the slug up in this same file.
            if owner != slugs[slug] and ours.get(owner, slug) == slug:
                file, row = loaded.where(table, slugs[slug])
                problems.append(Problem(file, row, "slug", "used by another record already"))
    return problems


async def import_directory(
    session: AsyncSession,
    *,
    loaded: LoadedFile,
    clock: Clock,
    allow_synthetic: bool,
    actor: str = "import",
    progress: Progress | None = None,
) -> ImportSummary:
    """Write a validated file inside the caller's transaction, or raise ValidationFailed before
    writing anything (synthetic data where it is not allowed, slugs taken by other records)."""
    problems = [] if allow_synthetic else _synthetic_problems(loaded)
    problems += await _slug_conflicts(session, loaded)
    if problems:
        raise ValidationFailed(problems)
    written = await write_directory(
        session, data=loaded.data, clock=clock, actor=actor, progress=progress or NoProgress()
    )
    return ImportSummary.of(loaded.data, written)


async def import_file(
    session: AsyncSession,
    *,
    path: Path,
    clock: Clock,
    allow_synthetic: bool,
    actor: str = "import",
    progress: Progress | None = None,
) -> ImportSummary:
    """Read, validate and write one file; the caller's transaction makes it all or nothing."""
    loaded = await asyncio.to_thread(read_file, path, progress=progress)
    return await import_directory(
        session,
        loaded=loaded,
        clock=clock,
        allow_synthetic=allow_synthetic,
        actor=actor,
        progress=progress,
    )


def write_file(data: DirectoryPublic, *, path: Path, fmt: Format) -> None:
    if fmt == "json":
        write_json(data, path)
    else:
        write_csv(data, path)


async def export_directory(session: AsyncSession, *, path: Path, fmt: Format) -> DirectoryPublic:
    """Write the whole directory (drafts included) to a file; returns what was written."""
    data = await read_directory(session)
    await asyncio.to_thread(write_file, data, path=path, fmt=fmt)
    return data

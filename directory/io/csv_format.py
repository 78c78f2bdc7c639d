"""HSDS-style CSV: one UTF-8 file per table, in a directory or a zip archive."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from directory.io.problems import DirectoryFileError, Problem
from directory.io.tables import (
    PRISON_CSV_ALIASES,
    TABLES,
    RawRow,
    RawTables,
    attribute_rows,
    csv_cell,
    csv_row_to_raw,
    language_row,
    state_area,
)
from directory.schemas import DirectoryPublic


def _members(path: Path) -> Iterator[tuple[str, bytes]]:
    """(file name, content) of every .csv file in the directory or zip archive."""
    if path.is_dir():
        for file in sorted(path.iterdir()):
            if file.is_file() and file.suffix.lower() == ".csv":
                yield file.name, file.read_bytes()
        return
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename.rsplit("/", 1)[-1]
                if info.is_dir() or not name.lower().endswith(".csv") or name.startswith("._"):
                    continue
                yield name, archive.read(info)
    except zipfile.BadZipFile as error:
        raise DirectoryFileError(f"{path.name}: not a zip archive") from error


def _decode(name: str, content: bytes, problems: list[Problem]) -> str | None:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = content[: error.start].count(b"\n") + 1
        byte = content[error.start]
        problems.append(
            Problem(name, line, None, f"not UTF-8 (byte 0x{byte:02X}); save the file as UTF-8")
        )
        return None


def _header(name: str, table: str, header: list[str], problems: list[Problem]) -> bool:
    """Whether the rows can be validated: all required columns there, none unknown or twice."""
    spec = TABLES[table]
    fine = True
    for column in spec.required:
        if column not in header:
            problems.append(Problem(name, 1, column, "required column missing"))
            fine = False
    seen: set[str] = set()
    for column in header:
        if column not in spec.columns:
            problems.append(Problem(name, 1, column or None, "unknown column"))
            fine = False
        elif column in seen:
            problems.append(Problem(name, 1, column, "column appears twice"))
            fine = False
        seen.add(column)
    return fine


def _read_table(name: str, table: str, text: str, raw: RawTables, problems: list[Problem]) -> None:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [cell.strip() for cell in next(reader)]
    except StopIteration:
        problems.append(Problem(name, 1, None, "empty file (no header row)"))
        raw.unreadable.add(table)
        return
    except csv.Error as error:
        problems.append(Problem(name, 1, None, f"malformed CSV: {error}"))
        raw.unreadable.add(table)
        return
    if not _header(name, table, header, problems):
        raw.unchecked.add(table)
    aliases = PRISON_CSV_ALIASES if table == "prisons" else {}
    known = set(TABLES[table].columns)
    line = reader.line_num
    try:
        for cells in reader:
            start, line = line + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                problems.append(
                    Problem(name, start, None, f"{len(cells)} cells, the header has {len(header)}")
                )
            values = {
                column: cell.strip()
                for column, cell in zip(header, cells, strict=False)
                if column in known and cell.strip()
            }
            raw.add(table, RawRow(name, start, csv_row_to_raw(table, values), aliases))
    except csv.Error as error:
        problems.append(Problem(name, reader.line_num, None, f"malformed CSV: {error}"))
        raw.unreadable.add(table)


def read_csv(path: Path) -> tuple[RawTables, list[Problem]]:
    raw, problems = RawTables(), []
    found = False
    for name, content in _members(path):
        table = name[:-4].lower()
        if table not in TABLES:
            problems.append(Problem(name, None, None, "unknown table (not part of the format)"))
            continue
        found = True
        text = _decode(name, content, problems)
        if text is None:
            raw.unreadable.add(table)
            continue
        _read_table(name, table, text, raw, problems)
    if not found and not problems:
        problems.append(Problem(path.name, None, None, "no directory tables (.csv) found"))
    return raw, problems


# -- writing -----------------------------------------------------------------------------------


def csv_tables(data: DirectoryPublic) -> dict[str, list[dict[str, Any]]]:
    """The directory as CSV rows per table (the link tables derived from the service lists)."""
    tables: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    for name in ("organizations", "locations", "service_at_locations", "phones", "schedules"):
        tables[name] = [item.model_dump() for item in getattr(data, name)]
    tables["accessibility"] = [item.model_dump() for item in data.accessibility]
    for service in data.services:
        tables["services"].append(service.model_dump())
        tables["attributes"] += attribute_rows(service.id, service.model_dump())
        tables["languages"] += [language_row(service.id, code) for code in service.languages]
        tables["service_areas"] += [state_area(service.id, s) for s in service.coverage_states]
        tables["service_prisons"] += [
            {"service_id": service.id, "prison_id": prison} for prison in service.prison_ids
        ]
    for prison in data.prisons:
        row = prison.model_dump(exclude={"visits"})
        row.update({f"visit_{k}": v for k, v in prison.visits.model_dump().items()})
        tables["prisons"].append(row)
    return tables


def _render(table: str, rows: list[dict[str, Any]]) -> bytes:
    columns = TABLES[table].columns
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(column)) for column in columns])
    return buffer.getvalue().encode("utf-8")


def write_csv(data: DirectoryPublic, path: Path) -> None:
    """A zip archive when the path ends in .zip, otherwise a directory of .csv files."""
    files = {TABLES[name].file: _render(name, rows) for name, rows in csv_tables(data).items()}
    if path.suffix.lower() == ".zip":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, content in files.items():
                archive.writestr(name, content)
        return
    path.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (path / name).write_bytes(content)

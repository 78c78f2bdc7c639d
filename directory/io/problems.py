"""Validation problems: one row of the report each, (file, row, field, message)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    # A line number for CSV (the header is line 1), a path such as organizations[0].services[2]
    # for JSON, None for the file as a whole.
    row: int | str | None
    field: str | None
    message: str


class ValidationFailed(Exception):
    """The file (or the database state it meets) has problems; nothing was written."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


class DirectoryFileError(Exception):
    """The path cannot be used at all (missing, unknown format): a usage error, not a report."""


def _field(loc: tuple[Any, ...], ctx: dict[str, Any] | None) -> str | None:
    if loc:
        return ".".join(
            f"[{part}]" if isinstance(part, int) else str(part) for part in loc
        ).replace(".[", "[")
    return (ctx or {}).get("field")


_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown field (not part of the Lotse directory format)",
    "uuid_parsing": "not a UUID",
    "uuid_type": "not a UUID",
    "date_from_datetime_parsing": "malformed date (expected YYYY-MM-DD)",
    "date_parsing": "malformed date (expected YYYY-MM-DD)",
    "date_type": "malformed date (expected YYYY-MM-DD)",
    "time_parsing": "malformed time (expected HH:MM)",
    "float_parsing": "not a number",
    "int_parsing": "not a whole number",
    "bool_parsing": "not true or false",
    "string_too_short": "required",
}


def from_validation_error(
    error: ValidationError, *, file: str, row: int | str | None, prefix: str = ""
) -> list[Problem]:
    """Pydantic errors as report rows; messages never repeat the input value."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        field = _field(tuple(item["loc"]), item.get("ctx"))
        if prefix and field:
            field = f"{prefix}.{field}"
        message = _MESSAGES.get(item["type"], item["msg"])
        if item["type"] in ("too_long", "string_too_long"):
            message = f"too long (at most {item.get('ctx', {}).get('max_length')} characters)"
        problems.append(Problem(file, row, field or (prefix or None), message))
    return problems


def format_problems(problems: Iterable[Problem]) -> str:
    """A plain-text table for the terminal."""
    rows = [("file", "row", "field", "message")]
    rows += [
        (p.file, "" if p.row is None else str(p.row), p.field or "", p.message) for p in problems
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths) + "  " + "-" * 7)
    return "\n".join(lines)

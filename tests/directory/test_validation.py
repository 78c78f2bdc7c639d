"""Bad files are rejected with report rows (file, row, field, message) and nothing imported."""

import json
import uuid

import pytest

from core.db import transaction
from directory.io import Problem, ValidationFailed, import_directory, import_file, read_file
from directory.io.csv_format import write_csv
from directory.io.json_format import write_json
from directory.io.transfer import LoadedFile
from directory.synthetic import generate_directory
from tests.directory.helpers import edit_table, read_table, row_counts, small_directory


@pytest.fixture
def tables(tmp_path):
    """A valid CSV directory to spoil, one file at a time."""
    path = tmp_path / "tables"
    write_csv(small_directory(), path)
    return path


async def rejected(services, path) -> list[Problem]:
    """Imports must fail as a whole: the report comes back and no row changes anywhere."""
    before = await row_counts(services)
    with pytest.raises(ValidationFailed) as raised:
        async with transaction(services.sessions) as session:
            await import_file(session, path=path, clock=services.clock, allow_synthetic=True)
    assert await row_counts(services) == before
    return raised.value.problems


def line_of(path, text):
    """The line number (header = 1) of the first line containing text."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, start=1) if text in line)


def spoil(path, column, value, where=lambda row: True):
    """Set one cell in the first row matching `where`; returns that row's line number."""
    found = {}

    def edit(header, rows):
        row = next(r for r in rows if where(r))
        found["id"] = row.get("id") or row.get("service_id")
        row[column] = value
        return header, rows

    edit_table(path, edit)
    return line_of(path, found["id"])


async def test_a_file_that_is_not_utf8_is_rejected_at_the_line_of_the_bad_byte(services, tables):
    locations = tables / "locations.csv"
    line = line_of(locations, "Nürnberg")
    locations.write_bytes(locations.read_text(encoding="utf-8").encode("latin-1"))

    problems = await rejected(services, tables)

    assert Problem(
        "locations.csv", line, None, "not UTF-8 (byte 0xFC); save the file as UTF-8"
    ) in (problems)


async def test_a_missing_required_column_is_named_once(services, tables):
    def drop(header, rows):
        return [c for c in header if c != "coverage"], [
            {k: v for k, v in r.items() if k != "coverage"} for r in rows
        ]

    edit_table(tables / "services.csv", drop)

    problems = await rejected(services, tables)

    assert problems == [Problem("services.csv", 1, "coverage", "required column missing")]


async def test_an_unknown_column_is_refused_rather_than_dropped(services, tables):
    def add(header, rows):
        return [*header, "colour"], [{**r, "colour": "blau"} for r in rows]

    edit_table(tables / "organizations.csv", add)

    assert await rejected(services, tables) == [
        Problem("organizations.csv", 1, "colour", "unknown column")
    ]


async def test_duplicate_ids_are_reported_at_the_second_row(services, tables):
    def duplicate(header, rows):
        return header, [*rows, {**rows[0], "slug": "kopie"}]

    edit_table(tables / "organizations.csv", duplicate)

    problems = await rejected(services, tables)

    assert Problem("organizations.csv", 3, "id", "duplicate id (first in row 2)") in problems


async def test_coordinates_outside_germany_are_rejected(services, tables):
    line = spoil(tables / "locations.csv", "latitude", "60.1", lambda r: r["city"] == "Fürth")

    problems = await rejected(services, tables)

    assert problems == [
        Problem("locations.csv", line, "latitude", "latitude outside Germany (47.2–55.1)")
    ]


async def test_an_unknown_vocabulary_code_is_rejected(services, tables):
    line = spoil(tables / "attributes.csv", "code", "homework", lambda r: r["code"] == "visits")

    [problem] = await rejected(services, tables)

    assert (problem.file, problem.row, problem.field) == ("attributes.csv", line, "code")
    assert problem.message.startswith("unknown code; expected one of: visits, talking")


async def test_a_reference_to_a_missing_record_is_rejected(services, tables):
    line = spoil(tables / "service_at_locations.csv", "location_id", str(uuid.uuid4()))

    problems = await rejected(services, tables)

    assert Problem(
        "service_at_locations.csv", line, "location_id", "no location with this id in the file"
    ) in (problems)


async def test_malformed_dates_and_ages_out_of_range_are_rejected(services, tables):
    spoil(tables / "services.csv", "assured_date", "21.11.2026", lambda r: r["name"] == "Telefon")
    line = spoil(tables / "services.csv", "minimum_age", "150", lambda r: r["name"] == "Telefon")

    problems = await rejected(services, tables)

    assert set(problems) == {
        Problem("services.csv", line, "assured_date", "malformed date (expected YYYY-MM-DD)"),
        Problem("services.csv", line, "minimum_age", "age out of range (0–99)"),
    }


async def test_radius_coverage_without_a_located_place_is_rejected(services, tables):
    def unlocate(header, rows):
        return header, [{**r, "latitude": "", "longitude": ""} for r in rows]

    edit_table(tables / "locations.csv", unlocate)
    line = line_of(tables / "services.csv", "Vor Ort")

    problems = await rejected(services, tables)

    assert problems == [
        Problem(
            "services.csv", line, "coverage", "coverage 'radius' needs a location with coordinates"
        )
    ]


async def test_every_problem_of_a_file_is_reported_at_once(services, tables):
    spoil(tables / "locations.csv", "latitude", "60.1")
    spoil(tables / "services.csv", "status", "open")
    spoil(tables / "phones.csv", "number", "")
    spoil(tables / "prisons.csv", "federal_state", "Bayernland")

    problems = await rejected(services, tables)

    assert {p.file for p in problems} == {
        "locations.csv",
        "services.csv",
        "phones.csv",
        "prisons.csv",
    }


# -- JSON --------------------------------------------------------------------------------------


@pytest.fixture
def document(tmp_path):
    path = tmp_path / "directory.json"
    write_json(small_directory(), path)
    return path


def edit_json(path, edit):
    doc = json.loads(path.read_text(encoding="utf-8"))
    edit(doc)
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")


async def test_json_problems_point_at_the_path_of_the_record(services, document):
    def spoil_json(doc):
        org = doc["organizations"][0]
        org["locations"][1]["longitude"] = 2.35
        org["services"][0]["attributes"][0]["taxonomy_term"]["code"] = "nobody"
        org["services"].append(dict(org["services"][1]))

    edit_json(document, spoil_json)

    problems = await rejected(services, document)

    rows = {(p.row, p.field) for p in problems}
    assert ("organizations[0].locations[1]", "longitude") in rows
    assert ("organizations[0].services[0].attributes[0]", "taxonomy_term.code") in rows
    assert ("organizations[0].services[4]", "id") in rows


async def test_json_that_is_not_utf8_or_not_json_is_rejected(services, document):
    document.write_bytes('{"organizations": [{"name": "Fürth"}]}'.encode("latin-1"))
    [not_utf8] = await rejected(services, document)
    document.write_text('{"organizations": [', encoding="utf-8")
    [broken] = await rejected(services, document)

    assert not_utf8.message.startswith("not UTF-8") and not_utf8.row == 1
    assert broken.message.startswith("malformed JSON")


# -- rules that meet the database --------------------------------------------------------------


async def test_a_slug_held_by_another_record_is_rejected(services, document):
    async with transaction(services.sessions) as session:
        await import_file(session, path=document, clock=services.clock, allow_synthetic=True)

    def same_slug_new_id(doc):
        doc["organizations"] = []
        doc["prisons"] = [{**doc["prisons"][0], "id": str(uuid.uuid4())}]

    edit_json(document, same_slug_new_id)

    problems = await rejected(services, document)

    assert problems == [
        Problem("directory.json", "prisons[0]", "slug", "used by another record already")
    ]


async def test_synthetic_data_is_refused_where_it_is_not_allowed(services):
    before = await row_counts(services)
    with pytest.raises(ValidationFailed) as raised:
        async with transaction(services.sessions) as session:
            await import_directory(
                session,
                loaded=LoadedFile(generate_directory(count=20, seed=1)),
                clock=services.clock,
                allow_synthetic=False,
            )
    assert {p.field for p in raised.value.problems} == {"synthetic"}
    assert await row_counts(services) == before


def test_validate_reads_without_a_database(tables):
    loaded = read_file(tables)
    assert loaded.data.counts()["services"] == 4
    assert read_table(tables / "services.csv")[0][0] == "id"

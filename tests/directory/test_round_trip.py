import zipfile

import pytest
from sqlalchemy import select

from core.db import transaction
from directory.io import export_directory, import_file
from directory.models import DirectoryChange
from directory.synthetic import generate_directory
from tests.directory.helpers import (
    current,
    edit_table,
    empty_directory,
    import_data,
    normal,
    small_directory,
)

TARGETS = [("json", "directory.json"), ("csv", "directory.zip"), ("csv", "tables")]


def contents(path):
    if path.is_dir():
        return {file.name: file.read_bytes() for file in path.iterdir()}
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    return path.read_bytes()


async def fill(services):
    """The shipped seed plus hand-made and synthetic records: every table has rows."""
    await import_data(services, small_directory())
    await import_data(services, generate_directory(count=40, seed=7))


async def export(services, path, fmt):
    async with services.sessions() as session:
        await export_directory(session, path=path, fmt=fmt)


async def import_(services, path):
    async with transaction(services.sessions) as session:
        return await import_file(session, path=path, clock=services.clock, allow_synthetic=True)


@pytest.mark.parametrize(("fmt", "name"), TARGETS)
async def test_export_then_import_into_an_empty_directory_gives_the_same_data(
    services, tmp_path, fmt, name
):
    await fill(services)
    before = normal(await current(services))
    assert all(before[table] for table in before), "every table takes part"
    await export(services, tmp_path / name, fmt)
    await empty_directory(services)

    summary = await import_(services, tmp_path / name)

    assert normal(await current(services)) == before
    assert sum(summary.created.values()) == sum(
        len(before[t]) for t in ("organizations", "services", "locations", "prisons")
    )


@pytest.mark.parametrize(("fmt", "name"), TARGETS)
async def test_exporting_twice_gives_the_same_file(services, tmp_path, fmt, name):
    await fill(services)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    await export(services, tmp_path / "a" / name, fmt)
    await empty_directory(services)
    await import_(services, tmp_path / "a" / name)
    await export(services, tmp_path / "b" / name, fmt)

    assert contents(tmp_path / "a" / name) == contents(tmp_path / "b" / name)


async def test_reimporting_an_unchanged_export_writes_nothing(services, tmp_path):
    await fill(services)
    await export(services, tmp_path / "d.json", "json")
    async with services.sessions() as session:
        history = len((await session.scalars(select(DirectoryChange.id))).all())

    summary = await import_(services, tmp_path / "d.json")

    assert not summary.created and not summary.updated
    async with services.sessions() as session:
        assert len((await session.scalars(select(DirectoryChange.id))).all()) == history


async def test_an_edited_csv_updates_the_record_and_the_history_says_what_changed(
    services, tmp_path
):
    await empty_directory(services)
    await import_data(services, small_directory())
    await export(services, tmp_path / "t", "csv")

    def rename(header, rows):
        row = next(r for r in rows if r["name"] == "Telefon")
        row["name"] = "Telefon (neu)"
        return header, rows

    def drop_service_phone(header, rows):
        return header, [r for r in rows if not r["service_id"]]

    edit_table(tmp_path / "t" / "services.csv", rename)
    edit_table(tmp_path / "t" / "phones.csv", drop_service_phone)

    summary = await import_(services, tmp_path / "t")

    assert dict(summary.updated) == {"service": 1}
    async with services.sessions() as session:
        change = await session.scalar(
            select(DirectoryChange).where(DirectoryChange.action == "update")
        )
    assert change.entity_type == "service" and change.actor == "import"
    assert change.changes["name"] == ["Telefon", "Telefon (neu)"]
    assert change.changes["phones"] == [[{"number": "0800 000 000", "type": "voice"}], []]
    phones = [p.number for p in (await current(services)).phones]
    assert phones == ["0911 000 000"]


async def test_a_file_with_a_place_but_not_all_its_services_keeps_their_links(services):
    await empty_directory(services)
    data = small_directory()
    await import_data(services, data)
    local = next(s for s in data.services if s.name == "Vor Ort")
    without_local = data.model_copy(
        update={
            "services": [s for s in data.services if s.id != local.id],
            "service_at_locations": [],
            "prisons": [],
        }
    )

    await import_data(services, without_local)

    links = {(x.service_id, x.location_id) for x in (await current(services)).service_at_locations}
    assert links == {(local.id, location.id) for location in data.locations}

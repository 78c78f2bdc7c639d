"""A directory of 5,000 synthetic services imports, and a bad one reports, in reasonable time.

The limits are generous on purpose (slow CI machines); bench-style figures are in the report of
`lotse directory import`, not asserted here.
"""

import time

import pytest

from core.db import transaction
from directory.io import ValidationFailed, import_file
from directory.synthetic import generate_file
from tests.directory.helpers import edit_table, row_counts

COUNT = 5000


async def test_5000_synthetic_services_import_within_a_minute(services, tmp_path):
    path = tmp_path / "large.json"
    data = generate_file(path, count=COUNT, seed=5, fmt="json")
    before = await row_counts(services)

    started = time.perf_counter()
    async with transaction(services.sessions) as session:
        summary = await import_file(session, path=path, clock=services.clock, allow_synthetic=True)
    elapsed = time.perf_counter() - started

    assert summary.created["service"] == COUNT
    after = await row_counts(services)
    assert after["services"] - before["services"] == COUNT
    assert after["locations"] - before["locations"] == len(data.locations)
    assert elapsed < 60, f"import took {elapsed:.1f}s"


async def test_one_bad_row_in_5000_services_is_found_and_nothing_is_written(services, tmp_path):
    path = tmp_path / "large"
    generate_file(path, count=COUNT, seed=6, fmt="csv")

    def outside(header, rows):
        rows[-1]["longitude"] = "16.5"
        return header, rows

    edit_table(path / "locations.csv", outside)
    before = await row_counts(services)

    started = time.perf_counter()
    with pytest.raises(ValidationFailed) as raised:
        async with transaction(services.sessions) as session:
            await import_file(session, path=path, clock=services.clock, allow_synthetic=True)
    elapsed = time.perf_counter() - started

    [problem] = raised.value.problems
    assert (problem.file, problem.field) == ("locations.csv", "longitude")
    assert await row_counts(services) == before
    assert elapsed < 30, f"validation took {elapsed:.1f}s"

"""The job store holds nothing of a user: jobs are registered in code, get the service wiring
and nothing else, and live in memory (SECURITY.md property 1 names the job store)."""

from __future__ import annotations

from apscheduler.jobstores.memory import MemoryJobStore

from lotse.scheduler import create_scheduler


async def test_scheduled_jobs_carry_no_data(services):
    scheduler = create_scheduler(services)
    jobs = scheduler.get_jobs()
    assert jobs, "the service schedules its housekeeping"
    for job in jobs:
        assert job.args == (services,) and job.kwargs == {}, f"{job.id} carries data"
    assert all(isinstance(store, MemoryJobStore) for store in scheduler._jobstores.values())

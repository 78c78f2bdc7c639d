"""APScheduler 3.11 inside the service; jobs are registered here, in code.

Every process runs the scheduler, and a job runs only in the process that leads (lotse/leader.py)
unless it is registered with `executor=EVERY_PROCESS`."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.executors.base import run_coroutine_job, run_job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.util import iscoroutinefunction_partial

from core.db import transaction
from core.followups import FollowupRun, send_due_followups
from core.retention import RetentionResult, policy_from, run_retention
from counsellor_console.auth import purge_expired_sessions
from counsellor_console.deps import session_policy
from referral.api import refresh_referral_index

if TYPE_CHECKING:
    from apscheduler.job import Job

    from lotse.leader import Leader
    from lotse.runtime import Services

log = logging.getLogger(__name__)
# For jobs that keep this process's own state current (its in-memory referral index).
EVERY_PROCESS = "every_process"


async def expire_console_sessions(services: Services) -> int:
    async with transaction(services.sessions) as session:
        removed = await purge_expired_sessions(
            session, clock=services.clock, policy=session_policy(services)
        )
    log.info("job expire_console_sessions", extra={"removed": removed})
    return removed


class LeaderOnlyExecutor(AsyncIOExecutor):
    """Runs a due job only if the lock server confirms, at that moment, that this process leads.

    Checked per run rather than pausing the scheduler on leadership changes: some jobs must run in
    every process, a check right before the run leaves no gap between losing the lock and
    noticing it on the next renewal, and a job added later is leader-only without anyone
    remembering to make it so (this is the default executor)."""

    def __init__(self, leader: Leader) -> None:
        super().__init__()
        self._leader = leader

    def _do_submit_job(self, job: Job, run_times: list[Any]) -> None:
        def done(future: Any) -> None:
            self._pending_futures.discard(future)
            try:
                events = future.result()
            except BaseException:
                self._run_job_error(job.id, *sys.exc_info()[1:])
            else:
                self._run_job_success(job.id, events)

        future = self._eventloop.create_task(self._run_if_leading(job, run_times))
        future.add_done_callback(done)
        self._pending_futures.add(future)

    async def _run_if_leading(self, job: Job, run_times: list[Any]) -> list[Any]:
        if not await self._leader.confirm():
            log.debug("job skipped: another process leads", extra={"job": job.id})
            return []
        store = job._jobstore_alias
        if iscoroutinefunction_partial(job.func):
            return await run_coroutine_job(job, store, run_times, self._logger.name)
        return await self._eventloop.run_in_executor(
            None, run_job, job, store, run_times, self._logger.name
        )


def new_scheduler(leader: Leader) -> AsyncIOScheduler:
    return AsyncIOScheduler(
        timezone="UTC",
        executors={"default": LeaderOnlyExecutor(leader), EVERY_PROCESS: AsyncIOExecutor()},
    )


async def apply_retention(services: Services) -> RetentionResult:
    """Idempotent: a second pass (or one by a process that just took over) finds nothing more."""
    return await run_retention(
        sessions=services.sessions, clock=services.clock, policy=policy_from(services.settings)
    )


async def send_followups(services: Services) -> FollowupRun:
    """Due check-ins, each claimed before it is sent: a second run sends nothing twice."""
    return await send_due_followups(
        sessions=services.sessions,
        clock=services.clock,
        relay=services.relay,
        catalogue=services.catalogue,
        days=services.settings.followup_days,
    )


async def publish_statistics(services: Services) -> int:
    """Completed periods get their report stored once (core/statistics.py); idempotent."""
    published = await services.statistics.publish_due()
    log.info("job publish_statistics", extra={"published": published})
    return published


async def fail_lost_replies(services: Services) -> int:
    """Replies queued long ago and never sent (their process died) show as failed; idempotent."""
    failed = await services.conversations.fail_lost_replies()
    if failed:
        log.warning("job fail_lost_replies: replies lost unsent", extra={"count": failed})
    return failed


def create_scheduler(services: Services) -> AsyncIOScheduler:
    scheduler = new_scheduler(services.leader)

    def every(job: Any, *, id: str, executor: str = "default", **interval: int) -> None:
        # Every job alike: the services as its only argument, at most one run at a time, and
        # missed runs folded into one (a process that slept or just took over).
        scheduler.add_job(
            job,
            "interval",
            args=[services],
            id=id,
            executor=executor,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            **interval,
        )

    every(send_followups, id="followups", minutes=15)
    every(apply_retention, id="retention", hours=1)
    every(publish_statistics, id="publish_statistics", hours=1)
    every(expire_console_sessions, id="expire_console_sessions", minutes=10)
    every(fail_lost_replies, id="fail_lost_replies", minutes=2)
    # Directory edits reach the bot and the API within minutes, also in other processes: each
    # process refreshes its own index, so this one runs everywhere, not only in the leader.
    every(refresh_referral_index, id="refresh_referral_index", minutes=5, executor=EVERY_PROCESS)
    return scheduler

"""APScheduler 3.11 inside the service; jobs are registered here, in code."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from core.db import transaction
from counsellor_console.auth import purge_expired_sessions
from counsellor_console.deps import session_policy
from referral.api import refresh_referral_index

if TYPE_CHECKING:
    from lotse.runtime import Services

log = logging.getLogger(__name__)


async def expire_console_sessions(services: Services) -> int:
    async with transaction(services.sessions) as session:
        removed = await purge_expired_sessions(
            session, clock=services.clock, policy=session_policy(services)
        )
    log.info("job expire_console_sessions", extra={"removed": removed})
    return removed


def create_scheduler(services: Services) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(
        expire_console_sessions,
        "interval",
        minutes=10,
        args=[services],
        id="expire_console_sessions",
        replace_existing=True,
        coalesce=True,
        max_instances=1,
    )
    # Directory edits reach the bot and the API within minutes, also in other processes.
    scheduler.add_job(
        refresh_referral_index,
        "interval",
        minutes=5,
        args=[services],
        id="refresh_referral_index",
        replace_existing=True,
        coalesce=True,
        max_instances=1,
    )
    return scheduler

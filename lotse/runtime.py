"""The composition root: builds every long-lived service of one process from Settings."""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
from redis.asyncio import BlockingConnectionPool, Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.crisis_triage import RecentTexts
from bot.engine import ConversationEngine
from bot.state import FlowStateStore, OrderedEventIsolation, PseudonymousKeyBuilder
from core.clock import Clock, SystemClock
from core.conversations import ConversationService
from core.db import create_engine, create_sessionmaker
from core.events import EventBus, MemoryEventBus, RedisEventBus
from core.followups import FollowupService
from core.i18n import Catalogue, load_catalogue
from core.identity import Identities
from core.ratelimit import Attempts, MemoryAttempts, RedisAttempts
from core.relay import Relay
from core.settings import Settings
from core.statistics import StatisticsService
from lotse.leader import Leader, create_leader
from referral.index import ReferralIndexHolder

log = logging.getLogger(__name__)
FLOW_STATE_TTL = timedelta(days=7)
# Commands (state, locks, publish) share a bounded pool and wait for a free connection instead of
# failing. The event bus holds one pub/sub connection per process for all its subscribers,
# from a client of its own, so long-lived streams never take from that pool.
REDIS_POOL_SIZE = 64
REDIS_POOL_TIMEOUT_SECONDS = 10
REDIS_SUBSCRIBER_LIMIT = 5000


@dataclass
class Services:
    settings: Settings
    clock: Clock
    db: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis | None
    bus: EventBus
    storage: BaseStorage
    isolation: BaseEventIsolation
    catalogue: Catalogue
    identities: Identities
    conversations: ConversationService
    relay: Relay
    engine: ConversationEngine
    referrals: ReferralIndexHolder
    attempts: Attempts
    statistics: StatisticsService
    # Decides which process runs the scheduled jobs; started by the app's lifespan.
    leader: Leader
    bot: Bot | None = None
    dispatcher: Dispatcher | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def build_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    db = create_engine(settings.database_url)
    sessions = create_sessionmaker(db)
    key_builder = PseudonymousKeyBuilder(settings.secret_bytes("pseudonym_pepper"))
    redis: Redis | None = None
    storage: BaseStorage
    isolation: BaseEventIsolation
    bus: EventBus
    if settings.redis_url:
        redis = Redis(
            connection_pool=BlockingConnectionPool.from_url(
                settings.redis_url,
                max_connections=REDIS_POOL_SIZE,
                timeout=REDIS_POOL_TIMEOUT_SECONDS,
            )
        )
        # Flow state (role, rough area) is kept only as long as a guided conversation needs it.
        storage = RedisStorage(
            redis, key_builder=key_builder, state_ttl=FLOW_STATE_TTL, data_ttl=FLOW_STATE_TTL
        )
        isolation = OrderedEventIsolation(RedisEventIsolation(redis, key_builder=key_builder))
        bus = RedisEventBus(
            redis, Redis.from_url(settings.redis_url, max_connections=REDIS_SUBSCRIBER_LIMIT)
        )
    else:
        storage = MemoryStorage()
        isolation = OrderedEventIsolation()
        bus = MemoryEventBus()
    catalogue = load_catalogue()
    attempts: Attempts = (
        RedisAttempts(redis=redis, clock=clock) if redis else MemoryAttempts(clock=clock)
    )
    conversations = ConversationService(sessions=sessions, clock=clock, bus=bus)
    relay = Relay(
        senders={},
        conversations=conversations,
        clock=clock,
        rate_per_second=settings.telegram_send_rate,
    )
    referrals = ReferralIndexHolder()
    statistics = StatisticsService(
        sessions=sessions, clock=clock, granularity=settings.statistics_period
    )
    engine = ConversationEngine(
        catalogue=catalogue,
        states=FlowStateStore(storage),
        conversations=conversations,
        referrals=referrals,
        followups=FollowupService(sessions=sessions, clock=clock, days=settings.followup_days),
        statistics=statistics,
        recent=RecentTexts(clock=clock),
        clock=clock,
    )
    services = Services(
        settings=settings,
        clock=clock,
        db=db,
        sessions=sessions,
        redis=redis,
        bus=bus,
        storage=storage,
        isolation=isolation,
        catalogue=catalogue,
        identities=Identities(settings),
        conversations=conversations,
        relay=relay,
        engine=engine,
        referrals=referrals,
        attempts=attempts,
        statistics=statistics,
        leader=create_leader(settings, redis=redis),
    )
    _attach_channels(services)
    return services


def _attach_channels(services: Services) -> None:
    # Imported here so that the core never depends on the adapters at import time.
    from bot.webchat.sender import WebChatSender

    services.relay.register("web", WebChatSender(conversations=services.conversations))
    if services.settings.bot_token:
        from bot.telegram.pacing import PacedAnswers
        from bot.telegram.sender import TelegramSender
        from bot.telegram.setup import create_bot, create_dispatcher

        services.bot = create_bot(services.settings)
        # The bot's direct answers share the relay's pacing and wait out a flood limit.
        services.bot.session.middleware(PacedAnswers(relay=services.relay))
        services.dispatcher = create_dispatcher(services)
        services.relay.register(
            "telegram", TelegramSender(bot=services.bot, identities=services.identities)
        )


async def close_services(services: Services) -> None:
    await services.leader.release()
    await services.statistics.close()  # the searches counted since the last write
    if services.bot is not None:
        await services.bot.session.close()
    await services.storage.close()
    await services.isolation.close()
    if isinstance(services.bus, RedisEventBus):
        await services.bus.close()
    if services.redis is not None:
        await services.redis.aclose()
    await services.db.dispose()


def keep_startup_objects() -> None:
    """Call once start-up is done: every object made so far (modules, catalogues, lexicons,
    the referral index; about 300,000) lives as long as the process, so the garbage collector
    stops walking them. Otherwise each full collection walks all of them, a pause of 0.2 to
    0.7 s that came every few thousand updates under load (bench/README.md).

    Objects of the start-up that later become garbage are still freed by reference counting;
    only those in reference cycles wait for `release_startup_objects`."""
    gc.freeze()


def release_startup_objects() -> None:
    """At shutdown: the kept objects go back to the collector (matters for tests and the
    bench, which start services several times in one process)."""
    gc.unfreeze()

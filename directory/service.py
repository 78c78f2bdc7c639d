"""Directory data functions: seed loading and reading published offers."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from directory.models import Offer
from directory.schemas import OfferPublic

SEED_FILE = Path(__file__).with_name("seed") / "offers.json"


async def load_seed(session: AsyncSession, *, path: Path = SEED_FILE) -> int:
    """Insert or update the shipped offers by slug; returns how many were written."""
    text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    records = json.loads(text)["offers"]
    existing = {o.slug: o for o in (await session.scalars(select(Offer))).all()}
    for record in records:
        values = {**record, "last_checked": date.fromisoformat(record["last_checked"])}
        offer = existing.get(record["slug"])
        if offer is None:
            session.add(Offer(**values))
        else:
            for key, value in values.items():
                setattr(offer, key, value)
    return len(records)


async def published_offers(session: AsyncSession) -> list[OfferPublic]:
    rows = await session.scalars(select(Offer).where(Offer.status == "published"))
    return [OfferPublic.model_validate(row) for row in rows]

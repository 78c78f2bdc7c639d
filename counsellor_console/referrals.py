"""Referral cards from the console: the counsellor searches the directory as the public API
does, picks offers, and each goes to the user as the same card the bot shows."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from core.followups import ACTION, OPT_IN
from core.models import Counsellor
from core.relay import OutboundJob
from core.schemas import MessagePublic
from core.statistics import referral_category
from referral.api import area_for
from referral.cards import offer_card
from referral.index import MAX_LIMIT, InvalidQuery

if TYPE_CHECKING:
    from lotse.runtime import Services


class ReferralSend(BaseModel):
    # The search the counsellor made (GET /api/v1/referrals) and the offers picked from it.
    service_ids: list[str] = Field(min_length=1, max_length=5)
    postcode: str | None = Field(default=None, max_length=10)
    needs: list[str] = Field(default_factory=list, max_length=12)
    q: str | None = Field(default=None, max_length=500)


class ReferralUnavailable(RuntimeError):
    """The directory is not loaded yet."""


async def send_referrals(
    *,
    services: Services,
    conversation_id: uuid.UUID,
    counsellor: Counsellor,
    request: ReferralSend,
) -> list[MessagePublic]:
    index = services.referrals.current
    if index is None:
        raise ReferralUnavailable()
    language = await services.conversations.contact_language(
        conversation_id=conversation_id, counsellor=counsellor
    )
    found = index.search(
        area=area_for(request.postcode), needs=request.needs, text=request.q, limit=MAX_LIMIT
    )
    matches = {match.offer.service_id: match for match in found.matches}
    missing = [sid for sid in request.service_ids if sid not in matches]
    if missing:
        raise InvalidQuery("service_ids", "an offer is not among the results of this search")
    cards = [
        (sid, offer_card(services.catalogue, language, matches[sid]))
        for sid in dict.fromkeys(request.service_ids)
    ]
    categories = {
        sid: referral_category(offer_needs=matches[sid].offer.needs, asked=found.needs)
        for sid, _ in cards
    }
    messages, route = await services.conversations.add_referral_cards(
        conversation_id=conversation_id, counsellor=counsellor, cards=cards, categories=categories
    )
    # The stored messages are sealed; the relay gets the card text from here, in memory only.
    for message, (_, text) in zip(messages, cards, strict=True):
        await services.relay.enqueue(OutboundJob(message.id, route, text))
    days = services.engine.followup_days
    if days is not None and route.chat_ref is not None:
        # The bot's offer to check back, as after its own results: a button, not a stored
        # message (the user's tap is handled by the bot; the team sees nothing of it).
        catalogue = services.catalogue
        label = catalogue.text(language, "followup.offer", days=days)
        text = catalogue.text(language, "followup.offer_after_cards")
        buttons = (((label, f"{ACTION}:{OPT_IN}"),),)
        await services.relay.enqueue(OutboundJob(uuid.uuid4(), route, text, buttons))
    return messages

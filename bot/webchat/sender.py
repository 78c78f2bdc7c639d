"""Delivers counsellor replies to an open web chat through the event bus."""

from __future__ import annotations

from core.conversations import ConversationService
from core.relay import DeliveryError
from core.schemas import ContactRoute


def webchat_channel(pseudonym: str) -> str:
    return f"webchat:{pseudonym}"


class WebChatSender:
    def __init__(self, *, conversations: ConversationService) -> None:
        self._conversations = conversations

    async def send(self, *, route: ContactRoute, text: str) -> None:
        if route.channel != "web":
            raise DeliveryError("wrong_channel", permanent=True)
        listeners = await self._conversations.publish(
            webchat_channel(route.pseudonym), {"type": "reply", "text": text}
        )
        if listeners == 0:
            # The try-out chat keeps no inbox: a closed page means the reply did not arrive.
            raise DeliveryError("not_connected", permanent=True)

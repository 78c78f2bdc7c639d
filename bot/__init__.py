"""Guided conversations: a channel-independent engine plus thin adapters (Telegram, web chat)."""

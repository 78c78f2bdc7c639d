"""Telegram adapter: aiogram routers that translate updates for the conversation engine."""

"""Shared kernel: settings, database, clock, crypto helpers and the conversation domain.

Everything the bot, the referral engine, the directory and the console have in common lives here,
so that each of them stays a thin layer over one set of services.
"""

"""The counsellor console: login, the team queue, live conversations and replies."""

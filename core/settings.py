"""Configuration from the environment; development secrets are generated once into a local file."""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_FIELDS = ("pseudonym_pepper", "routing_key")
_PLACEHOLDERS = {"", "change-me", "changeme", "change_me", "secret", "please-change", "xxx"}
# Telegram allows 1-256 characters of A-Z, a-z, 0-9, _ and - in a webhook secret; we also insist
# on a length that cannot be guessed (token_urlsafe(32) gives 43 characters).
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{32,256}")
_LOOPBACK_HOSTS = {"localhost"}


class SettingsError(RuntimeError):
    """Start-up must stop: the message says what to set."""


class Settings(BaseSettings):
    """All knobs of one Lotse process. Built by `load_settings`, never at import time."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    env: Literal["development", "production", "test"] = Field(
        default="development", validation_alias="LOTSE_ENV"
    )
    host: str = Field(default="127.0.0.1", validation_alias="LOTSE_HOST")
    port: int = Field(default=8080, validation_alias="LOTSE_PORT")
    data_dir: Path = Field(default=Path("var"), validation_alias="LOTSE_DATA_DIR")
    database_url: str = Field(default="", validation_alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    telegram_bot_token: SecretStr | None = Field(
        default=None, validation_alias="TELEGRAM_BOT_TOKEN"
    )
    telegram_api_base: str = Field(
        default="https://api.telegram.org", validation_alias="TELEGRAM_API_BASE"
    )
    # 30 messages/s is Telegram's documented global limit for bots; we stay just under it: at
    # 29 a second carries at most 30 sends (the relay never makes up a missed slot), and a
    # backlog drains at about 29/s. Above 30 every second would end in a 429 and a pause.
    telegram_send_rate: float = Field(
        default=29.0, gt=0, le=30, validation_alias="TELEGRAM_SEND_RATE"
    )
    # polling needs no public endpoint; webhook lets several processes share the bot.
    telegram_mode: Literal["polling", "webhook"] = Field(
        default="polling", validation_alias="TELEGRAM_MODE"
    )
    telegram_webhook_url: str | None = Field(default=None, validation_alias="TELEGRAM_WEBHOOK_URL")
    telegram_webhook_secret: SecretStr | None = Field(
        default=None, validation_alias="TELEGRAM_WEBHOOK_SECRET"
    )
    pseudonym_pepper: SecretStr | None = Field(
        default=None, validation_alias="LOTSE_PSEUDONYM_PEPPER"
    )
    pseudonym_pepper_version: int = Field(
        default=1, validation_alias="LOTSE_PSEUDONYM_PEPPER_VERSION"
    )
    routing_key: SecretStr | None = Field(default=None, validation_alias="LOTSE_ROUTING_KEY")
    cookie_secure: bool = Field(default=True, validation_alias="LOTSE_COOKIE_SECURE")
    session_idle_minutes: int = Field(default=30, validation_alias="LOTSE_SESSION_IDLE_MINUTES")
    session_absolute_hours: int = Field(
        default=12, validation_alias="LOTSE_SESSION_ABSOLUTE_HOURS"
    )
    create_dev_account: bool = Field(default=True, validation_alias="LOTSE_CREATE_DEV_ACCOUNT")
    # Retention in days (core/retention.py): open conversations nobody wrote in are closed;
    # closed ones are deleted with their transcript, notes and case keys; audit entries go.
    retention_close_inactive_days: int = Field(
        default=7, ge=1, validation_alias="LOTSE_RETENTION_CLOSE_INACTIVE_DAYS"
    )
    retention_delete_closed_days: int = Field(
        default=90, ge=1, validation_alias="LOTSE_RETENTION_DELETE_CLOSED_DAYS"
    )
    retention_audit_days: int = Field(
        default=365, ge=30, validation_alias="LOTSE_RETENTION_AUDIT_DAYS"
    )
    # The raw anonymous events behind the statistics go after this many months; published
    # reports stay (core/statistics.py).
    retention_statistics_months: int = Field(
        default=24, ge=1, validation_alias="LOTSE_RETENTION_STATISTICS_MONTHS"
    )
    # The one period length statistics are published for: reports of two lengths could be
    # subtracted from each other, so choose once (docs/statistics.md).
    statistics_period: Literal["month", "quarter", "year"] = Field(
        default="quarter", validation_alias="LOTSE_STATISTICS_PERIOD"
    )
    # After the bot showed offers, a user may ask to be asked after this many days whether they
    # helped (core/followups.py).
    followup_days: int = Field(default=14, ge=1, le=90, validation_alias="LOTSE_FOLLOWUP_DAYS")
    # The public half of the organisation's offline recovery key (`lotse keys public PATH`):
    # every team epoch is also wrapped to it. Without it, lost member keys mean lost data.
    recovery_public_key: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_-]{43}$", validation_alias="LOTSE_RECOVERY_PUBLIC_KEY"
    )
    log_level: str = Field(default="INFO", validation_alias="LOTSE_LOG_LEVEL")

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def bot_token(self) -> str | None:
        return self.telegram_bot_token.get_secret_value() if self.telegram_bot_token else None

    @property
    def webhook_secret(self) -> str | None:
        secret = self.telegram_webhook_secret
        return secret.get_secret_value() if secret else None

    def secret_bytes(self, name: str) -> bytes:
        """Decode one of the base64 secrets; they are always present after `load_settings`."""
        value = getattr(self, name)
        if value is None:
            raise SettingsError(f"{name} is not set")
        return base64.urlsafe_b64decode(value.get_secret_value())


def _is_placeholder(value: SecretStr | None) -> bool:
    if value is None:
        return True
    raw = value.get_secret_value().strip()
    if raw.lower() in _PLACEHOLDERS:
        return True
    try:
        return len(base64.urlsafe_b64decode(raw)) < 32
    except ValueError:
        return True


def _env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    return str(alias)


def _read_secrets_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip()
    return values


def _write_secrets_file(path: Path, values: Mapping[str, str]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    body = "# Generated by Lotse for development. Never use these in production.\n"
    body += "".join(f"{key}={value}\n" for key, value in sorted(values.items()))
    # Create with 0600 from the start so the secrets are never world-readable, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(body)
    os.chmod(path, 0o600)


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_webhook_settings(settings: Settings) -> None:
    """Webhook mode needs a token, a public https URL and a secret, in every environment.

    Without the secret anybody who finds the URL could post forged updates in a user's name.
    """
    if settings.telegram_mode != "webhook":
        return
    if not settings.bot_token:
        raise SettingsError("TELEGRAM_MODE=webhook needs TELEGRAM_BOT_TOKEN.")
    secret = settings.webhook_secret
    if secret is None or secret.strip().lower() in _PLACEHOLDERS:
        raise SettingsError(
            "TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_SECRET (refused in every environment: "
            "without it anybody could post forged updates). Generate one with: "
            'python -c "import secrets;print(secrets.token_urlsafe(32))"'
        )
    if not _WEBHOOK_SECRET.fullmatch(secret):
        raise SettingsError(
            "TELEGRAM_WEBHOOK_SECRET must be 32 to 256 characters of A-Z, a-z, 0-9, _ and -. "
            'Generate one with: python -c "import secrets;print(secrets.token_urlsafe(32))"'
        )
    url = urlsplit(settings.telegram_webhook_url or "")
    secure = url.scheme == "https" or (url.scheme == "http" and _is_loopback(url.hostname or ""))
    if not url.hostname or not secure:
        raise SettingsError(
            "TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_URL, the public https URL that "
            "Telegram posts to, e.g. https://lotse.example.org/telegram/webhook "
            "(plain http only to a loopback address, for a local Bot API server or tests)."
        )


def _invalid(error: ValidationError) -> SettingsError:
    # Variable names and reasons only: the input values may be secrets.
    problems = set()
    for problem in error.errors():
        name = str(problem["loc"][0]) if problem.get("loc") else "?"
        if name in Settings.model_fields:
            name = _env_name(name)
        problems.add(f"{name}: {problem.get('msg', 'invalid')}")
    return SettingsError("invalid settings: " + "; ".join(sorted(problems)))


def new_secret() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment plus explicit overrides (field names, for tests).

    In production, a missing or placeholder secret stops start-up. Elsewhere the missing ones are
    generated once into `<data_dir>/secrets.env` (mode 0600) and reused on the next start.
    """
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise _invalid(error) from None
    check_webhook_settings(settings)
    if not settings.database_url:
        settings.database_url = f"sqlite+aiosqlite:///{settings.data_dir / 'lotse.db'}"
    missing = [name for name in SECRET_FIELDS if _is_placeholder(getattr(settings, name))]
    if missing and settings.is_production:
        names = ", ".join(_env_name(name) for name in missing)
        raise SettingsError(
            f"LOTSE_ENV=production needs real secrets; missing or placeholder: {names}. "
            'Generate each with: python -c "import base64,secrets;'
            'print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())"'
        )
    if missing:
        path = settings.data_dir / "secrets.env"
        stored = _read_secrets_file(path)
        changed = False
        for name in missing:
            key = _env_name(name)
            if key not in stored:
                stored[key] = new_secret()
                changed = True
            setattr(settings, name, SecretStr(stored[key]))
        if changed:
            _write_secrets_file(path, stored)
    return settings

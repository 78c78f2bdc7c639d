import os
import stat

import pytest
from pydantic import SecretStr

from core.settings import SettingsError, load_settings, new_secret


def test_development_secrets_are_generated_once_with_mode_0600(tmp_path, monkeypatch):
    for name in ("LOTSE_PSEUDONYM_PEPPER", "LOTSE_ROUTING_KEY"):
        monkeypatch.delenv(name, raising=False)
    first = load_settings(env="development", data_dir=tmp_path)
    path = tmp_path / "secrets.env"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    second = load_settings(env="development", data_dir=tmp_path)
    assert first.secret_bytes("pseudonym_pepper") == second.secret_bytes("pseudonym_pepper")
    assert len(first.secret_bytes("routing_key")) == 32


def test_production_refuses_missing_secrets_with_a_clear_message(tmp_path, monkeypatch):
    for name in ("LOTSE_PSEUDONYM_PEPPER", "LOTSE_ROUTING_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SettingsError) as raised:
        load_settings(env="production", data_dir=tmp_path)
    assert "LOTSE_PSEUDONYM_PEPPER" in str(raised.value)
    assert not (tmp_path / "secrets.env").exists()


def test_production_refuses_placeholder_secrets(tmp_path):
    with pytest.raises(SettingsError, match="LOTSE_ROUTING_KEY"):
        load_settings(
            env="production",
            data_dir=tmp_path,
            pseudonym_pepper=SecretStr(new_secret()),
            routing_key=SecretStr("change-me"),
        )


def test_production_starts_with_real_secrets(tmp_path):
    settings = load_settings(
        env="production",
        data_dir=tmp_path,
        pseudonym_pepper=SecretStr(new_secret()),
        routing_key=SecretStr(new_secret()),
    )
    assert settings.is_production
    assert settings.database_url.startswith("sqlite+aiosqlite:///")


def test_environment_variables_configure_the_service(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://db/lotse")
    monkeypatch.setenv("TELEGRAM_API_BASE", "http://127.0.0.1:9999")
    monkeypatch.setenv("LOTSE_PORT", "9090")
    settings = load_settings(data_dir=tmp_path)
    assert settings.database_url == "postgresql+asyncpg://db/lotse"
    assert settings.telegram_api_base == "http://127.0.0.1:9999"
    assert settings.port == 9090

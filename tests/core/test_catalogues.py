"""The translation catalogues: every text in German is in English too and the other way
round, file by file, none empty, and the placeholders match (a missing English entry would
silently show German; a wrong placeholder would raise at the user's turn)."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from core.i18n import LOCALES_DIR, load_catalogue

FILES = sorted(p.name for p in (LOCALES_DIR / "de" / "LC_MESSAGES").glob("*.po"))


def entries(path: Path) -> dict[str, str]:
    with path.open("rb") as handle:
        return {str(m.id): str(m.string) for m in read_po(handle) if m.id}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("name", FILES)
def test_german_and_english_have_the_same_texts(name):
    german = entries(LOCALES_DIR / "de" / "LC_MESSAGES" / name)
    english = entries(LOCALES_DIR / "en" / "LC_MESSAGES" / name)
    assert set(german) - set(english) == set(), "missing in English"
    assert set(english) - set(german) == set(), "missing in German"
    assert [k for k, v in {**german, **english}.items() if not v.strip()] == []
    for key in german:
        assert placeholders(german[key]) == placeholders(english[key]), key


def test_german_speaks_to_the_user_with_du():
    """The product speaks German with "du": no formal "Sie"/"Ihnen"/"Ihr" addressing the
    reader in the user-facing texts. A capitalised "Sie" or "Ihnen" mid-sentence is the formal
    you; "Ihr" is left out (it is also the informal plural, "Ihr trefft euch")."""
    catalogue = load_catalogue()
    formal = re.compile(r"(?<![.!?:•\n]\s)(?<!^)(?<!\n)\b(Sie|Ihnen)\b")
    offenders = [
        key
        for key, text in catalogue.messages["de"].items()
        if not key.startswith(("curation.", "stats.")) and formal.search(text)
    ]
    assert offenders == []

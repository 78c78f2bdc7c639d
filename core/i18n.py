"""Translation catalogues: gettext .po files read with Babel, one per language.

Message ids are stable keys (`flow.ask_postcode`) so that wording can change in the catalogue
without touching code; German is the default and the fallback for a missing translation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).with_name("locales")
DEFAULT_LANGUAGE = "de"


@dataclass(frozen=True)
class Catalogue:
    messages: dict[str, dict[str, str]]

    @property
    def languages(self) -> list[str]:
        return sorted(self.messages)

    @property
    def interface_languages(self) -> list[str]:
        """The languages the whole flow speaks; the others (tr, ru, uk, ar) have only the
        crisis card and the few lines around it (crisis.po)."""
        return sorted(lang for lang, table in self.messages.items() if "flow.welcome" in table)

    def has(self, lang: str, key: str) -> bool:
        return key in self.messages.get(lang, {})

    def text(self, lang: str, key: str, /, **values: object) -> str:
        table = self.messages.get(lang) or self.messages[DEFAULT_LANGUAGE]
        template = table.get(key) or self.messages[DEFAULT_LANGUAGE].get(key)
        if template is None:
            raise KeyError(f"no catalogue entry {key!r}")
        return template.format(**values) if values else template


def load_catalogue(directory: Path = LOCALES_DIR) -> Catalogue:
    """Every .po file of a language, merged: `messages.po` for the interface, `cards.po` for
    the longer info cards, so content editors and translators can work on them apart."""
    messages: dict[str, dict[str, str]] = {}
    for po_path in sorted(directory.glob("*/LC_MESSAGES/*.po")):
        lang = po_path.parent.parent.name
        with po_path.open("rb") as handle:
            catalog = read_po(handle)
        table = messages.setdefault(lang, {})
        for message in catalog:
            if not (message.id and message.string):
                continue
            key = str(message.id)
            if key in table:
                raise RuntimeError(f"{key!r} is in more than one {lang} catalogue file")
            table[key] = str(message.string)
    if DEFAULT_LANGUAGE not in messages:
        raise RuntimeError(f"no {DEFAULT_LANGUAGE} catalogue in {directory}")
    return Catalogue(messages)

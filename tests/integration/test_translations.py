"""The text users read: literal, and the same in strings.json and the English translation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

INTEGRATION = Path(__file__).resolve().parents[2] / "custom_components" / "home_security_ai"
TRANSLATIONS = sorted((INTEGRATION / "translations").glob("*.json"))


def test_english_translation_exists() -> None:
    assert INTEGRATION / "translations" / "en.json" in TRANSLATIONS


@pytest.mark.parametrize(
    "path", [INTEGRATION / "strings.json", *TRANSLATIONS], ids=lambda p: p.name
)
def test_no_key_references(path: Path) -> None:
    """Home Assistant resolves `[%key:...]` only for its own integrations, never for custom ones."""
    lines = [
        f"{path.name}:{number}: {line.strip()}"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "[%key:" in line
    ]
    assert not lines, "\n".join(lines)


def test_strings_match_english_translation() -> None:
    """Custom integrations are not built by Home Assistant: en.json is what users read."""
    strings = json.loads((INTEGRATION / "strings.json").read_text(encoding="utf-8"))
    english = json.loads((INTEGRATION / "translations" / "en.json").read_text(encoding="utf-8"))
    assert strings == english

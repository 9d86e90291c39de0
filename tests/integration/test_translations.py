"""The text users read: literal, and the same in strings.json and the English translation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

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


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    assert not duplicates, f"keys given twice (the last one wins): {duplicates}"
    return dict(pairs)


@pytest.mark.parametrize(
    "path",
    [INTEGRATION / "strings.json", INTEGRATION / "icons.json", *TRANSLATIONS],
    ids=lambda p: p.name,
)
def test_no_key_given_twice(path: Path) -> None:
    """JSON keeps only the last of two equal keys, silently dropping the first one's texts."""
    json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates)


def test_strings_match_english_translation() -> None:
    """Custom integrations are not built by Home Assistant: en.json is what users read."""
    strings = json.loads((INTEGRATION / "strings.json").read_text(encoding="utf-8"))
    english = json.loads((INTEGRATION / "translations" / "en.json").read_text(encoding="utf-8"))
    assert strings == english


def _texts(node: object) -> list[str]:
    if isinstance(node, dict):
        return [text for value in node.values() for text in _texts(value)]
    return [node] if isinstance(node, str) else []


@pytest.mark.parametrize(
    "path", [INTEGRATION / "strings.json", *TRANSLATIONS], ids=lambda p: p.name
)
def test_braces_are_only_placeholders(path: Path) -> None:
    """The frontend reads every text as an ICU message: a brace that is not a `{placeholder}`
    (a YAML example, say) shows the user "Translation error" instead of the text."""
    bad = [
        text
        for text in _texts(json.loads(path.read_text(encoding="utf-8")))
        if re.sub(r"\{\w+\}", "", text).count("{") or re.sub(r"\{\w+\}", "", text).count("}")
    ]
    assert not bad, bad


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [key for key, _ in pairs]
    duplicates = {key for key in keys if keys.count(key) > 1}
    assert not duplicates, f"keys given twice (the last one wins): {sorted(duplicates)}"
    return dict(pairs)


@pytest.mark.parametrize(
    "path", [INTEGRATION / "strings.json", *TRANSLATIONS], ids=lambda p: p.name
)
def test_no_key_is_given_twice(path: Path) -> None:
    """JSON keeps only the last of two equal keys: the first block's texts would be lost."""
    json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys)


def test_every_action_and_selector_is_translated() -> None:
    """Each action and field in services.yaml has a name, and each select's options a label."""
    services = yaml.safe_load((INTEGRATION / "services.yaml").read_text(encoding="utf-8"))
    strings = json.loads((INTEGRATION / "strings.json").read_text(encoding="utf-8"))
    missing = []
    for action, spec in services.items():
        texts = strings["services"].get(action, {})
        if "name" not in texts:
            missing.append(action)
        for field, field_spec in (spec or {}).get("fields", {}).items():
            if "name" not in texts.get("fields", {}).get(field, {}):
                missing.append(f"{action}.{field}")
            select = (field_spec.get("selector") or {}).get("select") or {}
            if key := select.get("translation_key"):
                labels = strings.get("selector", {}).get(key, {}).get("options", {})
                missing += [
                    f"selector {key}: {option}"
                    for option in select.get("options", [])
                    if option not in labels
                ]
    assert not missing, missing

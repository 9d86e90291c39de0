"""Every text the integration shows has a translation: errors, repair issues, enum states,
the calendar's and media browser's words; and strings.json keeps to what hassfest accepts."""

from __future__ import annotations

import ast
import json
import re
import string
from pathlib import Path

import pytest
from homeassistant.components import media_source
from homeassistant.components.media_player.errors import BrowseError
from homeassistant.components.sensor import SensorDeviceClass
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component

from custom_components.home_security_ai.client.models import (
    LANGUAGE_MODEL_FAILING,
    LanguageModelState,
)
from custom_components.home_security_ai.const import DOMAIN
from custom_components.home_security_ai.sensor import (
    CAMERA_SENSORS,
    SERVER_SENSORS,
    SPOOL_SENSORS,
)

INTEGRATION = Path(__file__).resolve().parents[2] / "custom_components" / "home_security_ai"
STRINGS = json.loads((INTEGRATION / "strings.json").read_text(encoding="utf-8"))
# Home Assistant's exceptions that a user reads; the integration's own ones stay inside it.
USER_FACING = {
    "HomeAssistantError",
    "ServiceValidationError",
    "ConfigEntryError",
    "ConfigEntryNotReady",
    "ConfigEntryAuthFailed",
    "BrowseError",
    "Unresolvable",
}


def _modules() -> list[Path]:
    return sorted(
        path for path in INTEGRATION.rglob("*.py") if "_generated" not in path.parts
    )


def _calls(name: str) -> list[tuple[Path, ast.Call]]:
    """Every call of a function or class called `name`, with its module."""
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called == name:
                    found.append((path, node))
    return found


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def _placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


def test_user_facing_errors_are_translated() -> None:
    """A Home Assistant error raised with English text shows English in every language."""
    untranslated = []
    for name in sorted(USER_FACING):
        for path, call in _calls(name):
            # `**_error(...)` hands the translation over as keyword arguments.
            translated = _keyword(call, "translation_key") is not None or any(
                kw.arg is None for kw in call.keywords
            )
            if call.args or not translated:
                untranslated.append(f"{path.name}:{call.lineno}: {name}")
    assert not untranslated, untranslated


def test_exception_keys_exist_with_their_placeholders() -> None:
    exceptions = STRINGS["exceptions"]
    missing = []
    for name in sorted(USER_FACING):
        for path, call in _calls(name):
            key = _keyword(call, "translation_key")
            if isinstance(key, ast.Constant) and key.value not in exceptions:
                missing.append(f"{path.name}:{call.lineno}: {key.value}")
    # The media source's errors go through one helper.
    for path, call in _calls("_error"):
        key = call.args[0]
        assert isinstance(key, ast.Constant)
        if key.value not in exceptions:
            missing.append(f"{path.name}:{call.lineno}: {key.value}")
        else:
            assert _placeholders(exceptions[key.value]["message"]) == {"identifier"}
    assert not missing, missing


def test_every_language_model_issue_has_a_text() -> None:
    """The language model's issue is keyed by its state: each failing state needs a text."""
    issues = STRINGS["issues"]
    for state in LANGUAGE_MODEL_FAILING:
        issue = issues[f"language_model_{state.value}"]
        assert _placeholders(issue["description"]) == {"model", "reason", "fallbacks"}


def test_issue_keys_exist() -> None:
    issues = STRINGS["issues"]
    missing = [
        f"{path.name}:{call.lineno}: {key.value}"
        for path, call in _calls("async_create_issue")
        if isinstance(key := _keyword(call, "translation_key"), ast.Constant)
        and key.value not in issues
    ]
    assert not missing, missing


def test_enum_sensor_states_are_translated_and_not_home_assistants_own() -> None:
    """`unknown` and `unavailable` are Home Assistant's states: an option of that name would be
    shown as Home Assistant's, not as the sensor's."""
    sensors = STRINGS["entity"]["sensor"]
    for description in (*SERVER_SENSORS, *CAMERA_SENSORS, *SPOOL_SENSORS):
        if description.device_class is not SensorDeviceClass.ENUM:
            continue
        options = set(description.options or [])
        assert options, description.key
        assert not options & {STATE_UNKNOWN, STATE_UNAVAILABLE}, description.key
        assert set(sensors[str(description.translation_key)]["state"]) == options


def test_language_model_state_for_an_old_server() -> None:
    language_model = next(d for d in SERVER_SENSORS if d.key == "language_model")
    assert "not_reported" in (language_model.options or [])
    assert len(language_model.options or []) == len(LanguageModelState)


@pytest.mark.parametrize(
    ("key", "placeholders"),
    [
        ("incident_summary", {"level", "cameras"}),
        ("incident_highest_risk", {"level", "score"}),
        ("incident_cameras", {"cameras"}),
        ("media_incident", {"time", "count"}),
        ("media_clip", {"count"}),
    ],
)
def test_common_texts(key: str, placeholders: set[str]) -> None:
    """The calendar and the media browser format these with exactly these placeholders."""
    assert _placeholders(STRINGS["common"][key]) == placeholders


def test_common_keys_in_use_exist() -> None:
    used = set()
    for path in _modules():
        used |= set(re.findall(r'text\(\s*(?:texts,\s*)?"(\w+)"', path.read_text("utf-8")))
    assert used
    assert used <= set(STRINGS["common"])


def _texts(node: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    if isinstance(node, dict):
        return [item for key, value in node.items() for item in _texts(value, (*path, key))]
    return [(path, str(node))]


def test_texts_as_hassfest_checks_them() -> None:
    """No address, markup or padding in a text; placeholders are identifiers, and none in an
    entity's state names (the frontend fills none in there)."""
    bad = []
    for path, text in _texts(STRINGS):
        where = "/".join(path)
        if re.search(r"(https?|mqtts?|ftps?)://|www\.", text) or re.search(r"<[a-z/][^>]*>", text):
            bad.append(f"{where}: an address or markup belongs in a placeholder")
        if text != text.strip():
            bad.append(f"{where}: leading or trailing space")
        fields = _placeholders(text)
        if not all(field.isidentifier() for field in fields):
            bad.append(f"{where}: placeholder {fields}")
        in_state = {"state", "state_attributes", "unit_of_measurement"} & set(path)
        if fields and path[0] == "entity" and in_state:
            bad.append(f"{where}: placeholder in a state")
    assert not bad, bad


def test_keys_are_translation_keys() -> None:
    """Lower-case letters, digits, - and _, neither first nor last nor doubled."""
    key = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
    keys = [
        *((platform, name) for platform, names in STRINGS["entity"].items() for name in names),
        *(
            (name, state)
            for names in STRINGS["entity"].values()
            for name, entity in names.items()
            for state in entity.get("state", {})
        ),
        *(
            (name, option)
            for name, selector in STRINGS["selector"].items()
            for option in selector.get("options", {})
        ),
    ]
    assert keys
    assert not [pair for pair in keys if not key.fullmatch(pair[1])]


@pytest.mark.parametrize("flow", ["config", "options"])
def test_flow_steps_as_hassfest_checks_them(flow: str) -> None:
    """Each data_description names a field of its step's data, and no step is titled with
    the integration's name (hassfest refuses both)."""
    for step_id, step in STRINGS[flow]["step"].items():
        assert set(step.get("data_description", {})) <= set(step.get("data", {})), step_id
        assert step.get("title") != "Home Security AI", step_id


async def test_media_errors_read_in_the_users_words(hass: HomeAssistant) -> None:
    """The media source's errors carry their translation, with the identifier filled in."""
    assert await async_setup_component(hass, "media_source", {})
    assert await async_setup_component(hass, DOMAIN, {})
    await hass.async_block_till_done()
    with pytest.raises(media_source.Unresolvable) as resolve_error:
        await media_source.async_resolve_media(
            hass, f"media-source://{DOMAIN}/porch/nothing.mp4", None
        )
    assert resolve_error.value.translation_key == "no_such_media"
    # (Home Assistant drops the sentence's full stop.)
    assert str(resolve_error.value).startswith(
        "No snapshot or clip of Home Security AI lies at porch/nothing.mp4"
    )
    with pytest.raises(BrowseError) as browse_error:
        await media_source.async_browse_media(hass, f"media-source://{DOMAIN}/a/b/c/d")
    assert browse_error.value.translation_key == "no_such_folder"
    assert str(browse_error.value).startswith("No folder of Home Security AI media lies at a/b/c/d")

"""Tests for the Home Security AI config and options flows."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_security_ai.config_flow import CONF_USE_TLS, CONF_ZONES_YAML
from custom_components.home_security_ai.const import (
    CONF_BATCH_WINDOW,
    CONF_CAMERAS,
    CONF_IDLE_TIMEOUT,
    CONF_MOTION_SENSORS,
    CONF_SNAPSHOT_INTERVAL,
    CONF_THREAT_MINUTES,
    CONF_UPLOAD_FOLDERS,
    CONF_ZONES,
    DOMAIN,
)

from .conftest import TEST_CAMERA
from .sidecar_process import Sidecar

pytestmark = pytest.mark.usefixtures("mock_setup_entry")

_EVENT_DEFAULTS = {
    CONF_BATCH_WINDOW: 0,
    CONF_IDLE_TIMEOUT: 0,
    CONF_THREAT_MINUTES: 5,
    CONF_ZONES: {},
}


@pytest.fixture
def mock_setup_entry() -> object:
    """Keep the flows from setting the entry up."""
    with patch("custom_components.home_security_ai.async_setup_entry", return_value=True) as mock:
        yield mock


@pytest.fixture
def closed_port(socket_enabled: None) -> int:
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _input(sidecar: Sidecar, **changes: object) -> dict[str, object]:
    return {
        CONF_HOST: sidecar.host,
        CONF_PORT: sidecar.port,
        CONF_TOKEN: sidecar.token,
        # The shared sidecar runs plaintext, chosen; TLS is on by default on both sides.
        CONF_USE_TLS: False,
        **changes,
    }


async def test_user_flow(hass: HomeAssistant, shared_sidecar: Sidecar) -> None:
    """A reachable sidecar with the right token creates an entry keyed by its id."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(shared_sidecar, **{CONF_HOST: " 127.0.0.1 "})
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Home Security AI (127.0.0.1)"
    assert result["data"] == {
        CONF_HOST: "127.0.0.1",
        CONF_PORT: shared_sidecar.port,
        CONF_TOKEN: shared_sidecar.token,
    }
    assert result["result"].unique_id == shared_sidecar.server_id


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({CONF_TOKEN: "wrong-token"}, {CONF_TOKEN: "invalid_auth"}),
        ("closed", {CONF_HOST: "cannot_connect"}),
    ],
)
async def test_user_flow_errors_recover(
    hass: HomeAssistant,
    shared_sidecar: Sidecar,
    closed_port: int,
    changes: dict[str, object] | str,
    errors: dict[str, str],
) -> None:
    """A wrong token or a closed port shows an error; fixing it creates the entry."""
    if changes == "closed":
        changes = {CONF_PORT: closed_port}
    assert isinstance(changes, dict)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(shared_sidecar, **changes)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(shared_sidecar)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_flow_unknown_error(hass: HomeAssistant, shared_sidecar: Sidecar) -> None:
    """An unexpected error shows `unknown`; the next try works."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    with patch(
        "custom_components.home_security_ai.config_flow.HomeSecurityAIClient.get_status",
        side_effect=RuntimeError("boom"),
    ):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], _input(shared_sidecar)
        )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "unknown"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(shared_sidecar)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_flow_already_configured(
    hass: HomeAssistant, shared_sidecar: Sidecar, mock_config_entry: MockConfigEntry
) -> None:
    """The same sidecar cannot be added twice."""
    mock_config_entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(shared_sidecar)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reauth(hass: HomeAssistant, shared_sidecar: Sidecar, closed_port: int) -> None:
    """Reauth asks for a new token, rejects a wrong one and stores the right one."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=shared_sidecar.server_id,
        data=_input(shared_sidecar, **{CONF_TOKEN: "old-token"}),
    )
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reauth_confirm"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "still-wrong"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_TOKEN: "invalid_auth"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: shared_sidecar.token}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_TOKEN] == shared_sidecar.token


async def test_reauth_wrong_server(hass: HomeAssistant, shared_sidecar: Sidecar) -> None:
    """Reauth against a different sidecar aborts."""
    entry = MockConfigEntry(domain=DOMAIN, unique_id="another-server", data=_input(shared_sidecar))
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: shared_sidecar.token}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_server"


async def test_reconfigure(hass: HomeAssistant, shared_sidecar: Sidecar, closed_port: int) -> None:
    """Reconfigure validates the new address and updates the entry."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=shared_sidecar.server_id,
        data=_input(shared_sidecar, **{CONF_PORT: closed_port}),
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(shared_sidecar, **{CONF_PORT: closed_port})
    )
    assert result["errors"] == {CONF_HOST: "cannot_connect"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(shared_sidecar)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_PORT] == shared_sidecar.port


async def test_reconfigure_wrong_server(hass: HomeAssistant, shared_sidecar: Sidecar) -> None:
    """Reconfigure cannot point an entry at a different sidecar."""
    entry = MockConfigEntry(domain=DOMAIN, unique_id="another-server", data=_input(shared_sidecar))
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(shared_sidecar)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_server"
    assert entry.data[CONF_PORT] == shared_sidecar.port


async def _open_sources(hass: HomeAssistant, entry: MockConfigEntry) -> Any:
    """Open the options and pick the frame sources from the menu."""
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["sources", "alerts", "media"]
    return await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "sources"}
    )


async def test_options_flow(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, tmp_path: Path
) -> None:
    """Options: folders are checked, then a motion sensor can be picked per camera."""
    mock_config_entry.add_to_hass(hass)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    hass.states.async_set(TEST_CAMERA, "idle", {"friendly_name": "Porch"})

    result = await _open_sources(hass, mock_config_entry)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "sources"

    for folders, error in (
        ([str(tmp_path / "missing")], "folder_not_found"),
        ([str(uploads / "file.txt")], "folder_not_found"),
        (["/etc"], "folder_not_allowed"),
        (["relative/path"], "folder_not_allowed"),
    ):
        (uploads / "file.txt").write_text("x")
        result = await hass.config_entries.options.async_configure(
            result["flow_id"],
            {CONF_CAMERAS: [TEST_CAMERA], CONF_SNAPSHOT_INTERVAL: 10, CONF_UPLOAD_FOLDERS: folders},
        )
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {CONF_UPLOAD_FOLDERS: error}

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_CAMERAS: [TEST_CAMERA],
            CONF_SNAPSHOT_INTERVAL: 10,
            CONF_UPLOAD_FOLDERS: [str(uploads), " ", str(uploads)],
        },
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "motion"
    # The fields are named by entity ids; the description tells them by the cameras' names.
    assert result["description_placeholders"] == {"cameras": f"Porch: {TEST_CAMERA}"}

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {TEST_CAMERA: "binary_sensor.porch_motion"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert mock_config_entry.options == {
        CONF_CAMERAS: [TEST_CAMERA],
        CONF_SNAPSHOT_INTERVAL: 10,
        CONF_UPLOAD_FOLDERS: [str(uploads)],
        CONF_MOTION_SENSORS: {TEST_CAMERA: "binary_sensor.porch_motion"},
        **_EVENT_DEFAULTS,
    }


async def test_options_flow_without_cameras(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """Without camera entities there is no motion step."""
    mock_config_entry.add_to_hass(hass)
    result = await _open_sources(hass, mock_config_entry)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_SNAPSHOT_INTERVAL: 0}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert mock_config_entry.options == {
        CONF_CAMERAS: [],
        CONF_SNAPSHOT_INTERVAL: 0,
        CONF_UPLOAD_FOLDERS: [],
        CONF_MOTION_SENSORS: {},
        **_EVENT_DEFAULTS,
    }


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("front_door: [unclosed", "invalid_yaml"),
        ("- just a list", "invalid_zones"),
        ("front_door: [{kind: entry, points: [[0, 0], [1, 0], [1, 1]]}]", "invalid_zone_name"),
        (
            "front_door: [{name: a, kind: moat, points: [[0, 0], [1, 0], [1, 1]]}]",
            "invalid_zone_kind",
        ),
        ("front_door: [{name: a, kind: yard, points: [[0, 0], [1, 0]]}]", "too_few_points"),
        (
            "front_door: [{name: a, kind: yard, points: [[0, 0], [1, 0], [1, 2]]}]",
            "point_out_of_range",
        ),
        ("front_door: [{name: a, kind: yard, points: [[0, 0], [1, 0], [1]]}]", "invalid_point"),
        (
            "front_door: [{name: a, kind: yard, points: [[0, 0], [1, 0], [1, 1]]},"
            " {name: a, kind: yard, points: [[0, 0], [1, 0], [1, 1]]}]",
            "duplicate_zone",
        ),
    ],
)
async def test_options_flow_zone_errors(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, text: str, error: str
) -> None:
    """The zones editor names what is wrong with the zones."""
    mock_config_entry.add_to_hass(hass)
    result = await _open_sources(hass, mock_config_entry)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_SNAPSHOT_INTERVAL: 0, CONF_ZONES_YAML: text}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_ZONES_YAML: error}


async def test_options_flow_zones_and_windows(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """Batch windows and zones are saved; the editor shows the saved zones again."""
    mock_config_entry.add_to_hass(hass)
    result = await _open_sources(hass, mock_config_entry)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_SNAPSHOT_INTERVAL: 0,
            CONF_BATCH_WINDOW: 60,
            CONF_IDLE_TIMEOUT: 20,
            CONF_THREAT_MINUTES: 10,
            CONF_ZONES_YAML: (
                "front_door:\n  - name: porch\n    kind: Entry\n"
                "    points: [[0.1, 0.5], [0.5, 0.5], [0.5, 1]]\n"
            ),
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert mock_config_entry.options[CONF_BATCH_WINDOW] == 60
    assert mock_config_entry.options[CONF_IDLE_TIMEOUT] == 20
    assert mock_config_entry.options[CONF_THREAT_MINUTES] == 10
    assert mock_config_entry.options[CONF_ZONES] == {
        "front_door": [
            {"name": "porch", "kind": "entry", "points": [[0.1, 0.5], [0.5, 0.5], [0.5, 1.0]]}
        ]
    }

    result = await _open_sources(hass, mock_config_entry)
    schema = result["data_schema"].schema
    suggested = next(key.description["suggested_value"] for key in schema if key == CONF_ZONES_YAML)
    assert "porch" in suggested
    assert "front_door" in suggested


async def test_options_flow_excludes_own_cameras(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """The camera picker leaves out this integration's own cameras (a feedback loop)."""
    mock_config_entry.add_to_hass(hass)
    own = er.async_get(hass).async_get_or_create(
        "camera", DOMAIN, "server_porch_camera", config_entry=mock_config_entry
    )
    result = await _open_sources(hass, mock_config_entry)
    schema = result["data_schema"].schema
    selector = next(value for key, value in schema.items() if key == CONF_CAMERAS)
    assert selector.config["exclude_entities"] == [own.entity_id]

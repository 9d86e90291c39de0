"""The notification blueprint as a user sets it up: the file installed in the configuration
folder (as importing it does) and an automation made from it, sending to a phone's notify
action that the tests record."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Final

from homeassistant.core import HomeAssistant

REPO: Final = Path(__file__).resolve().parents[2]
BLUEPRINT: Final = "home_security_ai/notify_security_event.yaml"
NOTIFY: Final = "mobile_app_phone"


def install_blueprint(hass: HomeAssistant) -> None:
    """Copy the blueprint into the configuration folder's blueprints."""
    target = Path(hass.config.path("blueprints", "automation", BLUEPRINT))
    target.parent.mkdir(parents=True)
    shutil.copy(REPO / "blueprints" / "automation" / BLUEPRINT, target)


def blueprint_automation(minimum_level: str | None = None) -> dict[str, Any]:
    """An automation made from the blueprint (its default minimum level when None)."""
    inputs: dict[str, Any] = {"notify_action": f"notify.{NOTIFY}"}
    if minimum_level is not None:
        inputs["minimum_level"] = minimum_level
    return {
        "id": "security_push",
        "alias": "Security push",
        "use_blueprint": {"path": BLUEPRINT, "input": inputs},
    }

"""quality_scale.yaml names every rule of Home Assistant's integration quality scale in the
form hassfest reads; the README's images show in HACS."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
INTEGRATION = ROOT / "custom_components" / "home_security_ai"

# The rules of Home Assistant's quality scale (hassfest's script/hassfest/quality_scale.py).
RULES = {
    # Bronze
    "action-setup", "appropriate-polling", "brands", "common-modules", "config-flow",
    "config-flow-test-coverage", "dependency-transparency", "docs-actions", "docs-conditions",
    "docs-high-level-description", "docs-installation-instructions",
    "docs-removal-instructions", "docs-triggers", "entity-event-setup", "entity-unique-id",
    "has-entity-name", "runtime-data", "test-before-configure", "test-before-setup",
    "unique-config-entry",
    # Silver
    "action-exceptions", "config-entry-unloading", "docs-configuration-parameters",
    "docs-installation-parameters", "entity-unavailable", "integration-owner",
    "log-when-unavailable", "parallel-updates", "reauthentication-flow", "test-coverage",
    # Gold
    "devices", "diagnostics", "discovery", "discovery-update-info", "docs-data-update",
    "docs-examples", "docs-known-limitations", "docs-supported-devices",
    "docs-supported-functions", "docs-troubleshooting", "docs-use-cases", "dynamic-devices",
    "entity-category", "entity-device-class", "entity-disabled-by-default",
    "entity-translations", "exception-translations", "icon-translations",
    "reconfiguration-flow", "repair-issues", "stale-devices",
    # Platinum
    "async-dependency", "inject-websession", "strict-typing",
}  # fmt: skip


def _rules() -> dict[str, object]:
    data = yaml.safe_load((INTEGRATION / "quality_scale.yaml").read_text(encoding="utf-8"))
    assert set(data) == {"rules"}
    rules: dict[str, object] = data["rules"]
    return rules


def test_every_rule_is_listed_and_no_other() -> None:
    rules = set(_rules())
    assert not RULES - rules, f"missing: {sorted(RULES - rules)}"
    assert not rules - RULES, f"not rules of the scale: {sorted(rules - RULES)}"


def test_each_rule_has_a_status_hassfest_accepts() -> None:
    """done or todo, with or without a comment; exempt only with the reason."""
    for name, value in _rules().items():
        if isinstance(value, str):
            assert value in {"done", "todo"}, name
            continue
        assert isinstance(value, dict), name
        assert set(value) == {"status", "comment"}, name
        assert value["status"] in {"done", "todo", "exempt"}, name
        assert isinstance(value["comment"], str), name
        assert value["comment"].strip(), name


def test_brand_folder_limits_are_stated() -> None:
    """HACS allows releases older than the first that reads the brand folder: the rule says so."""
    minimum = json.loads((ROOT / "hacs.json").read_text(encoding="utf-8"))["homeassistant"]
    brands = _rules()["brands"]
    assert isinstance(brands, dict)
    assert "2026.3" in brands["comment"]
    assert minimum.rsplit(".", 1)[0] in brands["comment"]


def test_readme_images_are_absolute() -> None:
    """HACS shows the README without the repository around it: a relative image is broken."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)", readme) + re.findall(
        r'<img[^>]+src="([^"]+)"', readme
    )
    assert images
    documentation = json.loads((INTEGRATION / "manifest.json").read_text(encoding="utf-8"))[
        "documentation"
    ]
    repository = documentation.removeprefix("https://github.com/")
    prefix = f"https://raw.githubusercontent.com/{repository}/main/"
    for image in images:
        assert image.startswith(prefix), image
        assert (ROOT / image.removeprefix(prefix)).is_file(), image

"""The repository as HACS and Home Assistant's hassfest see it (the rules checkable offline)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.blueprint.models import Blueprint
from homeassistant.components.blueprint.schemas import BLUEPRINT_SCHEMA
from homeassistant.util.yaml import load_yaml_dict
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
INTEGRATION = REPO / "custom_components" / "home_security_ai"
# Keys HACS accepts in hacs.json.
HACS_KEYS = {
    "name",
    "content_in_root",
    "zip_release",
    "filename",
    "hide_default_branch",
    "country",
    "homeassistant",
    "persistent_directory",
    "render_readme",
}
# Keys a custom integration's manifest must have (hassfest plus HACS).
MANIFEST_REQUIRED = {
    "domain",
    "name",
    "codeowners",
    "config_flow",
    "documentation",
    "integration_type",
    "iot_class",
    "issue_tracker",
    "requirements",
    "version",
}
IOT_CLASSES = {
    "assumed_state",
    "cloud_polling",
    "cloud_push",
    "local_polling",
    "local_push",
    "calculated",
}
INTEGRATION_TYPES = {"device", "entity", "hardware", "helper", "hub", "service", "system"}
BRAND_SIZES = {
    "icon.png": (256, 256),
    "icon@2x.png": (512, 512),
    "dark_icon.png": (256, 256),
    "dark_icon@2x.png": (512, 512),
}


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_hacs_json() -> None:
    hacs = _json(REPO / "hacs.json")
    assert isinstance(hacs["name"], str)
    assert hacs["name"]
    assert set(hacs) <= HACS_KEYS
    assert re.fullmatch(r"\d{4}\.\d{1,2}\.\d+", hacs["homeassistant"])


def test_one_integration_at_the_expected_place() -> None:
    assert [path.name for path in (REPO / "custom_components").iterdir() if path.is_dir()] == [
        INTEGRATION.name
    ]
    assert (REPO / "README.md").is_file()
    assert "Apache License" in (REPO / "LICENSE").read_text(encoding="utf-8")


def test_manifest_keys_and_values() -> None:
    manifest = _json(INTEGRATION / "manifest.json")
    assert set(manifest) >= MANIFEST_REQUIRED
    assert manifest["domain"] == INTEGRATION.name
    keys = list(manifest)
    assert keys[:2] == ["domain", "name"], "hassfest wants domain and name first"
    assert keys[2:] == sorted(keys[2:]), "hassfest wants the other keys sorted"
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    assert manifest["iot_class"] in IOT_CLASSES
    assert manifest["integration_type"] in INTEGRATION_TYPES
    assert manifest["codeowners"]
    assert all(owner.startswith("@") for owner in manifest["codeowners"])
    assert manifest["documentation"].startswith("https://")
    assert manifest["issue_tracker"].startswith("https://")
    assert "grpc" in manifest["loggers"]


@pytest.mark.parametrize(
    "requirement", _json(INTEGRATION / "manifest.json")["requirements"], ids=str
)
def test_requirements_are_pinned(requirement: str) -> None:
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(==|>=)\d+(\.\d+)*", requirement)


def test_imported_libraries_are_declared() -> None:
    """Every third-party library the integration imports is a requirement (or HA's own)."""
    declared = {
        re.split(r"[=>]", req)[0].lower()
        for req in _json(INTEGRATION / "manifest.json")["requirements"]
    }
    import_names = {
        "grpc": "grpcio",
        "google": "protobuf",
        "PIL": "pillow",
        "watchdog": "watchdog",
        "av": "av",
    }
    source = "\n".join(
        path.read_text(encoding="utf-8")
        for path in INTEGRATION.rglob("*.py")
        if "_generated" not in path.parts
    )
    imported = set(re.findall(r"^\s*(?:from|import) ([A-Za-z_]\w*)", source, re.MULTILINE))
    for module, package in import_names.items():
        if module in imported:
            assert package in declared, module


@pytest.mark.parametrize(("name", "size"), BRAND_SIZES.items())
def test_brand_icons(name: str, size: tuple[int, int]) -> None:
    with Image.open(INTEGRATION / "brand" / name) as image:
        assert image.format == "PNG"
        assert image.size == size
        assert image.mode == "RGBA"  # transparent background


def test_readme_opens_with_the_two_commands_and_shows_real_screenshots() -> None:
    """HACS shows the README as the integration's page: it starts with what a newcomer runs."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    assert readme.index("```bash") < readme.index("\n## ")
    assert [line.split()[0] for line in first_block.splitlines()] == [
        "scripts/demo",
        "scripts/test",
    ]
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert pictures
    # Absolute addresses: HACS shows the README outside the repository.
    raw = "https://raw.githubusercontent.com/home-security-ai/home-security-ai/main/"
    for picture in pictures:
        assert picture.startswith(raw), picture
        assert (REPO / picture.removeprefix(raw)).is_file(), picture


def test_blueprints_are_valid_and_name_their_own_address() -> None:
    """Every blueprint passes Home Assistant's schema, and its source_url is where it lies in
    the repository (re-importing uses it)."""
    blueprints = sorted((REPO / "blueprints").rglob("*.yaml"))
    assert blueprints
    for path in blueprints:
        domain = path.relative_to(REPO / "blueprints").parts[0]
        blueprint = Blueprint(
            load_yaml_dict(str(path)), expected_domain=domain, schema=BLUEPRINT_SCHEMA
        )
        relative = path.relative_to(REPO).as_posix()
        assert blueprint.metadata["source_url"].endswith(f"/blob/main/{relative}")

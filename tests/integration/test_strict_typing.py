"""The quality scale's strict-typing rule holds only while mypy sees gRPC and protobuf typed:
no gRPC module among the ignored imports, the generated stubs followed, and every generated
module with its .pyi."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
GENERATED = (
    ROOT / "gpu_server" / "_generated",
    ROOT / "custom_components" / "home_security_ai" / "client" / "_generated",
)
TYPED_LIBRARIES = ("grpc", "grpc_health", "grpc_reflection", "google")


def _mypy_overrides() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    overrides: list[dict[str, object]] = config["tool"]["mypy"].get("overrides", [])
    return overrides


def _modules(override: dict[str, object]) -> list[str]:
    modules = override["module"]
    if isinstance(modules, str):
        return [modules]
    assert isinstance(modules, list)
    return [str(module) for module in modules]


def test_strict_typing_is_claimed() -> None:
    rules = yaml.safe_load(
        (ROOT / "custom_components" / "home_security_ai" / "quality_scale.yaml").read_text(
            encoding="utf-8"
        )
    )["rules"]
    assert rules["strict-typing"]["status"] == "done"


def test_no_grpc_or_protobuf_import_is_ignored() -> None:
    for override in _mypy_overrides():
        if not override.get("ignore_missing_imports"):
            continue
        for module in _modules(override):
            assert module.split(".")[0] not in TYPED_LIBRARIES, module


def test_generated_stubs_are_followed() -> None:
    """follow_imports = skip would make every generated message and stub Any."""
    for override in _mypy_overrides():
        if any("_generated" in module for module in _modules(override)):
            assert override.get("follow_imports", "normal") == "normal", override


def test_every_generated_module_has_its_stub() -> None:
    for folder in GENERATED:
        modules = sorted(folder.glob("*_pb2*.py"))
        assert modules, folder
        for module in modules:
            assert module.with_suffix(".pyi").is_file(), module

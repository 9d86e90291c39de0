"""Home Assistant's own validator, hassfest, on the integration: manifest, translations,
services, icons, config flow and quality scale as Home Assistant checks them.

hassfest lives in Home Assistant core's source tree (`script/hassfest`), not in the installed
package. The test uses the checkout that `HSAI_HA_CORE_SRC` names; without one it clones core
at the installed release's tag into the user's cache, and skips, saying why, when it cannot.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from homeassistant import const as ha_const

INTEGRATION = Path(__file__).resolve().parents[2] / "custom_components" / "home_security_ai"
HA_VERSION = ha_const.__version__
CORE_REPOSITORY = "https://github.com/home-assistant/core"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "home-security-ai"


def _is_core(path: Path) -> bool:
    return (path / "script" / "hassfest" / "__main__.py").is_file()


def _core_source() -> Path:
    """Return a core checkout to run hassfest from, or skip with the reason."""
    if named := os.environ.get("HSAI_HA_CORE_SRC"):
        path = Path(named)
        if not _is_core(path):
            pytest.fail(f"HSAI_HA_CORE_SRC={named} holds no script/hassfest of Home Assistant core")
        return path
    path = CACHE / f"ha-core-{HA_VERSION}"
    if _is_core(path):
        return path
    if shutil.which("git") is None:
        pytest.skip("hassfest needs Home Assistant core's source: set HSAI_HA_CORE_SRC (no git)")
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["git", "clone", "--quiet", "--depth", "1", "--branch", HA_VERSION,
             CORE_REPOSITORY, str(partial)],
            check=True,
            capture_output=True,
            timeout=600,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        shutil.rmtree(partial, ignore_errors=True)
        detail = err.stderr.decode(errors="replace").strip() if err.stderr else str(err)
        pytest.skip(
            f"hassfest needs Home Assistant core {HA_VERSION}'s source: set HSAI_HA_CORE_SRC to a "
            f"checkout, or allow cloning {CORE_REPOSITORY} ({detail[-300:]})"
        )
    partial.rename(path)
    return path


def _hassfest_root(core: Path, tmp_path: Path) -> Path:
    """A root that holds only what hassfest reads: without core's pyproject.toml, whose ruff
    settings another ruff release may refuse (hassfest formats what it generates with ruff)."""
    root = tmp_path / "core"
    root.mkdir()
    (root / "script").symlink_to(core / "script", target_is_directory=True)
    for name in ("requirements_all.txt", "requirements.txt"):
        if (core / name).is_file():
            (root / name).symlink_to(core / name)
    return root


def test_hassfest_accepts_the_integration(tmp_path: Path) -> None:
    core = _hassfest_root(_core_source(), tmp_path)
    # hassfest formats what it generates with ruff: the one of this environment.
    search_path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    # hassfest names the integration after its folder and writes nothing for a custom one;
    # a copy keeps caches and stray files of the working tree out of its view.
    copy = tmp_path / "custom_components" / INTEGRATION.name
    shutil.copytree(INTEGRATION, copy, ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [sys.executable, "-m", "script.hassfest", "--integration-path", str(copy)],
        cwd=core,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "PATH": search_path},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Invalid integrations" not in output, output

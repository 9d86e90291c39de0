"""The sidecar as a Home Assistant add-on: the add-on's options become the server's settings.

The Supervisor writes the options the user chose in the add-on's page to `/data/options.json`;
`python -m gpu_server.addon` turns them into a configuration file and runs the server with its
data in `/data` (kept across updates and backups). The token is made by the server on first
start and handed to Home Assistant by Supervisor discovery, so nobody types it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

DEFAULT_OPTIONS = Path("/data/options.json")
DEFAULT_DATA_DIR = Path("/data")
_MIB = 1024 * 1024


class AddonOptionsError(ValueError):
    """The options file is missing or unusable."""


def settings_from_options(options: dict[str, Any]) -> dict[str, Any]:
    """The server's configuration for the add-on's options (keys as in config.yaml)."""
    settings: dict[str, Any] = {
        "log_level": str(options.get("log_level", "info")).upper(),
        "models_dir": str(options.get("models_folder", "/share/home_security_ai/models")),
        "tls": {"mode": "auto" if options.get("tls", True) else "off"},
        "discovery": {"zeroconf": bool(options.get("announce_on_network", False))},
    }
    language_model = options.get("language_model", "embedded")
    if language_model == "off":
        settings["llm"] = {"enabled": False}
    elif language_model == "remote":
        url = str(options.get("remote_url") or "")
        model = str(options.get("remote_model") or "")
        if not url or not model:
            raise AddonOptionsError("a remote language model needs remote_url and remote_model")
        remote: dict[str, Any] = {"url": url, "model": model}
        if key := options.get("remote_api_key"):
            remote["api_key"] = str(key)
        settings["llm"] = {"remote": remote}
    limits: dict[str, Any] = {}
    if megabytes := options.get("max_frame_megabytes"):
        limits["max_frame_bytes"] = int(megabytes) * _MIB
    if megabytes := options.get("decode_budget_megabytes"):
        limits["decode_budget_bytes"] = int(megabytes) * _MIB
    if limits:
        settings["limits"] = limits
    return settings


def main(argv: list[str] | None = None) -> int:  # noqa: RET503 - execv does not return
    parser = argparse.ArgumentParser(
        prog="python -m gpu_server.addon", description="Run the sidecar as a Home Assistant add-on."
    )
    parser.add_argument("--options", type=Path, default=DEFAULT_OPTIONS)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--port", type=int, default=50051)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args(argv)
    try:
        options = json.loads(args.options.read_text(encoding="utf-8"))
        if not isinstance(options, dict):
            raise AddonOptionsError(f"{args.options} does not hold an object")
        settings = settings_from_options(options)
    except (OSError, ValueError) as exc:
        print(f"gpu_server.addon: {exc}", file=sys.stderr)
        return 2
    settings["data_dir"] = str(args.data_dir)
    config_file = args.data_dir / "server.yaml"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(yaml.safe_dump(settings), encoding="utf-8")
    os.chmod(config_file, 0o600)  # it may hold the remote model's API key
    command = [sys.executable, "-m", "gpu_server", "--config", str(config_file)]
    command += ["--port", str(args.port)]
    if args.ready_file is not None:
        command += ["--ready-file", str(args.ready_file)]
    # The server replaces this process: the Supervisor's stop signal reaches it directly.
    os.execv(sys.executable, command)  # noqa: S606 - our own interpreter and module


if __name__ == "__main__":
    sys.exit(main())

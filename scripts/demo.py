"""Run the sidecar and a real Home Assistant watching a sample camera upload folder.

Called by `scripts/demo` once both environments exist. Everything it creates lives in `.demo/`,
which is rebuilt on every run so the demo always starts from the same state.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / ".demo"
DOMAIN = "home_security_ai"
USERNAME = "demo"
STARTUP_TIMEOUT_S = 180.0
DETECTION_TIMEOUT_S = 300.0

HA_CONFIGURATION = """\
homeassistant:
  name: Home Security AI demo
  unit_system: metric
  time_zone: UTC
  latitude: 0
  longitude: 0
  elevation: 0
  allowlist_external_dirs:
    - "{uploads}"
  media_dirs:
    local: "{media}"
frontend:
config:
http:
  server_host: 127.0.0.1
  server_port: {port}
recorder:
history:
logbook:
logger:
  default: warning
  logs:
    custom_components.{domain}: info
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Processes the demo started, by name; a wait fails at once when one of them has died.
WATCHED: dict[str, subprocess.Popen[bytes]] = {}
LOG_TAIL_LINES = 15


def log_tail(name: str, lines: int = LOG_TAIL_LINES) -> str:
    text = (DEMO_DIR / f"{name}.log").read_text(encoding="utf-8", errors="replace")
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def check_alive() -> None:
    """Stop the demo, saying why, when a process it started has died."""
    for name, proc in WATCHED.items():
        code = proc.poll()
        if code is not None:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            raise SystemExit(
                f"demo: the {name} {how}. The last lines of {DEMO_DIR}/{name}.log:\n"
                f"{log_tail(name)}"
            )


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 1.0) -> Any:
    """Poll `predicate` until it returns something truthy, or fail saying what we waited for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_alive()
        with contextlib.suppress(OSError, urllib.error.URLError, ValueError, KeyError):
            if result := predicate():
                return result
        time.sleep(min(interval, 0.25) if time.monotonic() + interval > deadline else interval)
    raise SystemExit(
        f"demo: gave up waiting for {what} after {timeout:.0f} s (see {DEMO_DIR}/*.log)"
    )


class HomeAssistantApi:
    """The few REST calls the demo needs: onboarding, a config flow, states."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.client_id = f"{base_url}/"
        self.access_token = ""

    def request(self, method: str, path: str, body: Any = None, *, form: bool = False) -> Any:
        headers = {"Authorization": f"Bearer {self.access_token}"} if self.access_token else {}
        data = None
        if body is not None and form:
            data = urllib.parse.urlencode(body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base_url + path, data, headers, method=method)
        with urllib.request.urlopen(req, timeout=30) as response:
            payload = response.read()
            is_json = response.headers.get_content_type() == "application/json"
        return json.loads(payload) if payload and is_json else payload.decode()

    def onboard(self, password: str) -> None:
        user = self.request(
            "POST",
            "/api/onboarding/users",
            {
                "client_id": self.client_id,
                "name": "Demo",
                "username": USERNAME,
                "password": password,
                "language": "en",
            },
        )
        token = self.request(
            "POST",
            "/auth/token",
            {
                "grant_type": "authorization_code",
                "code": user["auth_code"],
                "client_id": self.client_id,
            },
            form=True,
        )
        self.access_token = token["access_token"]
        self.request("POST", "/api/onboarding/core_config", {})
        self.request("POST", "/api/onboarding/analytics", {})
        self.request(
            "POST",
            "/api/onboarding/integration",
            {"client_id": self.client_id, "redirect_uri": f"{self.client_id}?auth_callback=1"},
        )

    def run_flow(self, start_path: str, handler: str, answers: list[dict[str, Any]]) -> Any:
        """Start a (config or options) flow and answer its forms in order."""
        result = self.request("POST", start_path, {"handler": handler})
        for answer in answers:
            if result.get("type") != "form":
                break
            result = self.request("POST", f"{start_path}/{result['flow_id']}", answer)
        if result.get("type") not in ("create_entry",):
            raise SystemExit(f"demo: the {handler} flow did not finish: {result}")
        return result

    def integration_states(self) -> list[dict[str, Any]]:
        entity_ids = self.request(
            "POST",
            "/api/template",
            {"template": f"{{{{ integration_entities('{DOMAIN}') | join(',') }}}}"},
        )
        wanted = set(entity_ids.split(","))
        return [s for s in self.request("GET", "/api/states") if s["entity_id"] in wanted]


@contextlib.contextmanager
def process(name: str, argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    log = (DEMO_DIR / f"{name}.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=DEMO_DIR)
    WATCHED[name] = proc
    try:
        yield proc
    finally:
        WATCHED.pop(name, None)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def prepare() -> tuple[Path, Path]:
    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    uploads = DEMO_DIR / "uploads"
    shutil.copytree(REPO_ROOT / "samples" / "uploads", uploads)
    (DEMO_DIR / "media").mkdir()
    config = DEMO_DIR / "config"
    (config / "custom_components").mkdir(parents=True)
    (config / "custom_components" / DOMAIN).symlink_to(REPO_ROOT / "custom_components" / DOMAIN)
    return uploads, config


STANDARD_ATTRIBUTES = {
    "friendly_name", "unit_of_measurement", "icon", "device_class", "state_class",
    "access_token", "entity_picture", "supported_features", "brand", "model_name",
    "frontend_stream_type", "options",
}  # fmt: skip


def report(states: list[dict[str, Any]]) -> None:
    print("\nWhat Home Assistant shows:")
    for state in sorted(states, key=lambda s: s["entity_id"]):
        name = state["attributes"].get("friendly_name", state["entity_id"])
        unit = state["attributes"].get("unit_of_measurement", "")
        extra = {k: v for k, v in state["attributes"].items() if k not in STANDARD_ATTRIBUTES}
        print(f"  {name:<45} {state['state']} {unit} {json.dumps(extra) if extra else ''}".rstrip())


def report_language_model(model: dict[str, str]) -> None:
    """Say at once whether the language model runs; without it the rules assess events."""
    if model.get("state") == "ready":
        print(f"Language model {model.get('model')} is ready in its own process.")
    else:
        print(
            f"demo: the language model is not running ({model.get('state', 'unknown')}: "
            f"{model.get('reason') or 'no reason given'}); the rules assess the events.\n"
            f"The last lines of {DEMO_DIR}/sidecar.log:\n{log_tail('sidecar')}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sidecar-python", required=True)
    parser.add_argument("--hass", required=True)
    parser.add_argument(
        "--exit-after-report", action="store_true", help="stop once detections are shown"
    )
    args = parser.parse_args()

    uploads, config = prepare()
    token = secrets.token_urlsafe(24)
    password = secrets.token_urlsafe(9)
    ha_port = int(os.environ.get("HSAI_DEMO_HA_PORT", free_port()))
    (config / "configuration.yaml").write_text(
        HA_CONFIGURATION.format(
            uploads=uploads, media=DEMO_DIR / "media", port=ha_port, domain=DOMAIN
        )
    )
    sidecar_env = {
        **os.environ,
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "0",
        "YOLO_CONFIG_DIR": str(DEMO_DIR / "ultralytics"),
        "PYTHONPATH": str(REPO_ROOT),
        # Short batch windows so the demo's events show up within seconds.
        "HSAI_BATCH_WINDOW_S": os.environ.get("HSAI_BATCH_WINDOW_S", "20"),
        "HSAI_BATCH_IDLE_S": os.environ.get("HSAI_BATCH_IDLE_S", "5"),
    }
    ready_file = DEMO_DIR / "sidecar-ready.json"
    sidecar_argv = [
        args.sidecar_python, "-m", "gpu_server", "--host", "127.0.0.1", "--port", "0",
        "--token", token, "--models-dir", str(REPO_ROOT / "models"),
        "--data-dir", str(DEMO_DIR / "sidecar"), "--ready-file", str(ready_file),
    ]  # fmt: skip
    print(
        f"Starting the sidecar and Home Assistant (logs in {DEMO_DIR.relative_to(REPO_ROOT)}/)..."
    )
    with (
        process("sidecar", sidecar_argv, sidecar_env),
        process("homeassistant", [args.hass, "-c", str(config), "--skip-pip"], dict(os.environ)),
    ):
        ready = wait_for(
            lambda: json.loads(ready_file.read_text()), STARTUP_TIMEOUT_S, "the sidecar", 0.25
        )
        report_language_model(ready.get("language_model", {}))
        api = HomeAssistantApi(f"http://127.0.0.1:{ha_port}")
        wait_for(
            lambda: api.request("GET", "/api/onboarding") is not None,
            STARTUP_TIMEOUT_S,
            "Home Assistant",
        )
        api.onboard(password)
        entry = api.run_flow(
            "/api/config/config_entries/flow",
            DOMAIN,
            [{"host": "127.0.0.1", "port": ready["port"], "token": token}],
        )
        api.run_flow(
            "/api/config/config_entries/options/flow",
            entry["result"]["entry_id"],
            [{"cameras": [], "snapshot_interval": 0, "upload_folders": [str(uploads)]}],
        )

        def cameras_seen() -> list[dict[str, Any]] | None:
            """Every camera analysed, and a security event for each one where something was seen."""
            states = api.integration_states()
            by_id = {s["entity_id"]: s for s in states}
            objects = [s for s in states if s["entity_id"].endswith("_objects")]
            if len(objects) < 2 or not all(s["state"].isdigit() for s in objects):
                return None
            for state in objects:
                camera = state["entity_id"].removeprefix("sensor.").removesuffix("_objects")
                event = by_id.get(f"event.{camera}_security_event", {})
                if int(state["state"]) and not event.get("attributes", {}).get("event_type"):
                    return None
            return states

        report(wait_for(cameras_seen, DETECTION_TIMEOUT_S, "events from the sample cameras", 2.0))
        print(
            f"\nHome Assistant: http://127.0.0.1:{ha_port}  user: {USERNAME}  password: {password}"
        )
        print(f"Drop more photos into {uploads}/<Camera Name>/ to watch them appear.")
        if args.exit_after_report:
            return
        print("Ctrl-C stops the demo.")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                check_alive()
                time.sleep(1)
    sys.exit(0)


if __name__ == "__main__":
    main()

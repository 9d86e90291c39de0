"""Run the sidecar and a real Home Assistant, with its user interface, watching sample cameras.

Called by `scripts/demo` once both environments exist. Everything it creates lives in `.demo/`,
which is rebuilt on every run so the demo always starts from the same state. The browser tests
start the same stack from this module, in a folder of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DOMAIN = "home_security_ai"
USERNAME = "demo"
STARTUP_TIMEOUT_S = 180.0
DETECTION_TIMEOUT_S = 300.0
LOG_TAIL_LINES = 15
# How long Home Assistant and the sidecar get to stop on SIGTERM before they are killed.
STOP_GRACE_S = 30.0
# Besides Ctrl-C: a service manager's stop, a closed terminal.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

# Only what the demo needs: `default_config` would also load integrations that need the
# internet (text-to-speech, radio, weather) and fail to set up offline.
HA_CONFIGURATION = """\
homeassistant:
  name: Home Security AI demo
  unit_system: metric
  time_zone: UTC
  country: GB
  latitude: 0
  longitude: 0
  elevation: 0
  allowlist_external_dirs:
    - "{uploads}"
  media_dirs:
    local: "{media}"
frontend:
config:
api:
http:
  server_host: 127.0.0.1
  server_port: {port}
lovelace:
automation: !include automations.yaml
media_source:
recorder:
history:
logbook:
logger:
  default: warning
  logs:
    custom_components.{domain}: info
"""

# Onboarding's other steps would add integrations that need the internet; the demo creates the
# user through the API and marks the rest done, as a user clicking through them would.
ONBOARDING_DONE = {
    "version": 4,
    "minor_version": 1,
    "key": "onboarding",
    "data": {"done": ["core_config", "analytics", "integration"]},
}

# Home Assistant logs these when an integration does not set up.
SETUP_FAILURE = re.compile(r"Setup failed for|Error setting up entry|Unable to prepare setup")

# The order of a camera's values on the dashboard, by the end of their unique ids.
CAMERA_VALUES = (
    "objects",
    "last_risk_score",
    "last_summary",
    "events_today",
    "security_event",
    "threat_active",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StopSignal(BaseException):
    """A stop signal arrived (SIGTERM, SIGHUP): the demo stops as on Ctrl-C. A BaseException,
    like KeyboardInterrupt, so that no `except Exception` swallows it."""


def stop_on_signals() -> None:
    """Make SIGTERM and SIGHUP raise StopSignal in the main thread, as Ctrl-C raises
    KeyboardInterrupt, so that `stopping` takes the stack down."""

    def stop(signum: int, _frame: object) -> None:
        raise StopSignal(signal.Signals(signum).name)

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """Keep a second Ctrl-C or SIGTERM from interrupting the clean-up half way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stops = (signal.SIGINT, *STOP_SIGNALS)
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in stops}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _signal_group(proc: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    # Each process leads a group of its own: its children (the language model's server,
    # Home Assistant's helpers) get the signal too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)


class Stack:
    """The processes of one demo (sidecar, Home Assistant) and the folder they work in."""

    def __init__(self, workdir: Path, *, grace_s: float = STOP_GRACE_S) -> None:
        self.workdir = workdir
        self.grace_s = grace_s
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.argv: dict[str, list[str]] = {}
        self.env: dict[str, dict[str, str]] = {}

    # Processes ---------------------------------------------------------------------------
    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def log_tail(self, name: str, lines: int = LOG_TAIL_LINES) -> str:
        text = self.log_path(name).read_text(encoding="utf-8", errors="replace")
        return "\n".join("    " + line for line in text.splitlines()[-lines:])

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.argv[name], self.env[name] = argv, env
        with self.log_path(name).open("ab") as log:
            # A session of its own: a terminal's Ctrl-C or hang-up reaches the demo alone,
            # which then stops the whole group in order.
            self.processes[name] = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir,
                start_new_session=True,
            )

    def died(self, name: str) -> str | None:
        """Say how a process ended, or None while it runs."""
        code = self.processes[name].poll()
        if code is None:
            return None
        return f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"

    def check_alive(self) -> None:
        """Stop, saying why, when a process of the stack has died."""
        for name in self.processes:
            if how := self.died(name):
                raise SystemExit(
                    f"demo: the {name} {how}. The last lines of {self.log_path(name)}:\n"
                    f"{self.log_tail(name)}"
                )

    def stop(self) -> None:
        """SIGTERM to every process group (Home Assistant first), SIGKILL to whatever is left
        of them after the grace period."""
        with _signals_ignored():
            procs = list(reversed(self.processes.values()))
            for proc in procs:
                _signal_group(proc, signal.SIGTERM)
            deadline = time.monotonic() + self.grace_s
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            for proc in procs:
                # Also children that outlived their parent in its group.
                _signal_group(proc, signal.SIGKILL)
                proc.wait()

    def wait_for(self, predicate: Any, timeout: float, what: str, interval: float = 1.0) -> Any:
        """Poll `predicate` until it returns something truthy, or fail saying what we waited for."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError, KeyError):
                if result := predicate():
                    return result
            time.sleep(min(interval, 0.25) if time.monotonic() + interval > deadline else interval)
        raise SystemExit(
            f"demo: gave up waiting for {what} after {timeout:.0f} s (see {self.workdir}/*.log)"
        )

    # The sidecar -----------------------------------------------------------------------------
    @property
    def ready_file(self) -> Path:
        return self.workdir / "sidecar-ready.json"

    def start_sidecar(
        self, python: str, token: str, *, port: int = 0, env: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Start the sidecar and wait until it listens; return what it announced."""
        self.ready_file.unlink(missing_ok=True)
        sidecar_env = {
            **os.environ,
            "YOLO_OFFLINE": "1",
            "YOLO_AUTOINSTALL": "0",
            "YOLO_CONFIG_DIR": str(self.workdir / "ultralytics"),
            "PYTHONPATH": str(REPO_ROOT),
            # Short batch windows so the demo's events show up within seconds.
            "HSAI_BATCH_WINDOW_S": os.environ.get("HSAI_BATCH_WINDOW_S", "20"),
            "HSAI_BATCH_IDLE_S": os.environ.get("HSAI_BATCH_IDLE_S", "5"),
            **(env or {}),
            # In the environment: a command line is visible to every local user.
            "HSAI_TOKEN": token,
        }
        sidecar_env.pop("VIRTUAL_ENV", None)
        argv = [
            python, "-m", "gpu_server", "--host", "127.0.0.1", "--port", str(port),
            "--models-dir", str(REPO_ROOT / "models"),
            "--data-dir", str(self.workdir / "sidecar"), "--ready-file", str(self.ready_file),
        ]  # fmt: skip
        self.start("sidecar", argv, sidecar_env)
        return dict(
            self.wait_for(
                lambda: json.loads(self.ready_file.read_text()),
                STARTUP_TIMEOUT_S,
                "the sidecar",
                0.25,
            )
        )

    def restart_sidecar(self, port: int) -> dict[str, Any]:
        """Start the sidecar again as before, on the port Home Assistant knows."""
        argv = list(self.argv["sidecar"])
        argv[argv.index("--port") + 1] = str(port)
        env = self.env["sidecar"]
        return self.start_sidecar(argv[0], env["HSAI_TOKEN"], port=port, env=env)

    # Home Assistant --------------------------------------------------------------------------
    def prepare_home_assistant(self, uploads: Path, port: int) -> Path:
        """Write a configuration, the integration (linked) and the onboarding state."""
        config = self.workdir / "config"
        (config / "custom_components").mkdir(parents=True, exist_ok=True)
        (config / "custom_components" / DOMAIN).symlink_to(REPO_ROOT / "custom_components" / DOMAIN)
        # The notification blueprint, as if imported: ready under Automations → Blueprints.
        # Copied: Home Assistant does not look into linked folders for blueprints.
        shutil.copytree(
            REPO_ROOT / "blueprints" / "automation" / DOMAIN,
            config / "blueprints" / "automation" / DOMAIN,
        )
        (config / "automations.yaml").write_text("[]\n")
        media = self.workdir / "media"
        media.mkdir(exist_ok=True)
        (config / "configuration.yaml").write_text(
            HA_CONFIGURATION.format(uploads=uploads, media=media, port=port, domain=DOMAIN)
        )
        (config / ".storage").mkdir(exist_ok=True)
        (config / ".storage" / "onboarding").write_text(json.dumps(ONBOARDING_DONE))
        return config

    def start_home_assistant(self, hass: str, config: Path, port: int) -> HomeAssistantApi:
        self.start("homeassistant", [hass, "-c", str(config), "--skip-pip"], dict(os.environ))
        api = HomeAssistantApi(f"http://127.0.0.1:{port}")
        self.wait_for(
            lambda: api.request("GET", "/api/onboarding") is not None,
            STARTUP_TIMEOUT_S,
            "Home Assistant",
        )
        return api

    def setup_failures(self) -> list[str]:
        """Return Home Assistant's log lines about integrations that did not set up."""
        text = self.log_path("homeassistant").read_text(encoding="utf-8", errors="replace")
        return [line for line in text.splitlines() if SETUP_FAILURE.search(line)]


class HomeAssistantApi:
    """The few REST and websocket calls the demo needs: onboarding, flows, states, dashboard."""

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
        """Create the owner; the other onboarding steps are marked done in advance."""
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

    def run_flow(self, start_path: str, handler: str, answers: list[dict[str, Any]]) -> Any:
        """Start a (config or options) flow and answer its forms in order."""
        result = self.request("POST", start_path, {"handler": handler})
        for answer in answers:
            if result.get("type") not in ("form", "menu"):
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

    def add_entry(self, ready: dict[str, Any], token: str) -> Any:
        """Add the integration as a user would: host, port and token, then check the
        certificate's fingerprint against the one the sidecar announced before trusting it."""
        start_path = "/api/config/config_entries/flow"
        result = self.request("POST", start_path, {"handler": DOMAIN})
        answer = {"host": "127.0.0.1", "port": ready["port"], "token": token}
        result = self.request("POST", f"{start_path}/{result['flow_id']}", answer)
        if result.get("step_id") == "tls_confirm":
            shown = result.get("description_placeholders", {}).get("fingerprint")
            if shown != ready.get("tls_fingerprint"):
                raise SystemExit(
                    f"demo: the certificate's fingerprint {shown} is not the sidecar's "
                    f"{ready.get('tls_fingerprint')}"
                )
            confirm = {"fingerprint_matches": True}
            result = self.request("POST", f"{start_path}/{result['flow_id']}", confirm)
        if result.get("type") != "create_entry":
            raise SystemExit(f"demo: the {DOMAIN} flow did not finish: {result}")
        return result

    def websocket(self, *commands: dict[str, Any]) -> list[Any]:
        """Send commands over the websocket API; return their results in order."""
        # Imported here: the stack's process handling is also used where aiohttp is missing.
        import aiohttp  # noqa: PLC0415

        async def run() -> list[Any]:
            results = []
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(self.base_url + "/api/websocket") as ws,
            ):
                await ws.receive_json()  # auth_required
                await ws.send_json({"type": "auth", "access_token": self.access_token})
                if (await ws.receive_json())["type"] != "auth_ok":
                    raise SystemExit("demo: Home Assistant refused the websocket login")
                for number, command in enumerate(commands, 1):
                    await ws.send_json({"id": number, **command})
                    reply = await ws.receive_json()
                    if not reply.get("success"):
                        raise SystemExit(f"demo: {command['type']} failed: {reply}")
                    results.append(reply.get("result"))
            return results

        # In a thread of its own: the caller may run an event loop (Playwright's sync API does).
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(lambda: asyncio.run(run())).result()

    def create_dashboard(self, entry_id: str) -> dict[str, Any]:
        """Make the default dashboard show the server and every camera of the entry."""
        devices, entities = self.websocket(
            {"type": "config/device_registry/list"}, {"type": "config/entity_registry/list"}
        )
        names = {
            state["entity_id"]: state["attributes"].get("friendly_name", "")
            for state in self.request("GET", "/api/states")
        }
        config = dashboard_config(entry_id, devices, entities, names)
        self.websocket({"type": "lovelace/config/save", "config": config})
        return config


def _value_order(entity: dict[str, Any]) -> int:
    unique_id = str(entity.get("unique_id", ""))
    for number, key in enumerate(CAMERA_VALUES):
        if unique_id.endswith(f"_{key}"):
            return number
    return len(CAMERA_VALUES)


def dashboard_config(
    entry_id: str,
    devices: list[dict[str, Any]],
    entities: list[dict[str, Any]],
    names: dict[str, str],
) -> dict[str, Any]:
    """One card per camera (its annotated frame and values), then one for the server.

    Rows drop the device's name from the entity's (the card's title says it already).
    """
    ours = [
        entity
        for entity in entities
        if entity.get("config_entry_id") == entry_id and not entity.get("disabled_by")
    ]
    cameras: list[dict[str, Any]] = []
    server: list[dict[str, Any]] = []
    for device in sorted(devices, key=lambda d: d.get("name_by_user") or d.get("name") or ""):
        if entry_id not in device.get("config_entries", []):
            continue
        name = device.get("name_by_user") or device.get("name")
        members = sorted((e for e in ours if e.get("device_id") == device["id"]), key=_value_order)
        picture = [e for e in members if e["entity_id"].startswith("camera.")]
        # A summary is a sentence: it gets a card of its own, under the picture.
        summary = [e["entity_id"] for e in members if e["unique_id"].endswith("_last_summary")]
        rows = [
            {"entity": e["entity_id"], "name": _short_name(names.get(e["entity_id"], ""), name)}
            for e in members
            if not e["entity_id"].startswith("camera.") and e["entity_id"] not in summary
        ]
        if not picture:
            server.append({"type": "entities", "title": name, "entities": rows})
            continue
        cards: list[dict[str, Any]] = [
            {"type": "picture-entity", "entity": picture[0]["entity_id"], "show_state": False}
        ]
        cards.extend(
            {"type": "markdown", "content": f"**Last event:** {{{{ states('{entity_id}') }}}}"}
            for entity_id in summary
        )
        cards.append({"type": "entities", "title": name, "entities": rows})
        cameras.append({"type": "vertical-stack", "cards": cards})
    return {
        "title": "Home Security AI",
        "views": [{"title": "Cameras", "path": "cameras", "cards": cameras + server}],
    }


def _short_name(friendly_name: str, device_name: str | None) -> str:
    short = friendly_name.removeprefix(device_name or "").strip()
    return short[:1].upper() + short[1:] if short else friendly_name


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


def report_language_model(stack: Stack, model: dict[str, str]) -> None:
    """Say at once whether the language model runs; without it the rules assess events."""
    if model.get("state") == "ready":
        print(f"Language model {model.get('model')} is ready in its own process.")
    elif model.get("authority") == "off":
        # Not a failure: the model measured too weak to be worth waiting for.
        print(f"Language model: {model.get('reason')}; the rules assess the events.")
    else:
        print(
            f"demo: the language model is not running ({model.get('state', 'unknown')}: "
            f"{model.get('reason') or 'no reason given'}); the rules assess the events.\n"
            f"The last lines of {stack.log_path('sidecar')}:\n{stack.log_tail('sidecar')}"
        )


def cameras_seen(api: HomeAssistantApi) -> list[dict[str, Any]] | None:
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


def supervise(stack: Stack, sidecar_port: int) -> None:
    """Run until Ctrl-C, restarting the sidecar when it dies, as a service manager would."""
    while True:
        if how := stack.died("sidecar"):
            print(
                f"\ndemo: the sidecar {how}; restarting it. The last lines of its log:\n"
                f"{stack.log_tail('sidecar')}",
                flush=True,
            )
            stack.restart_sidecar(sidecar_port)
            print("demo: the sidecar is running again; Home Assistant reconnects by itself.")
        if how := stack.died("homeassistant"):
            raise SystemExit(
                f"demo: Home Assistant {how}. The last lines of "
                f"{stack.log_path('homeassistant')}:\n{stack.log_tail('homeassistant')}"
            )
        time.sleep(1)


@contextlib.contextmanager
def stopping(stack: Stack) -> Iterator[None]:
    """Whatever ends the block (its end, Ctrl-C, SIGTERM, SIGHUP, an error), stop the stack;
    a stop asked for is no error."""
    try:
        yield
    except (KeyboardInterrupt, StopSignal) as stop:
        print(f"\ndemo: stopping ({str(stop) or 'Ctrl-C'})", flush=True)
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sidecar-python", required=True)
    parser.add_argument("--hass", required=True)
    parser.add_argument(
        "--exit-after-report", action="store_true", help="stop once detections are shown"
    )
    args = parser.parse_args()

    workdir = REPO_ROOT / ".demo"
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir()
    uploads = workdir / "uploads"
    # Copied as a camera would upload them now: a file's time is when its frame was taken.
    shutil.copytree(REPO_ROOT / "samples" / "uploads", uploads, copy_function=shutil.copy)
    token = secrets.token_urlsafe(24)
    password = secrets.token_urlsafe(9)
    ha_port = int(os.environ.get("HSAI_DEMO_HA_PORT", free_port()))
    stack = Stack(workdir)
    config = stack.prepare_home_assistant(uploads, ha_port)
    print(f"Starting the sidecar and Home Assistant (logs in {workdir.relative_to(REPO_ROOT)}/)...")
    stop_on_signals()
    with stopping(stack):
        ready = stack.start_sidecar(args.sidecar_python, token)
        report_language_model(stack, ready.get("language_model", {}))
        api = stack.start_home_assistant(args.hass, config, ha_port)
        api.onboard(password)
        entry = api.add_entry(ready, token)
        entry_id = entry["result"]["entry_id"]
        api.run_flow(
            "/api/config/config_entries/options/flow",
            entry_id,
            [
                {"next_step_id": "sources"},
                {"cameras": [], "snapshot_interval": 0, "upload_folders": [str(uploads)]},
            ],
        )
        states = stack.wait_for(
            lambda: cameras_seen(api), DETECTION_TIMEOUT_S, "events from the sample cameras", 2.0
        )
        report(states)
        api.create_dashboard(entry_id)
        if failures := stack.setup_failures():
            raise SystemExit("demo: some integrations did not set up:\n" + "\n".join(failures[:10]))
        print(
            f"\nOpen http://127.0.0.1:{ha_port} and log in as {USERNAME}, password {password}:"
            " the dashboard shows each camera and the server."
        )
        print(f"Drop more photos into {uploads}/<Camera Name>/ to watch them appear.")
        if args.exit_after_report:
            return
        print("Ctrl-C stops the demo.", flush=True)
        supervise(stack, int(ready["port"]))
    sys.exit(0)


if __name__ == "__main__":
    main()

"""The sidecar tells Home Assistant where it is: zeroconf on loopback, Supervisor discovery.

A real `python -m gpu_server` runs in a subprocess. Zeroconf is browsed for real on loopback;
the Supervisor cannot run here, so a small HTTP server speaks the two calls of its discovery API
that an add-on makes (POST /discovery, DELETE /discovery/<uuid>).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from test_sidecar_cli import clean_env, wait_for_file
from testlib.fake_supervisor import DISCOVERY_UUID, FakeSupervisor
from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from gpu_server.announce import SUPERVISOR_SERVICE, ZEROCONF_TYPE

TOKEN = "announce-token-0123456789"


def start_sidecar(
    tmp_path: Path, config: dict[str, Any], env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], dict[str, object]]:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(json.dumps(config))  # JSON is YAML
    ready = tmp_path / "ready.json"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gpu_server", "--config", str(config_file),
            "--host", "127.0.0.1", "--port", "0", "--models-dir", str(tmp_path / "models"),
            "--data-dir", str(tmp_path / "data"), "--ready-file", str(ready),
        ],
        cwd=tmp_path,
        env={**clean_env(), "HSAI_TOKEN": TOKEN, "HSAI_TLS": "auto", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return process, wait_for_file(ready, process)


def stop_sidecar(process: subprocess.Popen[bytes]) -> str:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()
    return err.decode()


async def browse(server_id: object, timeout_s: float = 20.0) -> AsyncServiceInfo | None:
    """The sidecar with this id announced on loopback, resolved; None when it does not show up.

    Other sidecars on this machine may be announcing too: they are ignored.
    """
    zeroconf = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    found: asyncio.Queue[str] = asyncio.Queue()

    def on_change(
        zeroconf: Any, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is not ServiceStateChange.Removed:
            found.put_nowait(name)

    browser = AsyncServiceBrowser(zeroconf.zeroconf, ZEROCONF_TYPE, handlers=[on_change])
    deadline = asyncio.get_running_loop().time() + timeout_s
    try:
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                name = await asyncio.wait_for(found.get(), left)
            except TimeoutError:
                return None
            info = AsyncServiceInfo(ZEROCONF_TYPE, name)
            if await info.async_request(zeroconf.zeroconf, 3000) and info.properties.get(
                b"id"
            ) == str(server_id).encode():
                return info
        return None
    finally:
        await browser.async_cancel()
        await zeroconf.async_close()


def test_zeroconf_announces_address_and_fingerprint_but_no_token(tmp_path: Path) -> None:
    process, ready = start_sidecar(tmp_path, {"discovery": {"supervisor": False}})
    try:
        info = asyncio.run(browse(ready["server_id"]))
        assert info is not None, "the sidecar was not announced on loopback"
        assert info.port == ready["port"]
        assert info.parsed_addresses() == ["127.0.0.1"]
        properties = {
            key.decode(): (value or b"").decode() for key, value in info.properties.items()
        }
        assert properties["id"] == ready["server_id"]
        assert properties["fp"] == ready["tls_fingerprint"]
        assert properties["tls"] == "1"
        # Anyone on the network reads announcements: the token is never among them.
        assert TOKEN not in repr(info.properties)
    finally:
        log = stop_sidecar(process)
    assert "announced as" in log


def test_zeroconf_can_be_turned_off(tmp_path: Path) -> None:
    config = {"discovery": {"zeroconf": False, "supervisor": False}}
    process, ready = start_sidecar(tmp_path, config)
    try:
        assert asyncio.run(browse(ready["server_id"], timeout_s=3.0)) is None
    finally:
        stop_sidecar(process)


def test_supervisor_discovery_hands_over_address_token_and_fingerprint(
    tmp_path: Path, supervisor: str
) -> None:
    config = {
        "discovery": {
            "zeroconf": False,
            "supervisor_url": supervisor,
            "advertised_host": "local-home-security-ai",
        }
    }
    process, ready = start_sidecar(tmp_path, config, {"SUPERVISOR_TOKEN": "supervisor-secret"})
    try:
        for _ in range(200):
            if FakeSupervisor.calls:
                break
            asyncio.run(asyncio.sleep(0.05))
        assert FakeSupervisor.calls, "the add-on did not announce itself to the Supervisor"
        method, path, authorization, body = FakeSupervisor.calls[0]
        assert (method, path, authorization) == ("POST", "/discovery", "Bearer supervisor-secret")
        assert body == {
            "service": SUPERVISOR_SERVICE,
            "config": {
                "host": "local-home-security-ai",
                "port": ready["port"],
                "token": TOKEN,
                "server_id": ready["server_id"],
                "tls_fingerprint": ready["tls_fingerprint"],
            },
        }
    finally:
        stop_sidecar(process)
    # Stopped, the add-on withdraws its discovery.
    assert FakeSupervisor.calls[-1][:2] == ("DELETE", f"/discovery/{DISCOVERY_UUID}")


def test_no_supervisor_outside_an_add_on(tmp_path: Path, supervisor: str) -> None:
    """Without SUPERVISOR_TOKEN (not an add-on) nothing is sent, whatever the setting."""
    config = {"discovery": {"zeroconf": False, "supervisor_url": supervisor}}
    process, _ = start_sidecar(tmp_path, config)
    stop_sidecar(process)
    assert FakeSupervisor.calls == []


def test_unreachable_supervisor_does_not_stop_the_server(tmp_path: Path) -> None:
    config = {"discovery": {"zeroconf": False, "supervisor_url": "http://127.0.0.1:9"}}
    process, ready = start_sidecar(tmp_path, config, {"SUPERVISOR_TOKEN": "supervisor-secret"})
    assert ready["port"]
    log = stop_sidecar(process)
    assert "Supervisor discovery failed" in log

"""The two calls of the Supervisor's discovery API that an add-on makes (POST /discovery,
DELETE /discovery/<uuid>), recorded: the Supervisor itself cannot run here."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

DISCOVERY_UUID = "5b1cf4f1-0000-4000-8000-00000000cafe"


class FakeSupervisor(BaseHTTPRequestHandler):
    """The discovery endpoints of the Supervisor's API, recording what the add-on sent."""

    calls: ClassVar[list[tuple[str, str, str, dict[str, Any]]]] = []

    def _record(self, body: dict[str, Any]) -> None:
        self.calls.append((self.command, self.path, self.headers["Authorization"], body))

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self._record(json.loads(self.rfile.read(length)))
        payload = json.dumps({"result": "ok", "data": {"uuid": DISCOVERY_UUID}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_DELETE(self) -> None:
        self._record({})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving() -> Iterator[str]:
    """A fake Supervisor on loopback, its calls cleared; yields its URL."""
    FakeSupervisor.calls = []
    server = HTTPServer(("127.0.0.1", 0), FakeSupervisor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

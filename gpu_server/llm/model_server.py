"""The local model server: llama-cpp-python's OpenAI-compatible server in a child process.

llama.cpp is native code; a crash inside it (a bad kernel on an unusual CPU, a corrupt model,
running out of memory) must not take detection and event delivery down with it. So the sidecar
never loads a model itself: it starts this server on loopback, waits until it answers, and
starts it again with a growing backoff whenever it dies. The port and an API key are fresh for
each start; the key reaches the child through a file only the sidecar's user can read, not its
command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import httpx

from gpu_server.config import LlmSettings
from gpu_server.files import atomic_write

_LOGGER = logging.getLogger(__name__)

_READY_POLL_S: Final = 0.2
_LOG_TAIL_LINES: Final = 40
_STOP_GRACE_S: Final = 5.0
# A server that stayed up this long before dying starts over with the shortest backoff.
_STABLE_AFTER_S: Final = 60.0


# The child runs llama-cpp-python's server, but first asks Linux to kill it when the sidecar
# dies, so a sidecar killed with SIGKILL leaves no model server holding memory behind.
_CHILD_PROGRAM: Final = """
import ctypes, os, runpy, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except (AttributeError, OSError):
    pass
if os.getppid() != int(os.environ.get("HSAI_PARENT_PID", os.getppid())):
    sys.exit("the sidecar that started this model server is gone")
sys.argv = ["llama_cpp.server", *sys.argv[1:]]
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


class ServerState(enum.StrEnum):
    STOPPED = "stopped"
    LOADING = "loading"
    READY = "ready"
    RESTARTING = "restarting"
    FAILED = "failed"  # it exited or timed out before it was ever ready; retried with backoff


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _exit_text(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


class ModelServer:
    """Supervises one llama-cpp-python server process serving `model_path`."""

    def __init__(
        self,
        model_path: Path,
        settings: LlmSettings,
        work_dir: Path,
        *,
        python: str = sys.executable,
        projector_path: Path | None = None,
        on_ready: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.model_path = model_path
        # A vision-language model's projector: the server then takes images.
        self.projector_path = projector_path
        self.model_name = model_path.name
        self._settings = settings
        self._work_dir = work_dir
        self._python = python
        self._on_ready = on_ready
        self.state = ServerState.STOPPED
        self.reason = ""
        self.restarts = 0
        self.port = 0
        self.api_key = ""
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._log_tail: deque[str] = deque(maxlen=_LOG_TAIL_LINES)
        self._stopping = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def tokenize_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/extras/tokenize/count"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def stop_requested(self) -> bool:
        return self._stopping

    @property
    def log_tail(self) -> list[str]:
        return list(self._log_tail)

    async def start(self) -> bool:
        """Start supervising; wait for the first load (at most load_timeout_s). True when ready."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._supervise(), name="model-server")
        return await self.wait_ready(self._settings.load_timeout_s)

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait until the server answers, or until it failed to load; True when ready."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.state is not ServerState.READY:
            if self.state is ServerState.FAILED or self._task is None:
                return False
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return True

    async def wait_while_ready(self, timeout_s: float) -> None:
        """Return once the server is no longer ready, or after `timeout_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.state is ServerState.READY and loop.time() < deadline:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), deadline - loop.time())

    def kill(self) -> None:
        """Kill the running server at once (a hung one); supervision starts a new one."""
        process = self._process
        if process is not None and process.returncode is None:
            _LOGGER.warning("killing the model server (pid %d): it stopped answering", process.pid)
            with contextlib.suppress(ProcessLookupError):
                process.kill()

    async def stop(self, grace_s: float = _STOP_GRACE_S) -> None:
        """Stop the server: SIGTERM, then SIGKILL after `grace_s`."""
        self._stopping = True
        task, self._task = self._task, None
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), grace_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set_state(ServerState.STOPPED, self.reason)

    # Supervision ---------------------------------------------------------------------------

    def _set_state(self, state: ServerState, reason: str = "") -> None:
        self.state = state
        self.reason = reason
        self._changed.set()

    async def _supervise(self) -> None:
        backoff = self._settings.restart_backoff_s
        while not self._stopping:
            started = time.monotonic()
            was_ready = await self._run_once()
            if self.stop_requested:
                return
            if time.monotonic() - started >= _STABLE_AFTER_S:
                backoff = self._settings.restart_backoff_s
            _LOGGER.warning(
                "%s; starting the model server again in %.0f s", self.reason, backoff
            )
            state = ServerState.RESTARTING if was_ready else ServerState.FAILED
            self._set_state(state, self.reason)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._settings.restart_backoff_max_s)
            self.restarts += 1

    async def _run_once(self) -> bool:
        """Run one server process until it ends; True if it was ready at some point."""
        self.port = _free_loopback_port()
        self.api_key = secrets.token_urlsafe(24)
        config = self._write_config()
        self._log_tail.clear()
        if self.state is not ServerState.RESTARTING:
            self._set_state(ServerState.LOADING)
        try:
            process = await asyncio.create_subprocess_exec(
                self._python, "-c", _CHILD_PROGRAM, "--config_file", str(config),
                env={**os.environ, "HSAI_PARENT_PID": str(os.getpid())},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            config.unlink(missing_ok=True)
            self.reason = f"could not start the model server: {exc}"
            return False
        self._process = process
        _LOGGER.info("model server starting (pid %d, %s)", process.pid, self.model_name)
        reader = asyncio.create_task(self._read_output(process))
        ready = False
        try:
            ready = await self._wait_until_answering(process)
            if ready:
                _LOGGER.info("model server ready on 127.0.0.1:%d (%s)", self.port, self.model_name)
                if self._on_ready is not None:
                    try:
                        await self._on_ready()
                    except Exception as exc:
                        _LOGGER.warning("model server warm-up failed: %s", exc)
                self._set_state(ServerState.READY)
            code = await process.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), 2.0)
            if ready:
                self.reason = f"the model server {_exit_text(code)}"
            elif process.returncode is not None and not self.reason.startswith("did not load"):
                last = self._log_tail[-1][:160] if self._log_tail else ""
                self.reason = (
                    f"could not load {self.model_name}: the model server {_exit_text(code)}"
                    + (f" ({last})" if last else "")
                )
            return ready
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            with contextlib.suppress(OSError):
                config.unlink()

    async def _wait_until_answering(self, process: asyncio.subprocess.Process) -> bool:
        """Poll until the server answers (True), exits or exceeds the load timeout (False)."""
        self.reason = ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.load_timeout_s
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with httpx.AsyncClient(headers=headers, timeout=2.0) as http:
            while process.returncode is None:
                with contextlib.suppress(httpx.TransportError):
                    response = await http.get(f"{self.base_url}/models")
                    if response.status_code == 200:
                        return True
                if loop.time() >= deadline:
                    self.reason = (
                        f"did not load {self.model_name} within "
                        f"{self._settings.load_timeout_s:g} s"
                    )
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), _READY_POLL_S)
        return False

    async def _read_output(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            text = line.decode("utf-8", errors="replace").rstrip()
            if text:
                self._log_tail.append(text)
                _LOGGER.debug("model server: %s", text)

    def _write_config(self) -> Path:
        settings = self._settings
        self._work_dir.mkdir(parents=True, exist_ok=True)
        path = self._work_dir / "model-server.json"
        model: dict[str, object] = {
            "model": str(self.model_path),
            "model_alias": self.model_name,
            "n_ctx": settings.n_ctx,
            "seed": settings.seed,
            # A build without GPU support keeps every layer on the CPU whatever this says.
            "n_gpu_layers": settings.n_gpu_layers if settings.n_gpu_layers is not None else -1,
            "verbose": False,
        }
        if self.projector_path is not None:
            model["clip_model_path"] = str(self.projector_path)
            model["chat_format"] = settings.chat_format
        if settings.n_threads is not None:
            model["n_threads"] = settings.n_threads
            model["n_threads_batch"] = settings.n_threads
        config = {
            "host": "127.0.0.1",
            "port": self.port,
            "api_key": self.api_key,
            # Never cut a running answer short because another request (a token count) waits.
            "interrupt_requests": False,
            "models": [model],
        }
        atomic_write(path, json.dumps(config), private=True)
        return path

"""The supervised model server: a real llama-cpp-python server process on loopback."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
from llm_testlib import llm_settings, process_alive, signal_process
from testlib.waiting import wait_until

from gpu_server.llm.model_server import ModelServer, ServerState


async def test_it_serves_the_model_behind_a_key_on_loopback(model_server: ModelServer) -> None:
    assert model_server.state is ServerState.READY
    assert model_server.base_url.startswith("http://127.0.0.1:")
    async with httpx.AsyncClient() as http:
        refused = await http.get(f"{model_server.base_url}/models")
        assert refused.status_code == 401
        served = await http.get(
            f"{model_server.base_url}/models",
            headers={"Authorization": f"Bearer {model_server.api_key}"},
        )
    assert served.status_code == 200
    assert [item["id"] for item in served.json()["data"]] == ["tiny-random.gguf"]
    # The key went to the child in a file that is gone once the server is up.
    assert not any(model_server.api_key in part for part in _cmdline(model_server.pid))


async def test_a_killed_server_is_started_again(model_server: ModelServer) -> None:
    first_pid = model_server.pid
    assert first_pid is not None
    signal_process(first_pid, signal.SIGKILL)
    await wait_until(lambda: model_server.state is not ServerState.READY)
    assert "killed by SIGKILL" in model_server.reason
    await wait_until(lambda: model_server.state is ServerState.READY)
    assert model_server.pid != first_pid
    assert model_server.restarts == 1
    assert not process_alive(first_pid)


async def test_a_model_that_cannot_load_is_reported_and_retried(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a model")
    server = ModelServer(
        broken, llm_settings(restart_backoff_s=0.2, restart_backoff_max_s=0.4), tmp_path / "llm"
    )
    try:
        assert not await server.start()
        assert server.state is ServerState.FAILED
        assert server.reason.startswith("could not load broken.gguf: the model server exited")
        # It keeps trying, with backoff, in case the file is replaced.
        await wait_until(lambda: server.restarts >= 2)
    finally:
        await server.stop()
    assert server.state is ServerState.STOPPED


async def test_stop_ends_the_process(tiny_gguf: Path, tmp_path: Path) -> None:
    server = ModelServer(tiny_gguf, llm_settings(), tmp_path / "llm")
    assert await server.start()
    pid = server.pid
    assert pid is not None
    await server.stop()
    assert not process_alive(pid)
    assert not (tmp_path / "llm" / "model-server.json").exists()


async def test_a_load_that_takes_too_long_is_given_up(tiny_gguf: Path, tmp_path: Path) -> None:
    server = ModelServer(
        tiny_gguf,
        llm_settings(load_timeout_s=0.01, restart_backoff_s=30),
        tmp_path / "llm",
    )
    try:
        assert not await server.start()
        await wait_until(lambda: server.state is ServerState.FAILED)
        assert server.reason == "did not load tiny-random.gguf within 0.01 s"
    finally:
        await server.stop()


def _cmdline(pid: int | None) -> list[str]:
    assert pid is not None
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


async def test_a_model_server_that_cannot_be_started_is_reported(
    tiny_gguf: Path, tmp_path: Path
) -> None:
    server = ModelServer(
        tiny_gguf, llm_settings(restart_backoff_s=30), tmp_path / "llm",
        python=str(tmp_path / "no-such-python"),
    )
    try:
        assert not await server.start()
        assert server.state is ServerState.FAILED
        assert server.reason.startswith("could not start the model server")
    finally:
        await server.stop()

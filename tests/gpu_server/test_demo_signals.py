"""The demo's stack stops on SIGTERM, SIGHUP and Ctrl-C and leaves no process behind.

A driver runs scripts/demo.py's own code (its signal handling, `stopping`, `supervise` and
`Stack`) over two stand-ins for Home Assistant and the sidecar, each with a child of its own:
the sidecar's stand-in ignores SIGTERM, and so does Home Assistant's child, which outlives its
parent. Everything must be gone once the driver has exited.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LIMIT_S = 60.0
GRACE_S = 1.0

# argv: name, pids file, whether the stand-in itself ignores SIGTERM.
STAND_IN = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    name, pids, stubborn = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    if stubborn:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    with open(pids, "a") as out:
        out.write(f"{name}-child {child.pid}\\n")
    time.sleep(600)
    """
)

DRIVER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    import demo
    workdir, stand_in, pids, grace = Path(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    stack = demo.Stack(workdir, grace_s=float(grace))
    demo.stop_on_signals()
    with demo.stopping(stack):
        for name, stubborn in (("sidecar", "1"), ("homeassistant", "0")):
            stack.start(name, [sys.executable, stand_in, name, pids, stubborn], dict(os.environ))
            with open(pids, "a") as out:
                out.write(f"{name} {stack.processes[name].pid}\\n")
        demo.supervise(stack, 0)
    print("stopped cleanly", flush=True)
    """
)


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting for its reaper counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def read_pids(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    pairs = (line.split() for line in path.read_text().splitlines() if line.strip())
    return {name: int(pid) for name, pid in pairs}


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    (tmp_path / "stand_in.py").write_text(STAND_IN)
    (tmp_path / "driver.py").write_text(DRIVER)
    pids = tmp_path / "pids"
    process = subprocess.Popen(
        [
            sys.executable, str(tmp_path / "driver.py"), str(REPO_ROOT / "scripts"),
            str(tmp_path), str(tmp_path / "stand_in.py"), str(pids), str(GRACE_S),
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        yield process, pids
    finally:
        # Whatever the test's outcome, nothing it started outlives it.
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in read_pids(pids).values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["SIGTERM", "SIGHUP", "Ctrl-C"]
)
def test_the_demo_stops_everything_it_started(
    driver: tuple[subprocess.Popen[str], Path], signum: signal.Signals
) -> None:
    process, pids = driver
    names = {"sidecar", "homeassistant", "sidecar-child", "homeassistant-child"}
    deadline = time.monotonic() + LIMIT_S
    while set(read_pids(pids)) != names:
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "the stand-ins did not start"
        time.sleep(0.05)
    started = read_pids(pids)
    assert all(alive(pid) for pid in started.values())

    process.send_signal(signum)
    output, _ = process.communicate(timeout=LIMIT_S)

    assert process.returncode == 0, output
    assert f"demo: stopping ({'Ctrl-C' if signum == signal.SIGINT else signum.name})" in output
    assert "stopped cleanly" in output
    assert [name for name, pid in started.items() if alive(pid)] == []

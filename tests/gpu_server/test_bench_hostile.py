"""`bench/hostile_input.py`'s plumbing: a tiny run of two cheap attacks against this
repository's sidecar writes the result file the comparison reads; no timings are asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH = REPO_ROOT / "bench" / "hostile_input.py"


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True,
                          timeout=600, check=False, cwd=REPO_ROOT)


@pytest.mark.timeout(660)
def test_a_tiny_run_writes_every_measure_and_compares_with_itself(tmp_path: Path) -> None:
    out = tmp_path / "hostile.json"
    done = bench("--attacks", "garbage,echo", "--streams", "1", "--frames", "2",
                 "--settle-s", "0.5", "--out", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    result = json.loads(out.read_text(encoding="utf-8"))
    head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert result["checkout"]["commit"] == head
    assert (result["streams"], result["frames"]) == (1, 2)
    rows = {row["attack"]: row for row in result["rows"]}
    assert list(rows) == ["garbage", "echo"]
    for row in rows.values():
        assert not row["sidecar_ended"], row["sidecar_ended"]
        assert row["checkout"]["commit"] == head
        assert 0 < row["rss_start_mb"] <= row["rss_peak_mb"]
        assert row["rss_retained_mb"] is not None
        # The normal camera sent at least its first frame and every frame it sent was answered.
        assert row["normal_sent"] >= 1
        assert row["normal_answered"] == row["normal_sent"]
        assert row["normal_answers"]
        assert row["normal_max_ms"] >= row["normal_p50_ms"] > 0
        assert row["status_p50_ms"] is not None
        assert row["server_log_bytes"] > 0

    # Two calls of each kind, each answered with a status code, and the log they cost.
    garbage = rows["garbage"]
    assert sum(garbage["answer"].values()) == 4
    assert {key.split("/")[0] for key in garbage["answer"]} == {"SubmitFrames", "Configure"}
    for call in ("SubmitFrames", "Configure"):
        assert garbage["extra"][call]["calls"] == 2
        assert garbage["extra"][call]["log_bytes_per_call"] >= 0
    echo = rows["echo"]
    assert echo["answer"] != "OK"  # no event has that id
    assert echo["extra"]["event_id_chars"] == 10_000_000
    assert 0 < echo["extra"]["details_chars"] < 10_000

    compared = bench("--compare", str(out), str(out))
    assert compared.returncode == 0, compared.stderr
    lines = compared.stdout.splitlines()
    assert lines[0].startswith("| attack | metric | before")
    table = [line.split(" | ") for line in lines[2:]]
    assert {cells[0].lstrip("| ") for cells in table} == {"garbage", "echo"}
    # The same run on both sides: every metric reads the same before and after.
    assert all(cells[2] == cells[3].rstrip(" |") for cells in table)
    assert any(cells[1].startswith("SubmitFrames.") for cells in table)


def test_an_unknown_attack_is_refused_with_the_names_to_choose_from() -> None:
    done = bench("--attacks", "garbage,nonsense")
    assert done.returncode == 2
    assert "unknown attacks: nonsense" in done.stderr
    names = bench("--list").stdout
    for name in ("baseline", "png_memory", "enroll_forged", "thin", "progressive", "garbage",
                 "echo", "outbox"):
        assert f"{name}:" in names

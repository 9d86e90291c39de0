"""`bench/gpu_check.sh --smoke`: the GPU check's every path, quickly on the CPU, so that the
script stays runnable for the day a GPU machine runs it in full."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_the_gpu_check_smoke_run_writes_its_results(tmp_path: Path) -> None:
    env = {**os.environ, "HSAI_PYTHON": sys.executable}
    done = subprocess.run(
        [str(REPO_ROOT / "bench" / "gpu_check.sh"), "--smoke", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=840, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    detect = json.loads((tmp_path / "detect.json").read_text(encoding="utf-8"))
    assert detect["smoke"] is True
    paths = detect["detect_fps_by_batch"]
    assert set(paths) == {"pytorch (ultralytics)", "onnx (onnxruntime)"}
    for by_batch in paths.values():
        assert set(by_batch) == {"1", "2"}
        assert all(fps > 0 for fps in by_batch.values())
    assert "simplejpeg (cpu)" in detect["decode_1080p_fps_by_batch"]
    assert "torchvision (cpu)" in detect["decode_1080p_fps_by_batch"]

    llm = json.loads((tmp_path / "llm_prefix.json").read_text(encoding="utf-8"))
    # The random model's answers mean nothing; that both paths ran and were timed is the point.
    assert [row["path"].split()[0] for row in llm["rows"]] == ["warm", "cold"]
    assert all(row["prompt_tokens"] > 0 and row["total_ms"] > 0 for row in llm["rows"])

    quality = json.loads((tmp_path / "analysis_quality.json").read_text(encoding="utf-8"))
    (measured,) = quality["models"]
    assert measured["cases"] == 3
    assert measured["authority"] in {"judge", "narrate", "off"}

    vision = json.loads((tmp_path / "vision.json").read_text(encoding="utf-8"))
    (row,) = vision["rows"]
    assert row["key_frame_bytes"] > 0
    assert not row["fallback"], row["fallback"]

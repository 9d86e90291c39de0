"""LLM stage: a warm analysis (static prompt prefix already in the KV cache) against a cold one.

Same model, same prompt template and input sizes, same run:
  * warm: one loaded analyzer that decoded the static prefix at load; each run's input differs
    after the prefix, so exactly the static prefix is reused.
  * cold: a freshly loaded analyzer per run without the prefix warm-up, so the whole prompt is
    decoded (loading is not timed).
Reported per path: time to first generated token and total analysis time (median of the runs).

Usage (from the repository root):
  .venvs/sidecar/bin/python bench/llm_prefix.py [--model embedded|tiny|PATH.gguf] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from gpu_server.llm.analyzer import LlmAnalyzer  # noqa: E402
from gpu_server.llm.errors import LlmError  # noqa: E402
from gpu_server.llm.grammar import GrammarLimits  # noqa: E402
from gpu_server.llm.inputs import (  # noqa: E402
    AnalysisInput,
    BaselineInput,
    DetectionInput,
    ZoneInput,
    ZoneKind,
)
from gpu_server.llm.service import embedded_model_path  # noqa: E402
from gpu_server.llm.testing import write_tiny_gguf  # noqa: E402

LIMITS = GrammarLimits(summary=60, reasoning=120, recommended_action=60)


def make_input(run: int) -> AnalysisInput:
    start = datetime(2026, 3, 14, 2, 10, 0) + timedelta(minutes=run)
    return AnalysisInput(
        camera_id=f"cam_{run}",
        camera_name=f"Camera {run}",
        start=start,
        end=start + timedelta(seconds=40),
        local_time=start,
        detections=tuple(
            DetectionInput(label="person" if i % 2 else "car", confidence=0.5 + i / 40,
                           zone="Porch" if i % 3 else "Driveway")
            for i in range(8)
        ),
        zones=(ZoneInput(name="Porch", kind=ZoneKind.ENTRY),
               ZoneInput(name="Driveway", kind=ZoneKind.PERIMETER)),
        baseline=BaselineInput(anomaly_score=0.7, expected_events_this_hour=0.3),
    )


def timed(analyzer: LlmAnalyzer, analysis: AnalysisInput) -> dict[str, Any]:
    first: list[float] = []
    started = time.perf_counter()

    def on_token(_piece: str) -> None:
        if not first:
            first.append(time.perf_counter())

    ok = True
    try:
        outcome = analyzer.analyze(analysis, on_token=on_token)
        stats = outcome.stats
        prompt, reused = stats.prompt_tokens, stats.prompt_tokens_reused
    except LlmError:
        ok, prompt, reused = False, 0, 0
    total = time.perf_counter() - started
    return {
        "ttft_ms": ((first[0] if first else time.perf_counter()) - started) * 1000.0,
        "total_ms": total * 1000.0,
        "prompt_tokens": prompt,
        "prompt_tokens_reused": reused,
        "valid": ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench/results/llm_prefix.json")
    args = parser.parse_args()

    if args.model == "embedded":
        model = embedded_model_path()
        if model is None:
            model = write_tiny_gguf(Path(tempfile.mkdtemp()) / "tiny-random.gguf")
    elif args.model == "tiny":
        model = write_tiny_gguf(Path(tempfile.mkdtemp()) / "tiny-random.gguf")
    else:
        model = Path(args.model)
    options: dict[str, Any] = {"n_ctx": 4096, "n_threads": args.threads, "grammar_limits": LIMITS}

    warm = LlmAnalyzer(model, **options)
    timed(warm, make_input(-1))  # first call pays one-off costs (grammar, buffers)
    warm_runs = [timed(warm, make_input(run)) for run in range(args.runs)]
    warm.close()
    cold_runs = []
    for run in range(args.runs):
        cold = LlmAnalyzer(model, warm_prefix=False, **options)
        cold_runs.append(timed(cold, make_input(run)))
        cold.close()

    def median(runs: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    rows = []
    paths = (("warm (static prefix cached)", warm_runs), ("cold (empty cache)", cold_runs))
    for name, runs in paths:
        rows.append({
            "path": name,
            "ttft_ms": median(runs, "ttft_ms"),
            "total_ms": median(runs, "total_ms"),
            "prompt_tokens": median(runs, "prompt_tokens"),
            "prompt_tokens_reused": median(runs, "prompt_tokens_reused"),
            "valid_outputs": sum(r["valid"] for r in runs),
        })
    ratio_ttft = rows[1]["ttft_ms"] / rows[0]["ttft_ms"]
    ratio_total = rows[1]["total_ms"] / rows[0]["total_ms"]
    print(f"model {model.name}, {args.runs} runs each, medians")
    print("| path | TTFT ms | total ms | prompt tokens | reused | valid |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['path']} | {row['ttft_ms']:.0f} | {row['total_ms']:.0f} | "
              f"{row['prompt_tokens']:.0f} | {row['prompt_tokens_reused']:.0f} | "
              f"{row['valid_outputs']}/{args.runs} |")
    print(f"cold/warm: TTFT x{ratio_ttft:.2f}, total x{ratio_total:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "model": model.name, "runs": args.runs, "machine": platform.platform(),
        "rows": rows, "cold_over_warm_ttft": ratio_ttft, "cold_over_warm_total": ratio_total,
        "warm_runs": warm_runs, "cold_runs": cold_runs,
    }, indent=2))


if __name__ == "__main__":
    main()

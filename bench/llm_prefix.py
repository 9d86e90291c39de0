"""LLM stage: a warm analysis (static prompt prefix already in the model server's KV cache)
against a cold one, through the model server the sidecar supervises.

Same model, same prompt template and input sizes, same run:
  * warm: one model server whose cache holds the static brief (the sidecar warms it each time
    the server starts); each run's input differs after the brief, so exactly the brief is reused.
  * cold: a freshly started model server per run, not warmed, so the whole prompt is decoded
    (starting the server is not timed).
Reported per path: time to first generated token and total analysis time (median of the runs),
both as the sidecar sees them: prompt building, the HTTP round trip and the stream included.

Usage (from the repository root):
  .venvs/sidecar/bin/python bench/llm_prefix.py [--model embedded|tiny|PATH.gguf] [--runs 3]
      [--prompt-version v2] [--out bench/results/llm_prefix.json]
"""

from __future__ import annotations

import argparse
import asyncio
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
# Test-only helpers (tiny models built offline) live beside the tests, outside the product.
sys.path.insert(0, str(REPO_ROOT / "tests" / "gpu_server"))

from testlib.tiny_gguf import write_tiny_gguf  # noqa: E402

from gpu_server.config import LlmSettings, OutputConstraint  # noqa: E402
from gpu_server.llm.assessor import ModelAssessor  # noqa: E402
from gpu_server.llm.client import ChatClient  # noqa: E402
from gpu_server.llm.errors import LlmError  # noqa: E402
from gpu_server.llm.grammar import GrammarLimits  # noqa: E402
from gpu_server.llm.inputs import (  # noqa: E402
    AnalysisInput,
    BaselineInput,
    DetectionInput,
    ZoneInput,
)
from gpu_server.llm.model_server import ModelServer  # noqa: E402
from gpu_server.llm.service import embedded_model_path  # noqa: E402
from gpu_server.llm.templates import PromptLibrary  # noqa: E402
from gpu_server.vocabulary import RiskZoneKind  # noqa: E402

LIMITS = GrammarLimits(summary=60, reasoning=120, recommended_action=60)
N_CTX = 4096


def make_input(run: int, version: str | None = None) -> AnalysisInput:
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
        zones=(ZoneInput(name="Porch", kind=RiskZoneKind.ENTRY),
               ZoneInput(name="Driveway", kind=RiskZoneKind.PERIMETER)),
        baseline=BaselineInput(anomaly_score=0.7, expected_events_this_hour=0.3),
        prompt_version=version,
    )


def assessor_for(server: ModelServer, n_ctx: int) -> ModelAssessor:
    client = ChatClient(
        server.base_url, model=server.model_name, api_key=server.api_key,
        tokenize_url=server.tokenize_url,
    )
    return ModelAssessor(
        client, model_name=server.model_name, prompts=PromptLibrary.builtin(), n_ctx=n_ctx,
        constraint=OutputConstraint.GRAMMAR, seed=1234, temperature=0.1,
        grammar_limits=LIMITS, llama_sampling=True,
    )


async def timed(assessor: ModelAssessor, analysis: AnalysisInput) -> dict[str, Any]:
    first: list[float] = []
    started = time.perf_counter()

    def on_token(_piece: str) -> None:
        if not first:
            first.append(time.perf_counter())

    ok, prompt = True, 0
    try:
        outcome = await assessor.assess(analysis, on_token=on_token)
        prompt = outcome.stats.prompt_tokens
    except LlmError:
        ok = False
    total = time.perf_counter() - started
    return {
        "ttft_ms": ((first[0] if first else time.perf_counter()) - started) * 1000.0,
        "total_ms": total * 1000.0,
        "prompt_tokens": prompt,
        "valid": ok,
    }


async def run(
    model: Path, runs: int, threads: int | None, version: str, n_ctx: int = N_CTX
) -> dict[str, Any]:
    settings = LlmSettings(n_ctx=n_ctx, n_threads=threads)
    work = Path(tempfile.mkdtemp())

    warm_server = ModelServer(model, settings, work / "warm")
    assert await warm_server.start(), warm_server.reason
    warm = assessor_for(warm_server, n_ctx)
    await warm.warm(version)
    prefix_tokens = warm.client.count_tokens(PromptLibrary.builtin().select(version).system)
    await timed(warm, make_input(-1, version))  # first call pays one-off costs (grammar, buffers)
    await warm.warm(version)  # leave exactly the brief cached, as after a start

    # Warm and cold runs alternate, so a change in the machine's load hits both alike.
    warm_runs, cold_runs = [], []
    for index in range(runs):
        warm_runs.append(await timed(warm, make_input(index, version)))
        server = ModelServer(model, settings, work / f"cold-{index}")
        assert await server.start(), server.reason
        cold = assessor_for(server, n_ctx)
        cold_runs.append(await timed(cold, make_input(index, version)))
        await cold.client.aclose()
        await server.stop()
    await warm.client.aclose()
    await warm_server.stop()
    return {"warm": warm_runs, "cold": cold_runs, "prefix_tokens": prefix_tokens}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    # The tiny random model's tokenizer spells the prompt in more tokens than a real one.
    parser.add_argument("--n-ctx", type=int, default=N_CTX)
    parser.add_argument("--prompt-version", default=PromptLibrary.builtin().default)
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
    measured = asyncio.run(run(model, args.runs, args.threads, args.prompt_version, args.n_ctx))
    warm_runs, cold_runs = measured["warm"], measured["cold"]

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
            "valid_outputs": sum(r["valid"] for r in runs),
        })
    warm_over_cold = rows[0]["ttft_ms"] / rows[1]["ttft_ms"]
    ratio_total = rows[1]["total_ms"] / rows[0]["total_ms"]
    print(f"model {model.name}, prompt {args.prompt_version}, {args.runs} runs each, medians, "
          f"static prefix {measured['prefix_tokens']} tokens, through the model server")
    print("| path | TTFT ms | total ms | prompt tokens | valid |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['path']} | {row['ttft_ms']:.0f} | {row['total_ms']:.0f} | "
              f"{row['prompt_tokens']:.0f} | {row['valid_outputs']}/{args.runs} |")
    print(f"TTFT warm/cold: {warm_over_cold:.2f} (goal <= 0.30); "
          f"total cold/warm: x{ratio_total:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "model": model.name, "prompt_version": args.prompt_version, "runs": args.runs,
        "machine": platform.platform(),
        "path": "model server over HTTP", "static_prefix_tokens": measured["prefix_tokens"],
        "rows": rows, "warm_over_cold_ttft": warm_over_cold, "cold_over_warm_total": ratio_total,
        "warm_runs": warm_runs, "cold_runs": cold_runs,
    }, indent=2))


if __name__ == "__main__":
    main()

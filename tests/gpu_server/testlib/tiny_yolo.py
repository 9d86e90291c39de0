"""A tiny YOLO with random weights, built offline from ultralytics' own model definition.

It detects nothing meaningful; it exercises the real YOLO code path (load, batched predict,
box mapping) where no trained weights are available, e.g. in tests and benchmarks.
Usage: python tests/gpu_server/testlib/tiny_yolo.py OUT.pt
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

# [depth, width, max_channels]: a fraction of yolo11n, well under 1 MB of weights.
TINY_SCALE = [0.25, 0.0625, 128]


def build_tiny_yolo(out: Path) -> Path:
    """Write a random-weight tiny YOLO11 detector to `out` (a .pt that YOLO(out) reloads)."""
    import ultralytics
    from ultralytics import YOLO  # type: ignore[attr-defined]

    source = Path(ultralytics.__file__).parent / "cfg" / "models" / "11" / "yolo11.yaml"
    spec: dict[str, Any] = yaml.safe_load(source.read_text(encoding="utf-8"))
    spec["scales"] = {"n": TINY_SCALE}
    spec["scale"] = "n"
    out.parent.mkdir(parents=True, exist_ok=True)
    # The "yolo11n" in the name lets ultralytics recognise the model family and scale.
    spec_file = out.with_name(f"{out.stem}-yolo11n.yaml")
    spec_file.write_text(yaml.safe_dump(spec), encoding="utf-8")
    try:
        YOLO(str(spec_file)).save(str(out))
    finally:
        spec_file.unlink(missing_ok=True)
    return out


def build_random_yolo(out: Path, model: str = "yolo11n") -> Path:
    """Write a full-size detector (`yolo11n`, `yolo26n`, ...) with random weights to `out`: the
    real model's cost without downloading its trained weights."""
    from ultralytics import YOLO  # type: ignore[attr-defined]

    out.parent.mkdir(parents=True, exist_ok=True)
    YOLO(f"{model}.yaml").save(str(out))
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/gpu_server/testlib/tiny_yolo.py OUT.pt")
    sys.stdout.write(f"{build_tiny_yolo(Path(sys.argv[1]))}\n")

#!/usr/bin/env bash
# One command for a CUDA machine: detection by batch size 1-32 (PyTorch FP32 and FP16, TensorRT
# FP16 when installed), JPEG decoding on the GPU (torchvision) against the CPU, and the language
# model bench, each writing JSON into OUT_DIR.
# Without a CUDA device, or with --smoke, it runs the same code quickly on the CPU (tiny models),
# which the sidecar tests do so that this script keeps working.
# Usage: bench/gpu_check.sh [--smoke] [OUT_DIR]   (default OUT_DIR: bench/results/gpu_check)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${HSAI_PYTHON:-${HSAI_VENVS:-$root/.venvs}/sidecar/bin/python}"

smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
out="${1:-$root/bench/results/gpu_check}"
mkdir -p "$out"

if [ "$smoke" = 0 ] && ! "$python" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
  echo "gpu_check: no CUDA device here: running the quick CPU smoke test instead" >&2
  smoke=1
fi

if [ "$smoke" = 1 ]; then
  "$python" "$root/bench/gpu_check.py" --smoke --out "$out/detect.json"
  "$python" "$root/bench/llm_prefix.py" --model tiny --runs 1 --n-ctx 8192 --out "$out/llm_prefix.json"
else
  "$python" "$root/bench/gpu_check.py" --out "$out/detect.json"
  "$python" "$root/bench/llm_prefix.py" --out "$out/llm_prefix.json"
fi
echo "gpu_check: results in $out"

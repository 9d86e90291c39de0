#!/usr/bin/env bash
# One command for a CUDA machine: detection by batch size 1-32 (PyTorch FP32 and FP16, TensorRT
# FP16 when installed), JPEG decoding on the GPU (torchvision) against the CPU, the language
# model's prompt cache, its quality on the labelled event descriptions, and the vision-language
# path on the labelled photos, each writing JSON into OUT_DIR.
# The models: HSAI_CHECK_LLM (a GGUF; default the embedded SmolLM2) for the quality bench, and
# HSAI_CHECK_VLM with HSAI_CHECK_PROJECTOR (and HSAI_CHECK_CHAT_FORMAT) for the vision path,
# which without them runs a tiny random vision model (the path, not its words).
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
  "$python" "$root/bench/analysis_quality.py" --model tiny --limit 3 --out "$out/analysis_quality.json"
  "$python" "$root/bench/vision_check.py" --tiny --photos 1 --out "$out/vision.json"
else
  "$python" "$root/bench/gpu_check.py" --out "$out/detect.json"
  "$python" "$root/bench/llm_prefix.py" --out "$out/llm_prefix.json"
  "$python" "$root/bench/analysis_quality.py" --model "${HSAI_CHECK_LLM:-embedded}" \
    --out "$out/analysis_quality.json"
  if [ -n "${HSAI_CHECK_VLM:-}" ]; then
    "$python" "$root/bench/vision_check.py" --model "$HSAI_CHECK_VLM" \
      --projector "${HSAI_CHECK_PROJECTOR:?HSAI_CHECK_VLM needs HSAI_CHECK_PROJECTOR}" \
      --chat-format "${HSAI_CHECK_CHAT_FORMAT:-llava-1-5}" --out "$out/vision.json"
  else
    echo "gpu_check: no HSAI_CHECK_VLM: the vision path runs on a tiny random model" >&2
    "$python" "$root/bench/vision_check.py" --tiny --out "$out/vision.json"
  fi
fi
echo "gpu_check: results in $out"

"""A real Triton Inference Server (pytriton) serving an exported YOLO ONNX file as a Python
callable on ONNX Runtime: the server side of the Triton detector backend's tests.

Runs in its own environment (Debian's Python 3.11, where pytriton's server stub works):
  python triton_server.py MODEL.onnx GRPC_PORT HTTP_PORT METRICS_PORT READY_FILE [MODEL_NAME]
It writes READY_FILE once the model is served and serves until it is terminated.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from pytriton.decorators import batch
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def main() -> None:
    path, grpc_port, http_port, metrics_port = sys.argv[1], *map(int, sys.argv[2:5])
    ready = Path(sys.argv[5])
    name = sys.argv[6] if len(sys.argv) > 6 else "yolo"
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    output_name = session.get_outputs()[0].name

    @batch  # type: ignore[misc]
    def infer(**inputs: Any) -> dict[str, Any]:
        images = np.ascontiguousarray(inputs[input_name], dtype=np.float32)
        return {output_name: session.run([output_name], {input_name: images})[0]}

    config = TritonConfig(grpc_port=grpc_port, http_port=http_port, metrics_port=metrics_port)
    with Triton(config=config) as triton:
        triton.bind(
            model_name=name, infer_func=infer,
            inputs=[Tensor(name=input_name, dtype=np.float32, shape=(3, -1, -1))],
            outputs=[Tensor(name=output_name, dtype=np.float32, shape=(-1, -1))],
            config=ModelConfig(max_batch_size=32),
        )
        ready.write_text("ready\n", encoding="utf-8")
        triton.serve()


if __name__ == "__main__":
    main()

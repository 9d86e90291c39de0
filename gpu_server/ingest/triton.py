"""The detector's network on a Triton Inference Server, reached with tritonclient over gRPC.

Pre- and post-processing stay in the sidecar (ultralytics, on the ONNX file exported beside the
weights); only the network runs on the server, which serves that same ONNX file under
`detector.triton_model`. When the server stops answering, batches run on the local ONNX Runtime
session instead, so detection goes on; the log says when that starts and ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

_LOGGER = logging.getLogger(__name__)


class TritonUnavailableError(RuntimeError):
    """The server cannot be reached, or does not serve the model."""


class TritonSession:
    """What ultralytics calls on an ONNX Runtime session (`run`, `get_inputs`, ...), answered by
    a Triton model, with the local session as the fallback."""

    def __init__(
        self, url: str, model: str, local: Any, *, on_change: Callable[[bool], None],
        timeout_s: float = 10.0,
    ) -> None:
        """`on_change(up)` is called when the server stops answering (False) or answers again."""
        import tritonclient.grpc as triton_grpc  # noqa: PLC0415 - Triton backend only

        self.url, self.model = url, model
        self._grpc = triton_grpc
        self._local = local
        self._timeout_s = timeout_s
        self._on_change = on_change
        self._client = triton_grpc.InferenceServerClient(url=url)
        self.local_batches = 0  # batches the local session ran because the server did not
        try:
            ready = self._client.is_server_live() and self._client.is_model_ready(model)
        except Exception as exc:
            raise TritonUnavailableError(f"Triton at {url} unreachable: {exc}") from exc
        if not ready:
            raise TritonUnavailableError(f"Triton at {url} does not serve model {model!r}")

    def get_inputs(self) -> Any:
        return self._local.get_inputs()

    def get_outputs(self) -> Any:
        return self._local.get_outputs()

    def get_providers(self) -> list[str]:
        return ["Triton"]

    def run(self, output_names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            outputs = self._infer(output_names, feeds)
        except Exception as exc:  # a stopped or failing server: detect locally meanwhile
            if self.local_batches == 0:
                _LOGGER.warning("Triton at %s failed (%s): detecting locally", self.url, exc)
                self._on_change(False)
            self.local_batches += 1
            result: list[np.ndarray] = self._local.run(output_names, feeds)
            return result
        if self.local_batches:
            _LOGGER.warning(
                "Triton at %s answers again after %d local batches", self.url, self.local_batches
            )
            self.local_batches = 0
            self._on_change(True)
        return outputs

    def _infer(self, output_names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        inputs = []
        for name, array in feeds.items():
            item = self._grpc.InferInput(name, list(array.shape), "FP32")
            item.set_data_from_numpy(np.ascontiguousarray(array, dtype=np.float32))
            inputs.append(item)
        wanted = [self._grpc.InferRequestedOutput(name) for name in output_names]
        result = self._client.infer(
            self.model, inputs, outputs=wanted, client_timeout=self._timeout_s
        )
        return [result.as_numpy(name) for name in output_names]


def attach(
    model: Any, url: str, name: str, on_change: Callable[[bool], None]
) -> TritonSession:
    """Send the network of a loaded ultralytics ONNX `model` (CPU) to Triton, keeping its own
    session as the fallback; raises TritonUnavailableError when the server cannot serve it now."""
    backend = model.predictor.model.backend
    session = TritonSession(url, name, backend.session, on_change=on_change)
    backend.session = session
    return session

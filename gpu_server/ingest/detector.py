"""What every detector is: a blocking call on a batch of images, copies that share nothing."""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence

import numpy as np

from gpu_server.core.detection import Detection
from gpu_server.core.images import BgrImage


class Detector(abc.ABC):
    """Runs object detection on a batch of BGR images."""

    name: str
    backend: str
    device: str
    weights: str  # file name of the weights; empty for built-in models
    # The confidence from which this detector's detections are as good as certain: the fast
    # path's threshold unless one is configured. Models differ: YOLO scores a clear person
    # above 0.9, the embedded SSD about 0.5.
    sure_confidence: float = 0.9

    @abc.abstractmethod
    def detect_batch(self, images: Sequence[BgrImage]) -> list[list[Detection]]:
        """Return one list of detections per input image, in input order (blocking)."""

    def warmup(self) -> None:
        """Run once on a blank image so the first real frame does not pay for set-up."""
        self.detect_batch([np.zeros((256, 256, 3), dtype=np.uint8)])

    def replicate(self) -> Detector | None:
        """Another copy of this detector that shares no state with it, loaded and warmed up
        (blocking), so two batches can run at once; None when it cannot be copied."""
        return None


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1

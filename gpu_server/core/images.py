"""A decoded frame as every stage holds it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# H x W x 3, BGR like OpenCV and ultralytics expect.
BgrImage = npt.NDArray[np.uint8]

"""Shared fixtures for the context-layer tests: real photos and a fixed clock."""

from __future__ import annotations

import pathlib

import cv2
import numpy as np
import numpy.typing as npt
import pytest


def _assets() -> pathlib.Path:
    ultralytics = pytest.importorskip("ultralytics")
    return pathlib.Path(ultralytics.__file__).parent / "assets"


def _read(name: str) -> npt.NDArray[np.uint8]:
    image = cv2.imread(str(_assets() / name))
    if image is None:
        pytest.skip(f"sample photo {name} is not available")
    return np.asarray(image, dtype=np.uint8)


@pytest.fixture(scope="session")
def bus() -> npt.NDArray[np.uint8]:
    return _read("bus.jpg")


@pytest.fixture(scope="session")
def zidane() -> npt.NDArray[np.uint8]:
    return _read("zidane.jpg")

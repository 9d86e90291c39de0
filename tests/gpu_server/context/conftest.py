"""Shared fixtures for the context-layer tests: real photos and a fixed clock."""

from __future__ import annotations

import importlib.util
import pathlib

import cv2
import numpy as np
import numpy.typing as npt
import pytest


def _assets() -> pathlib.Path:
    # Locate the package without importing it: importing ultralytics is slow and writes a
    # settings file, and only its bundled sample photos are needed here.
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or spec.origin is None:
        pytest.fail("ultralytics (and its sample photos) is missing: run scripts/setup_sidecar_env")
    return pathlib.Path(spec.origin).parent / "assets"


def _read(name: str) -> npt.NDArray[np.uint8]:
    image = cv2.imread(str(_assets() / name))
    if image is None:
        pytest.fail(f"sample photo {name} is not readable in {_assets()}")
    return np.asarray(image, dtype=np.uint8)


@pytest.fixture(scope="session")
def bus() -> npt.NDArray[np.uint8]:
    return _read("bus.jpg")


@pytest.fixture(scope="session")
def zidane() -> npt.NDArray[np.uint8]:
    return _read("zidane.jpg")

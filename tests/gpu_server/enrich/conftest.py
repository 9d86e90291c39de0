"""Fixtures for the enrichment tests: the real models, loaded once."""

from __future__ import annotations

import pytest

from gpu_server.enrich.faces import FaceModel, faces_unavailable
from gpu_server.enrich.plates import PlateReader, plates_unavailable


@pytest.fixture(scope="session")
def face_model() -> FaceModel:
    reason = faces_unavailable()
    assert reason is None, f"{reason}: run scripts/setup_sidecar_env"
    return FaceModel()


@pytest.fixture(scope="session")
def plate_reader() -> PlateReader:
    reason = plates_unavailable()
    assert reason is None, f"{reason}: run scripts/setup_sidecar_env"
    return PlateReader()

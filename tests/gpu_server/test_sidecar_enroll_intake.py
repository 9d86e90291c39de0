"""EnrollPerson's photo goes through the same intake as a frame: formats, header checks, pixel
and aspect limits, the decode budget and the decode threads."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image
from sidecar_testlib import AUTH, StartServer

from gpu_server._generated import events_pb2
from gpu_server.config import EnrichConfig, LimitsConfig
from gpu_server.core.detection import Detection
from gpu_server.core.images import BgrImage
from gpu_server.enrich.pipeline import ENROLL_MAX_SIDE, Enricher
from gpu_server.errors import BackpressureError, InvalidRequestError
from gpu_server.ingest.detect import DetectorSelection
from gpu_server.ingest.detector import Detector
from gpu_server.ingest.intake import FrameIntake, ImageIntake
from gpu_server.ingest.memory import DecodeBudget
from gpu_server.models.registry import MIB, ModelRegistry

Photos = dict[str, npt.NDArray[np.uint8]]


class NoDetector(Detector):
    """Finds nothing; these tests never send a frame."""

    name = "none"
    backend = "test"
    device = "cpu"
    weights = ""

    def warmup(self) -> None:
        """Nothing to load."""

    def detect_batch(self, images: Sequence[BgrImage]) -> list[list[Detection]]:
        return [[] for _ in images]


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def forged_jpeg(data: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header claiming another size."""
    offset = data.index(b"\xff\xc0") + 5
    return data[:offset] + struct.pack(">HH", height, width) + data[offset + 4 :]


def rgb(photo: npt.NDArray[np.uint8]) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(photo[:, :, ::-1]))


async def test_enroll_person_refuses_what_a_frame_would_be_refused_for(
    start_server: StartServer, photos: Photos
) -> None:
    running = await start_server(DetectorSelection(NoDetector()))
    astronaut = rgb(photos["astronaut"])
    small = encoded(astronaut.resize((160, 160)), "JPEG")
    photo = encoded(astronaut, "JPEG", quality=92)
    refused = {
        "webp": (encoded(astronaut, "WEBP"), "not a JPEG or PNG"),
        "tiff": (encoded(astronaut, "TIFF"), "not a JPEG or PNG"),
        # 7.5 KB claiming 20000x20000: beyond the sides' limit, nothing decoded.
        "huge header": (forged_jpeg(small, 20000, 20000), "20000x20000"),
        # Within the sides but more pixels than the bytes can hold: forged.
        "forged header": (forged_jpeg(small, 7000, 7000), "forged"),
        "thin": (encoded(Image.new("RGB", (4000, 1)), "PNG"), "12:1"),
        "cut short": (photo[: len(photo) // 2], "truncated or corrupt"),
    }
    for name, (image, message) in refused.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await running.stub.EnrollPerson(
                events_pb2.EnrollPersonRequest(name="Eileen", image=image), metadata=AUTH
            )
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, name
        assert message in (caught.value.details() or ""), (name, caught.value.details())
    listed = await running.stub.ListPeople(events_pb2.ListPeopleRequest(), metadata=AUTH)
    assert list(listed.people) == []
    person = await running.stub.EnrollPerson(
        events_pb2.EnrollPersonRequest(name="Eileen", image=photo), metadata=AUTH
    )
    assert person.embeddings == 1


class CountingThreads(ThreadPoolExecutor):
    """The decode threads, counting the work given to them."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.submitted = 0

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
def threads() -> Any:
    pool = CountingThreads()
    yield pool
    pool.shutdown()


async def test_enrolment_decodes_within_the_budget_on_the_decode_threads(
    photos: Photos, tmp_path: Path, threads: CountingThreads
) -> None:
    budget = DecodeBudget(capacity=16 * MIB, wait_s=0.2)
    images = ImageIntake(FrameIntake(LimitsConfig(), ENROLL_MAX_SIDE), budget, threads)
    enricher = Enricher(EnrichConfig(), tmp_path, ModelRegistry(4096 * MIB), images=images)
    astronaut = rgb(photos["astronaut"])
    person = await enricher.enroll("Eileen", image=encoded(astronaut, "PNG"))
    assert person.embeddings == 1
    # Checked and decoded on the threads given, the pixels counted while they lived.
    assert threads.submitted == 2
    assert budget.peak >= 512 * 512 * 3
    assert budget.used == 0
    # A photo whose decode alone needs more than the whole budget: refused outright.
    with pytest.raises(InvalidRequestError, match="budget"):
        await enricher.enroll("Eileen", image=encoded(astronaut.resize((1600, 1600)), "PNG"))
    # While frames hold the whole budget, the photo waits, then is sent back for later.
    async with budget.reserve(16 * MIB):
        with pytest.raises(BackpressureError):
            await enricher.enroll("Eileen", image=encoded(astronaut, "PNG"))
    assert budget.used == 0
    assert enricher.people()[0].embeddings == 1

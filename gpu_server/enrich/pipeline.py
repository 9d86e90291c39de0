"""Enrichment of a window: faces matched against the known people, the posture of the people,
text read off vehicles.

Crops are cut when a frame is accepted (the only time its pixels exist) and travel with the
frame in its window; the models run once per window, when the window is analysed, and only for
the kinds the window holds: no person box, no face model; no vehicle box, no OCR. Each model is
loaded through the model zoo's registry, so it shares the zoo's memory budget and is unloaded
when idle models must make room.

A missing package or a model that fails turns that part off with a note in the event and a
reason in the status; detection and the risk analysis go on without it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import cv2
import numpy as np

from gpu_server.config import EnrichConfig, LimitsConfig
from gpu_server.core.detection import Detection
from gpu_server.core.enrichment import (
    EnrichmentResult,
    PersonPose,
    PersonSighting,
    PlateReading,
    Reidentified,
    VisitorSighting,
)
from gpu_server.core.images import BgrImage
from gpu_server.enrich.appearance import (
    APPEARANCE_MATCH,
    APPEARANCE_MODEL_KEY,
    APPEARANCE_TASK,
    AppearanceModel,
    appearance_folder,
    appearance_memory,
    appearance_unavailable,
)
from gpu_server.enrich.faces import (
    FACE_MODEL_KEY,
    FACE_MODEL_MEMORY,
    FACE_TASK,
    Embedding,
    Face,
    FaceModel,
    distance,
    faces_unavailable,
)
from gpu_server.enrich.gallery import KnownPerson, PeopleGallery
from gpu_server.enrich.plates import (
    OCR_MODEL_KEY,
    OCR_MODEL_MEMORY,
    OCR_TASK,
    PLATE_REGION,
    PlateReader,
    TextLine,
    normalize_plate,
    plates_unavailable,
)
from gpu_server.enrich.pose import (
    POSE_MODEL_KEY,
    POSE_MODEL_MEMORY,
    POSE_TASK,
    Pose,
    PoseModel,
    find_models,
    pose_unavailable,
)
from gpu_server.enrich.posture import VISIBLE, posture_flags
from gpu_server.enrich.reid import COLOUR_MATCH, AppearanceIndex, Descriptor, colour_descriptor
from gpu_server.enrich.visitors import Person, VisitorBook
from gpu_server.errors import (
    BackpressureError,
    FeatureUnavailableError,
    FrameRejectedError,
    InvalidRequestError,
    NotFoundError,
    RejectReason,
)
from gpu_server.ingest.intake import ImageIntake
from gpu_server.llm.sanitizer import sanitize
from gpu_server.models.registry import ModelRegistry, ModelRegistryError, ModelSpec
from gpu_server.vocabulary import LabelGroup, label_group

_LOGGER = logging.getLogger(__name__)

R = TypeVar("R")

# Crops are scaled down to this longest side: a face in a person crop stays well above the
# face detector's 40 px minimum, and a window's crops stay small in memory.
MAX_CROP_SIDE: Final = 640
# A person box is cut with this margin around it: the detector's box often clips the head.
_PERSON_MARGIN: Final = 0.1
# Person crops of a window whose colours go into re-identification: the most confident.
REID_CROPS: Final = 3
# Faces of recent events remembered for EnrollPerson, newest last.
RECENT_FACES: Final = 1024
MAX_PEOPLE_PER_EVENT: Final = 10
MAX_PLATES_PER_EVENT: Final = 8
MAX_POSES_PER_EVENT: Final = 10
# Photos to enrol are looked at with this longest side at most (JPEGs decoded at about it).
ENROLL_MAX_SIDE: Final = 1600


@dataclass(frozen=True, slots=True)
class Crop:
    """A person box, or the plate region of a vehicle box, cut out of a frame."""

    group: LabelGroup  # PERSON or VEHICLE
    frame_sha256: str
    confidence: float
    origin: tuple[float, float]  # its top-left corner, in pixels of the original frame
    scale: float  # pixels of the original frame per pixel of the crop
    pixels: BgrImage = field(compare=False, repr=False)

    def to_frame(self, box: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
        x0, y0 = self.origin
        x1, y1, x2, y2 = box
        return (
            x0 + x1 * self.scale,
            y0 + y1 * self.scale,
            x0 + x2 * self.scale,
            y0 + y2 * self.scale,
        )


@dataclass(frozen=True, slots=True)
class EnrichmentStatus:
    faces_available: bool
    faces_reason: str
    plates_available: bool
    plates_reason: str
    known_people: int
    known_plates: int
    windows: int  # windows enriched since start
    pose_available: bool = False
    pose_reason: str = ""


def _scaled(image: BgrImage, max_side: int) -> tuple[BgrImage, float]:
    """The image with its longest side at most `max_side`, and the factor it was shrunk by."""
    height, width = image.shape[:2]
    factor = max(height, width) / max_side
    if factor <= 1.0:
        return np.ascontiguousarray(image), 1.0
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8), factor


def _visitor_cues(
    people: Sequence[PersonSighting],
    faces: Sequence[Descriptor],
    appearances: Sequence[Descriptor],
    colours: Sequence[Descriptor],
) -> list[Person]:
    """What each person offers to be recognised by: the faces found (with the name of an
    enrolled one), else the crops' appearance embeddings, else their colours."""
    if people:
        return [
            Person(name=person.name, face=face)
            for person, face in zip(people, faces, strict=False)
        ]
    if appearances:
        return [Person(appearance=item) for item in appearances]
    return [Person(colour=item) for item in colours]


def cut_crops(
    sha256: str,
    detections: Sequence[Detection],
    pixels: BgrImage,
    size: tuple[int, int],
    *,
    max_person: int,
    max_vehicle: int,
) -> tuple[Crop, ...]:
    """Person boxes and the plate regions of vehicle boxes, the most confident first.

    `size` is the original frame's width and height: the boxes are in its pixels, while the
    decoded `pixels` may be scaled down.
    """
    width, _ = size
    ratio = pixels.shape[1] / width if width else 1.0
    limits = {LabelGroup.PERSON: max_person, LabelGroup.VEHICLE: max_vehicle}
    crops: list[Crop] = []
    for det in sorted(detections, key=lambda item: -item.confidence):
        group = label_group(det.label)
        if limits.get(group, 0) <= 0:
            continue
        x1, y1, x2, y2 = det.x1, det.y1, det.x2, det.y2
        if group is LabelGroup.PERSON:
            pad_x, pad_y = (x2 - x1) * _PERSON_MARGIN, (y2 - y1) * _PERSON_MARGIN
            x1, y1, x2, y2 = x1 - pad_x, y1 - pad_y, x2 + pad_x, y2 + pad_y
        else:
            y1 = y2 - (y2 - y1) * PLATE_REGION
        # Into the decoded image's pixels, clipped to it.
        left = max(0, int(x1 * ratio))
        top = max(0, int(y1 * ratio))
        right = min(pixels.shape[1], int(np.ceil(x2 * ratio)))
        bottom = min(pixels.shape[0], int(np.ceil(y2 * ratio)))
        if right - left < 8 or bottom - top < 8:
            continue
        crop, factor = _scaled(pixels[top:bottom, left:right], MAX_CROP_SIDE)
        crops.append(
            Crop(
                group=group,
                frame_sha256=sha256,
                confidence=det.confidence,
                origin=(left / ratio, top / ratio),
                scale=factor / ratio,
                # A copy: the crop must not keep the whole decoded frame alive.
                pixels=crop.copy() if factor == 1.0 else crop,
            )
        )
        limits[group] -= 1
    return tuple(crops)


class Enricher:
    """Faces and plates for a window's crops, the known people, and what is available."""

    def __init__(
        self,
        settings: EnrichConfig,
        data_dir: Path,
        registry: ModelRegistry,
        models_dir: Path | None = None,
        *,
        images: ImageIntake | None = None,
    ) -> None:
        """`images`: where the photos EnrollPerson is given are checked and decoded (the
        server passes the frames' limits, decode budget and threads); None: the default limits
        with a budget and a thread of their own."""
        self.settings = settings
        self.images = images or ImageIntake.standalone(LimitsConfig(), ENROLL_MAX_SIDE)
        self._registry = registry
        off = None if settings.enabled else "enrichment is turned off"
        self._faces_reason = off or faces_unavailable()
        self._plates_reason = off or plates_unavailable()
        if self._faces_reason is None:
            self._faces_reason = _register(
                registry, ModelSpec(FACE_MODEL_KEY, FACE_TASK, FACE_MODEL_MEMORY, FaceModel)
            )
        if self._plates_reason is None:
            self._plates_reason = _register(
                registry, ModelSpec(OCR_MODEL_KEY, OCR_TASK, OCR_MODEL_MEMORY, PlateReader)
            )
        self._pose_reason = off or pose_unavailable(models_dir)
        pose_folder, _ = find_models(models_dir)
        if self._pose_reason is None and pose_folder is not None:
            self._pose_reason = _register(
                registry,
                ModelSpec(
                    POSE_MODEL_KEY, POSE_TASK, POSE_MODEL_MEMORY, lambda: PoseModel(pose_folder)
                ),
            )
        for part, reason in (
            ("faces", self._faces_reason),
            ("plates", self._plates_reason),
            ("poses", self._pose_reason),
        ):
            if reason is not None:
                _LOGGER.warning("Enrichment of %s is unavailable: %s", part, reason)
        self.gallery = PeopleGallery(data_dir, settings.face_match_distance)
        self._known_plates = {
            plate: label
            for raw, label in settings.known_plates.items()
            if (plate := normalize_plate(raw))
        }
        self._recent_faces: OrderedDict[str, Embedding] = OrderedDict()
        self._windows = 0
        self.reid = (
            AppearanceIndex(
                data_dir,
                ttl_s=settings.reid_ttl_s,
                face_distance=settings.face_match_distance,
                appearance_match=APPEARANCE_MATCH,
            )
            if settings.enabled and settings.reid
            else None
        )
        self.visitors = (
            VisitorBook(
                data_dir,
                face_distance=settings.face_match_distance,
                appearance_match=APPEARANCE_MATCH,
                colour_match=COLOUR_MATCH,
                keep_days=settings.visitor_keep_days,
                colour_ttl_s=settings.reid_ttl_s,
            )
            if settings.enabled and settings.visitors
            else None
        )
        # A CLIP-class model in the models folder sharpens re-identification; none is fine.
        self._appearance_reason: str | None = "re-identification is off"
        if self.reid is not None and models_dir is not None:
            self._appearance_reason = appearance_unavailable(models_dir)
            folder = appearance_folder(models_dir)
            if self._appearance_reason is None and folder is not None:
                self._appearance_reason = _register(
                    registry,
                    ModelSpec(
                        APPEARANCE_MODEL_KEY,
                        APPEARANCE_TASK,
                        appearance_memory(models_dir),
                        lambda: AppearanceModel(folder),
                    ),
                )
            if self._appearance_reason is None:
                _LOGGER.info("Re-identification uses the appearance model in %s", folder)
            elif folder is not None:  # the user put one there: say why it is not used
                _LOGGER.warning("Re-identification without its appearance model: %s",
                                self._appearance_reason)

    @property
    def wants_crops(self) -> bool:
        return self._wants_people or self._plates_reason is None

    @property
    def _wants_people(self) -> bool:
        return (
            self._faces_reason is None
            or self._pose_reason is None
            or self.reid is not None
            or self.visitors is not None
        )

    def crops(
        self,
        sha256: str,
        detections: Sequence[Detection],
        pixels: BgrImage,
        size: tuple[int, int],
    ) -> tuple[Crop, ...]:
        """What a frame contributes to its window's enrichment (blocking; cheap)."""
        return cut_crops(
            sha256,
            detections,
            pixels,
            size,
            max_person=self.settings.max_person_crops if self._wants_people else 0,
            max_vehicle=self.settings.max_vehicle_crops if self._plates_reason is None else 0,
        )

    async def enrich(
        self, crops: Sequence[Crop], *, camera_id: str = "", now_ms: int = 0
    ) -> EnrichmentResult:
        """Faces and plates of a window's crops, the most confident crops first, and the people
        of `camera_id` seen on other cameras before `now_ms` (wall clock)."""
        ranked = sorted(crops, key=lambda crop: -crop.confidence)
        people_crops = [crop for crop in ranked if crop.group is LabelGroup.PERSON]
        vehicle_crops = [crop for crop in ranked if crop.group is LabelGroup.VEHICLE]
        people_crops = people_crops[: self.settings.max_person_crops]
        vehicle_crops = vehicle_crops[: self.settings.max_vehicle_crops]
        notes: list[str] = []
        timings: dict[str, float] = {}
        people: tuple[PersonSighting, ...] = ()
        plates: tuple[PlateReading, ...] = ()
        if people_crops:
            if self._faces_reason is not None:
                notes.append(f"faces: {self._faces_reason}")
            else:
                people = await self._step(FACE_TASK, notes, timings, self._people, people_crops)
        poses: tuple[PersonPose, ...] = ()
        if people_crops:
            if self._pose_reason is not None:
                notes.append(f"poses: {self._pose_reason}")
            else:
                poses = await self._step(POSE_TASK, notes, timings, self._poses, people_crops)
        reidentified: tuple[Reidentified, ...] = ()
        visitors: tuple[VisitorSighting, ...] = ()
        if people_crops and camera_id and (self.reid is not None or self.visitors is not None):
            reidentified, visitors = await self._recognise(camera_id, now_ms, people_crops, people)
        if vehicle_crops:
            if self._plates_reason is not None:
                notes.append(f"plates: {self._plates_reason}")
            else:
                plates = await self._step(OCR_TASK, notes, timings, self._plates, vehicle_crops)
        if people_crops or vehicle_crops:
            self._windows += 1
        return EnrichmentResult(
            people, plates, reidentified, tuple(notes), timings, poses, visitors
        )

    async def _recognise(
        self,
        camera_id: str,
        now_ms: int,
        crops: Sequence[Crop],
        people: Sequence[PersonSighting],
    ) -> tuple[tuple[Reidentified, ...], tuple[VisitorSighting, ...]]:
        """Match this window's people against other cameras' recent ones (re-identification)
        and against the visitors of earlier days, then remember them."""
        faces: list[Descriptor] = [
            embedding
            for person in people
            if (embedding := self._recent_faces.get(person.face_id)) is not None
        ]
        chosen = list(crops[:REID_CROPS])
        appearances: list[Descriptor] = []
        if self._appearance_reason is None:
            async with self._registry.use(APPEARANCE_MODEL_KEY) as model:
                appearances = await asyncio.to_thread(
                    model.embed, [crop.pixels for crop in chosen]
                )

        def run() -> tuple[tuple[Reidentified, ...], tuple[VisitorSighting, ...]]:
            colours = [colour_descriptor(crop.pixels) for crop in chosen]
            found: list[Reidentified] = []
            if self.reid is not None:
                found = self.reid.match(camera_id, colours, faces, now_ms, appearances)
                self.reid.add(camera_id, colours, faces, now_ms, appearances)
            seen: tuple[VisitorSighting, ...] = ()
            if self.visitors is not None:
                seen = self.visitors.record(
                    camera_id, _visitor_cues(people, faces, appearances, colours), now_ms
                )
            return tuple(found), seen

        return await asyncio.to_thread(run)

    def flush(self, now_ms: int) -> None:
        """Write what must outlive a restart (blocking)."""
        if self.reid is not None:
            self.reid.flush(now_ms)
        if self.visitors is not None:
            self.visitors.flush()

    async def _step(
        self,
        task: str,
        notes: list[str],
        timings: dict[str, float],
        run: Callable[[list[Crop]], Awaitable[tuple[R, ...]]],
        crops: list[Crop],
    ) -> tuple[R, ...]:
        started = time.perf_counter()
        try:
            return await run(crops)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # One part failing (a model that will not load, no memory in the budget) must not
            # cost the event: it is stored without that part, saying why.
            _LOGGER.exception("Enrichment step %s failed", task)
            notes.append(f"{task} failed: {type(exc).__name__}: {exc}"[:200])
            return ()
        finally:
            timings[task] = (time.perf_counter() - started) * 1000.0

    async def _people(self, crops: list[Crop]) -> tuple[PersonSighting, ...]:
        async with self._registry.use(FACE_MODEL_KEY) as model:
            found = await asyncio.to_thread(_faces_in, model, crops)
        kept: list[tuple[PersonSighting, Embedding]] = []
        for crop, face in found:
            match = self.gallery.match(face.embedding)
            sighting = PersonSighting(
                face_id=self._remember(face.embedding),
                name=match.name,
                distance=match.distance,
                frame_sha256=crop.frame_sha256,
                box=crop.to_frame(face.box),
            )
            # The same person in several frames is one sighting: the one nearest the gallery.
            same = next(
                (
                    index
                    for index, (_, seen) in enumerate(kept)
                    if distance(seen, face.embedding) <= self.gallery.match_distance
                ),
                None,
            )
            if same is None:
                kept.append((sighting, face.embedding))
            elif 0 <= match.distance < kept[same][0].distance:
                kept[same] = (sighting, face.embedding)
        return tuple(sighting for sighting, _ in kept[:MAX_PEOPLE_PER_EVENT])

    async def _poses(self, crops: list[Crop]) -> tuple[PersonPose, ...]:
        async with self._registry.use(POSE_MODEL_KEY) as model:
            found = await asyncio.to_thread(_poses_in, model, crops)
        return tuple(
            person_pose(number, crop, pose)
            for number, (crop, pose) in enumerate(found, start=1)
            if pose is not None
        )[:MAX_POSES_PER_EVENT]

    async def _plates(self, crops: list[Crop]) -> tuple[PlateReading, ...]:
        async with self._registry.use(OCR_MODEL_KEY) as reader:
            found = await asyncio.to_thread(_text_in, reader, crops)
        readings: dict[str, PlateReading] = {}
        for crop, line in found:
            normalized = normalize_plate(line.text)
            if line.confidence < self.settings.ocr_min_confidence or len(normalized) < 2:
                continue
            previous = readings.get(normalized)
            if previous is not None and previous.confidence >= line.confidence:
                continue
            cleaned = sanitize(line.text, "ocr_plate")
            readings[normalized] = PlateReading(
                raw=line.text,
                text=cleaned.text,
                normalized=normalized,
                confidence=line.confidence,
                known_label=self._known_plates.get(normalized),
                suspicious=cleaned.suspicious,
                frame_sha256=crop.frame_sha256,
            )
        ranked = sorted(readings.values(), key=lambda item: -item.confidence)
        return tuple(ranked[:MAX_PLATES_PER_EVENT])

    def _remember(self, embedding: Embedding) -> str:
        face_id = uuid.uuid4().hex[:16]
        self._recent_faces[face_id] = embedding
        while len(self._recent_faces) > RECENT_FACES:
            self._recent_faces.popitem(last=False)
        return face_id

    # -- the known people ----------------------------------------------------------------

    async def enroll(self, name: str, *, face_id: str = "", image: bytes = b"") -> KnownPerson:
        """Add a face to a person: one from a recent event, or the largest in an image."""
        if face_id:
            embedding = self._recent_faces.get(face_id)
            if embedding is None:
                raise NotFoundError(
                    f"face {face_id[:32]!r} is not among the {RECENT_FACES} most recent faces"
                )
        elif image:
            embedding = await self._largest_face(image)
        else:
            raise InvalidRequestError("enrolling needs a face id or an image")
        return await asyncio.to_thread(self.gallery.enroll, name, embedding)

    async def _largest_face(self, image: bytes) -> Embedding:
        if self._faces_reason is not None:
            raise FeatureUnavailableError(f"faces are unavailable: {self._faces_reason}")
        try:
            # The same formats, limits and decode budget as a frame; the pixels' memory stays
            # counted until the face model is done with them.
            async with self.images.decoded(image) as decoded:
                pixels, _ = _scaled(decoded.pixels, ENROLL_MAX_SIDE)
                async with self._registry.use(FACE_MODEL_KEY) as model:
                    faces: list[Face] = await asyncio.to_thread(model.faces, pixels)
        except BackpressureError:
            raise
        except FrameRejectedError as exc:
            raise _refused_image(exc) from None
        if not faces:
            raise InvalidRequestError("no face was found in the image")
        return faces[0].embedding

    async def remove(self, name: str) -> int:
        return await asyncio.to_thread(self.gallery.remove, name)

    def people(self) -> list[KnownPerson]:
        return self.gallery.people()

    def status(self) -> EnrichmentStatus:
        return EnrichmentStatus(
            faces_available=self._faces_reason is None,
            faces_reason=self._faces_reason or "",
            plates_available=self._plates_reason is None,
            plates_reason=self._plates_reason or "",
            known_people=len(self.gallery.people()),
            known_plates=len(self._known_plates),
            windows=self._windows,
            pose_available=self._pose_reason is None,
            pose_reason=self._pose_reason or "",
        )


def _refused_image(exc: FrameRejectedError) -> InvalidRequestError:
    if exc.reason is RejectReason.NOT_AN_IMAGE:
        return InvalidRequestError("the image is not a JPEG or PNG (other formats are refused)")
    return InvalidRequestError(f"the image is refused: {exc}")


def _register(registry: ModelRegistry, spec: ModelSpec[Any]) -> str | None:
    """Register a model with the zoo; why it cannot be, or None."""
    try:
        registry.register(spec)
    except ModelRegistryError as exc:
        return str(exc)
    return None


def _faces_in(model: FaceModel, crops: Sequence[Crop]) -> list[tuple[Crop, Face]]:
    found: list[tuple[Crop, Face]] = []
    for crop in crops:
        # Small crops are upsampled twice, so faces of about 20 px are still found.
        upsample = 2 if max(crop.pixels.shape[:2]) < MAX_CROP_SIDE // 2 else 1
        found.extend((crop, face) for face in model.faces(crop.pixels, upsample=upsample))
    return found


def _poses_in(model: PoseModel, crops: Sequence[Crop]) -> list[tuple[Crop, Pose | None]]:
    return [(crop, model.pose(crop.pixels)) for crop in crops]


def person_pose(number: int, crop: Crop, pose: Pose) -> PersonPose:
    """A pose found in a crop, its flags decided and its box in pixels of the frame."""
    visible = pose.points[pose.visibility >= VISIBLE]
    if len(visible) == 0:
        visible = pose.points
    x0, y0 = crop.origin
    low, high = visible.min(axis=0), visible.max(axis=0)
    box = (
        x0 + float(low[0]) * crop.scale,
        y0 + float(low[1]) * crop.scale,
        x0 + float(high[0]) * crop.scale,
        y0 + float(high[1]) * crop.scale,
    )
    flags = tuple(flag.value for flag in posture_flags(pose.points, pose.visibility))
    return PersonPose(number, crop.frame_sha256, box, flags, pose.score)


def _text_in(reader: PlateReader, crops: Sequence[Crop]) -> list[tuple[Crop, TextLine]]:
    return [(crop, line) for crop in crops for line in reader.read(crop.pixels)]

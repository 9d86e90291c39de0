"""A household's day, scripted: who comes to which camera when, and which of it should page.

Shared by the test (`test_household_day.py`, which replays the day through a real sidecar and a
real Home Assistant with the notification blueprint) and the benchmark (`bench/household_day.py`,
which runs that test and prints the day's table). It imports no Home Assistant and no sidecar
code: the photos are read from the sidecar environment's packages by path, and the frames are
drawn with Pillow.

The household: Anna (enrolled from a photo of her face and marked as a household member) and
Ben (never on a camera; only his phone's presence counts). Ben works nights: he is out until
07:00 and leaves again at 18:00. Anna is away until she comes home at 19:00; her phone says she
is home only after she is in. So at 03:00, and while Anna stands at the door, nobody is home.

The cameras are fixed, as real ones are: each has its usual view (a brick wall with a door, a
lawn, a gravel drive) and the people, the cat and the covered lens are what changes in front of
it. A very different picture on the same camera would be a moved camera (a tamper event).
Every frame carries the camera's time stamp in a corner, so no two frames are the same content.

Time: the frames' capture times (their files' modification times) are a real day, yesterday in
Home Assistant's time zone; the sidecar takes night and day from them. Its windows, incidents
and cooldowns run on its own clock, shortened for the replay (`SIDECAR_ENV`): one second of the
replay stands for one minute of the day (an incident ends after 2 s without activity, a cooldown
lasts 10 s). The replay therefore waits for an incident to end before the next step on its
camera, and waits out a camera's cooldown when the day has hours between two steps there.
Anna's enrolment (the prologue) is dated when it runs; it is not part of the day's table.
"""

from __future__ import annotations

import glob
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any, Final

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
SITE_PACKAGES_GLOB: Final = str(
    REPO_ROOT / ".venvs" / "sidecar" / "lib" / "python3*" / "site-packages"
)

# The sidecar's timing for the replay (one second stands for a minute of the day): a batch
# window of 90 s is 1.5 s, its idle close 30 s is 0.5 s, an incident's quiet gap of two minutes
# is 2 s, a ten-minute cooldown 10 s and the one-minute link between cameras 1 s.
INCIDENT_GAP_S: Final = 2.0
COOLDOWN_S: Final = 10.0
SIDECAR_ENV: Final = {
    "HSAI_BATCH_WINDOW_S": "1.5",
    "HSAI_BATCH_IDLE_S": "0.5",
    "HSAI_INCIDENT_GAP_S": str(INCIDENT_GAP_S),
    "HSAI_COOLDOWN_S": str(COOLDOWN_S),
    "HSAI_INCIDENT_LINK_S": "1",
}
# Minutes of the day one second of the replay stands for, on the sidecar's clock.
DAY_MINUTES_PER_SECOND: Final = 1.0

# The household's presence: `person` entities chosen in the entry's options.
ANNA: Final = "person.anna"
BEN: Final = "person.ben"
PRESENCE_PERSONS: Final = (ANNA, BEN)
HOUSEHOLD_MEMBER: Final = "Anna"

# Camera folders (upload folders: `<folder>/<Camera Name>/*.jpg`) and the ids they get.
FRONT_DOOR: Final = "Front Door"
GARDEN: Final = "Garden"
DRIVEWAY: Final = "Driveway"
HALLWAY: Final = "Hallway"
CAMERA_IDS: Final = {
    FRONT_DOOR: "front_door",
    GARDEN: "garden",
    DRIVEWAY: "driveway",
    HALLWAY: "hallway",
}
# The household's alert options, as a real household would choose them: the front door pages
# from high up (a daytime caller without an entry zone scores medium by the rules; a person at
# night is high by the rules' fail-safe); the blueprint keeps its default minimum (medium), so
# a low-risk animal does not page.
MIN_ALERT_LEVELS: Final = {"front_door": "high"}
BLUEPRINT_MINIMUM_LEVEL: Final = "medium"

FRAME_SIZE: Final = (1280, 720)


@dataclass(frozen=True, slots=True)
class Photo:
    """A real photo, found in the sidecar environment's packages or the tests' photos."""

    name: str
    pattern: str  # relative to site-packages, or to the repository when `in_repo`
    in_repo: bool = False

    def path(self) -> Path:
        if self.in_repo:
            return REPO_ROOT / self.pattern
        found = sorted(glob.glob(str(Path(SITE_PACKAGES_GLOB) / self.pattern)))
        if not found:
            raise FileNotFoundError(
                f"{self.pattern} is missing from the sidecar environment; "
                "run scripts/setup_sidecar_env first"
            )
        return Path(found[0])


PHOTOS: Final = {
    "grace_hopper": Photo("grace_hopper", "matplotlib/mpl-data/sample_data/grace_hopper.jpg"),
    "zidane": Photo("zidane", "ultralytics/assets/zidane.jpg"),
    "astronaut": Photo("astronaut", "skimage/data/astronaut.png"),
    "bus": Photo("bus", "ultralytics/assets/bus.jpg"),
    "chelsea": Photo("chelsea", "skimage/data/chelsea.png"),
    "brick": Photo("brick", "skimage/data/brick.png"),
    "grass": Photo("grass", "skimage/data/grass.png"),
    "gravel": Photo("gravel", "skimage/data/gravel.png"),
}


@dataclass(frozen=True, slots=True)
class Subject:
    """Who or what walks into a camera's view: a part of a photo, at a height in the frame."""

    who: str  # for the table
    photo: str
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in the photo's pixels
    height: int  # pixels in the frame
    mirrored: bool = False


SUBJECTS: Final = {
    # Anna: Grace Hopper's portrait. Enrolled from the hallway camera's frame of the whole
    # portrait; at the front door she is mirrored and framed differently, so the face is matched
    # by the embedding's distance, not by identical pixels.
    "anna_enrolment": Subject("Anna", "grace_hopper", (0, 0, 512, 600), 600),
    "anna": Subject("Anna", "grace_hopper", (24, 30, 500, 600), 560, mirrored=True),
    # The man on the right of ultralytics' zidane.jpg (his face is frontal).
    "stranger_1": Subject("stranger 1 (a man)", "zidane", (690, 0, 1200, 720), 620),
    # The astronaut of scikit-image, head and shoulders (below, dlib takes her mission patch for
    # a second face).
    "stranger_2": Subject("stranger 2 (a woman)", "astronaut", (40, 0, 420, 300), 520),
    # The man in the beige coat in ultralytics' bus.jpg, walking: the courier.
    "courier": Subject("a courier", "bus", (30, 380, 250, 910), 620),
    "cat": Subject("a cat", "chelsea", (0, 0, 451, 300), 300),
}


def cast() -> dict[str, str]:
    """Who is played by which photo, for the record."""
    return {
        key: f"{Path(PHOTOS[subject.photo].pattern).name} {list(subject.box)}"
        + (" mirrored" if subject.mirrored else "")
        for key, subject in SUBJECTS.items()
    }


@dataclass(frozen=True, slots=True)
class Scene:
    """A camera's usual view, and where a subject stands in it."""

    texture: str
    tint: tuple[float, float, float]  # RGB multipliers of the grey texture
    subject_x: int  # centre of the subject, in frame pixels
    subject_bottom: int
    door: bool = False


SCENES: Final = {
    FRONT_DOOR: Scene("brick", (1.0, 0.62, 0.5), 640, 720, door=True),
    GARDEN: Scene("grass", (0.55, 0.9, 0.45), 700, 660),
    DRIVEWAY: Scene("gravel", (0.9, 0.88, 0.8), 640, 720),
    HALLWAY: Scene("brick", (0.9, 0.9, 0.85), 640, 720),
}


@dataclass(frozen=True, slots=True)
class Shot:
    """One frame of a step: its offset from the step's time, and what is in view."""

    seconds: int = 0
    subject: str | None = None  # a key of SUBJECTS; None: the usual view
    dx: int = 0  # the subject moved this far to the side
    covered: bool = False  # the lens is covered: a black frame


@dataclass(frozen=True, slots=True)
class Step:
    """One moment of the day on one camera, and whether it should page someone."""

    key: str
    clock: time  # local time of its first frame
    camera: str  # the folder, e.g. "Front Door"
    what: str
    shots: tuple[Shot, ...]
    expect_page: bool
    why: str  # why it should (not) page
    presence: Mapping[str, str] = field(default_factory=dict)  # person entity -> state
    # For a step that does not page: the household's reason the event gives, when it is the
    # household's rules that hold it back (None: another reason, e.g. the blueprint's minimum).
    expect_reason: str | None = None

    @property
    def camera_id(self) -> str:
        return CAMERA_IDS[self.camera]


def _in_view(subject: str, count: int, step_s: int = 4, dx: int = 30) -> tuple[Shot, ...]:
    """Someone (or something) in view for a few frames, moving a little."""
    return tuple(Shot(i * step_s, subject, i * dx) for i in range(count))


# Before the day: Anna is seen on the hallway camera, and enrolled from that event.
PROLOGUE: Final = Step(
    "enrolment",
    time(0, 0),
    HALLWAY,
    "Anna on the hallway camera, to enrol her face",
    (Shot(0, "anna_enrolment"),),
    expect_page=False,
    why="before the day (not counted)",
)

DAY: Final = (
    Step(
        "usual_views",
        time(0, 0),
        "",
        "each camera's usual view (front door, garden, driveway)",
        (),
        expect_page=False,
        why="nothing in view",
        presence={ANNA: "not_home", BEN: "not_home"},
    ),
    Step(
        "stranger_1",
        time(3, 0),
        FRONT_DOOR,
        "a stranger at the front door, nobody home",
        _in_view("stranger_1", 3),
        expect_page=True,
        why="a person at night (high), nobody home (critical); its updates replace it",
    ),
    Step(
        "stranger_2",
        time(3, 5),
        FRONT_DOOR,
        "a different stranger, five minutes later",
        _in_view("stranger_2", 2),
        expect_page=True,
        why="another face: the first stranger's cooldown does not hold them",
    ),
    Step(
        "courier",
        time(11, 0),
        FRONT_DOOR,
        "a courier at the door by day, Ben home",
        _in_view("courier", 2),
        expect_page=False,
        why="a daytime person without an entry zone is medium; the door pages from high",
        presence={BEN: "home"},
        expect_reason="below_minimum_level",
    ),
    Step(
        "driveway_covered",
        time(15, 0),
        DRIVEWAY,
        "the driveway camera covered (black frames)",
        (Shot(0, covered=True), Shot(5, covered=True)),
        expect_page=True,
        why="a covered camera is a tamper event (high), reported once",
    ),
    Step(
        "anna_home",
        time(19, 0),
        FRONT_DOOR,
        "Anna comes home, Ben gone to work",
        _in_view("anna", 2),
        expect_page=False,
        why=(
            "only a household member, recognised by face (nobody home yet: her phone has not "
            "told; medium raised to high, which the door would page for)"
        ),
        presence={BEN: "not_home"},
        expect_reason="household",
    ),
    Step(
        "cat",
        time(23, 30),
        GARDEN,
        "a cat in the garden at night, Anna home",
        _in_view("cat", 2, step_s=5, dx=-40),
        expect_page=False,
        why="an animal at night is low, below the blueprint's minimum",
        presence={ANNA: "home"},
    ),
)

# The usual views, sent before anything happens (each camera's first frame is its reference).
USUAL_VIEW_CAMERAS: Final = (FRONT_DOOR, GARDEN, DRIVEWAY)


def day_of_replay(now: datetime) -> date:
    """The day replayed: yesterday, so that no capture time lies in the future."""
    return (now - timedelta(days=1)).date()


def capture_time(day: date, step: Step, shot: Shot, zone: tzinfo) -> datetime:
    return datetime.combine(day, step.clock, tzinfo=zone) + timedelta(seconds=shot.seconds)


# ---- Frames --------------------------------------------------------------------------------

_cache: dict[str, Any] = {}


def _image(name: str) -> Any:
    from PIL import Image

    if name not in _cache:
        with Image.open(PHOTOS[name].path()) as opened:
            _cache[name] = opened.convert("RGB")
    return _cache[name]


def _usual_view(camera: str) -> Any:
    """The camera's view with nobody in it: its texture tiled and tinted (and a door)."""
    from PIL import Image, ImageDraw

    key = f"view:{camera}"
    if key in _cache:
        return _cache[key]
    scene = SCENES[camera]
    texture = _image(scene.texture).convert("L")
    grey = Image.new("L", FRAME_SIZE)
    for x in range(0, FRAME_SIZE[0], texture.width):
        for y in range(0, FRAME_SIZE[1], texture.height):
            grey.paste(texture, (x, y))
    view = Image.merge(
        "RGB", [grey.point(lambda v, m=m: min(255, int(v * m))) for m in scene.tint]
    )
    if scene.door:
        draw = ImageDraw.Draw(view)
        draw.rectangle((470, 90, 810, 720), fill=(235, 228, 210))
        draw.rectangle((500, 120, 780, 720), fill=(70, 45, 30))
        draw.ellipse((735, 420, 755, 440), fill=(200, 170, 60))
    _cache[key] = view
    return view


def frame_jpeg(camera: str, shot: Shot, when: datetime) -> bytes:
    """One frame of the camera as its upload would hold it (JPEG), time-stamped."""
    import numpy as np
    from PIL import Image, ImageDraw

    if shot.covered:
        # A covered lens: black, with the sensor's noise (no time stamp: the camera's overlay
        # is part of the picture the lens no longer sees in this camera model).
        seed = int(when.timestamp())
        noise = np.random.default_rng(seed).integers(0, 4, (FRAME_SIZE[1], FRAME_SIZE[0], 3))
        picture = Image.fromarray(noise.astype(np.uint8), "RGB")
    else:
        picture = _usual_view(camera).copy()
        if shot.subject is not None:
            subject = SUBJECTS[shot.subject]
            part = _image(subject.photo).crop(subject.box)
            if subject.mirrored:
                part = part.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            width = round(part.width * subject.height / part.height)
            part = part.resize((width, subject.height), Image.Resampling.LANCZOS)
            scene = SCENES[camera]
            left = scene.subject_x + shot.dx - width // 2
            picture.paste(part, (left, scene.subject_bottom - subject.height))
        draw = ImageDraw.Draw(picture)
        stamp = f"{when:%Y-%m-%d %H:%M:%S}  {camera}"
        draw.rectangle((0, 0, 8 + 7 * len(stamp), 22), fill=(0, 0, 0))
        draw.text((6, 5), stamp, fill=(255, 255, 255))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90)
    return out.getvalue()


def write_frames(
    uploads: Path, camera: str, shots: Iterable[tuple[Shot, datetime]]
) -> list[Path]:
    """Write the frames into the camera's upload folder, each file dated by its capture time."""
    folder = uploads / camera
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for shot, when in shots:
        path = folder / f"{when:%Y%m%d-%H%M%S}.jpg"
        path.write_bytes(frame_jpeg(camera, shot, when))
        stamp = when.timestamp()
        os.utime(path, (stamp, stamp))
        written.append(path)
    return written


# ---- What happened, and how it compares ----------------------------------------------------


def new_pages(
    notifications: Sequence[Mapping[str, Any]], seen_tags: set[str]
) -> tuple[list[str], list[str]]:
    """The tags of the notifications that are new on the phone (pages), and of those that
    replace a notification with the same tag, in order. `seen_tags` is updated."""
    pages, replaced = [], []
    for notification in notifications:
        tag = str(notification.get("tag"))
        (replaced if tag in seen_tags else pages).append(tag)
        seen_tags.add(tag)
    return pages, replaced


def score(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Precision and recall of the day's pages: each step should page once or not at all."""
    expected = sum(1 for row in rows if row["expect_page"])
    paged = sum(len(row["pages"]) for row in rows)
    correct = sum(min(len(row["pages"]), 1) for row in rows if row["expect_page"])
    return {
        "expected_pages": expected,
        "pages": paged,
        "correct_pages": correct,
        "precision": correct / paged if paged else None,
        "recall": correct / expected if expected else None,
    }


COLUMNS: Final = ("time", "camera", "what", "expected page?", "paged?", "notification tag")


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The day side by side: what should have paged and what did."""
    lines = []
    for row in rows:
        pages = row["pages"]
        replaced = row.get("replaced", [])
        tags = ", ".join(tag[:8] for tag in pages) or "-"
        if replaced:
            tags += f" (+{len(replaced)} replacing {', '.join(t[:8] for t in replaced)})"
        lines.append((
            row["time"],
            row["camera"] or "all",
            row["what"],
            "page" if row["expect_page"] else "no page",
            f"{len(pages)} page{'s' if len(pages) != 1 else ''}" if pages else "no page",
            tags,
        ))
    widths = [
        max(len(str(item)) for item in column) for column in zip(COLUMNS, *lines, strict=False)
    ]

    def fmt(items: Sequence[Any]) -> str:
        return "  ".join(str(item).ljust(width) for item, width in zip(items, widths, strict=True))
    out = [fmt(COLUMNS), fmt(["-" * width for width in widths])]
    out.extend(fmt(line) for line in lines)
    return "\n".join(out)

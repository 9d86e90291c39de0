"""One vocabulary: the baseline, the rules and the prompt group labels and zones alike."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gpu_server.files import atomic_write
from gpu_server.vocabulary import (
    RISK_ZONE_KIND,
    LabelGroup,
    RiskLevel,
    RiskZoneKind,
    ZoneKind,
    label_group,
    level_for_score,
)


@pytest.mark.parametrize(
    ("label", "group"),
    [
        ("person", LabelGroup.PERSON),
        ("Face", LabelGroup.PERSON),
        (" pedestrian ", LabelGroup.PERSON),
        ("train", LabelGroup.VEHICLE),
        ("airplane", LabelGroup.VEHICLE),
        ("scooter", LabelGroup.VEHICLE),
        ("vehicle", LabelGroup.VEHICLE),
        ("giraffe", LabelGroup.ANIMAL),
        ("animal", LabelGroup.ANIMAL),
        ("umbrella", LabelGroup.OTHER),
    ],
)
def test_every_label_has_one_group(label: str, group: LabelGroup) -> None:
    assert label_group(label) is group


def test_every_configured_zone_kind_but_ignore_reaches_the_risk() -> None:
    assert set(RISK_ZONE_KIND) == set(ZoneKind) - {ZoneKind.IGNORE}
    assert set(RISK_ZONE_KIND.values()) == set(RiskZoneKind)


def test_levels_cover_every_score() -> None:
    assert [level_for_score(score) for score in (0, 30, 60, 85)] == [
        RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.CRITICAL,
    ]
    with pytest.raises(ValueError, match="outside"):
        level_for_score(101)


def test_atomic_write_replaces_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "file.json"
    atomic_write(path, "old")
    atomic_write(path, b"new")
    assert path.read_text(encoding="utf-8") == "new"
    assert [p.name for p in path.parent.iterdir()] == ["file.json"]


def test_a_private_file_is_the_owners_only(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    stale = tmp_path / f".secret.{os.getpid()}.0.tmp"
    stale.write_text("left by a crash")
    atomic_write(path, "token", private=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


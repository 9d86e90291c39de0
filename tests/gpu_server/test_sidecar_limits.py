"""The sidecar's and the integration's vocabularies agree: limits, zone kinds, risk levels.

Each side keeps its own `vocabulary.py` (the integration cannot import the sidecar); they are
read here as source, so neither side's dependencies are needed.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SIDECAR = REPO / "gpu_server" / "vocabulary.py"
INTEGRATION = REPO / "custom_components" / "home_security_ai" / "vocabulary.py"


def constants(path: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id.startswith("MAX_")
        ):
            assert node.value is not None
            # Our own source, with arithmetic such as 4 * 1024 * 1024: evaluate the expression.
            expression = compile(ast.Expression(node.value), str(path), "eval")
            found[node.target.id] = int(eval(expression))
    return found


def test_both_sides_have_the_same_limits() -> None:
    sidecar, integration = constants(SIDECAR), constants(INTEGRATION)
    assert sidecar
    assert sidecar == integration


def test_the_sidecar_code_uses_its_limits() -> None:
    from gpu_server import vocabulary
    from gpu_server.context import zones

    assert zones.MAX_ZONES_PER_CAMERA == vocabulary.MAX_ZONES_PER_CAMERA
    assert zones.MAX_POINTS_PER_ZONE == vocabulary.MAX_POINTS_PER_ZONE
    assert constants(SIDECAR)["MAX_CAMERAS"] == vocabulary.MAX_CAMERAS


def test_both_sides_name_the_same_zone_kinds_and_risk_levels() -> None:
    from gpu_server.vocabulary import LEVEL_FLOORS, RiskLevel, ZoneKind

    found: dict[str, object] = {}
    for node in ast.parse(INTEGRATION.read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id.startswith(("ZONE_KINDS", "RISK_"))
        ):
            assert node.value is not None
            found[node.target.id] = ast.literal_eval(node.value)
    assert found["ZONE_KINDS"] == tuple(kind.value for kind in ZoneKind)
    assert found["RISK_LEVELS"] == tuple(level.value for level in RiskLevel)
    floors = {level: floor for floor, level in LEVEL_FLOORS}
    assert found["RISK_SCORE_MEDIUM"] == floors[RiskLevel.MEDIUM]
    assert found["RISK_SCORE_HIGH"] == floors[RiskLevel.HIGH]
    assert found["RISK_SCORE_CRITICAL"] == floors[RiskLevel.CRITICAL]


def test_both_sides_know_the_same_person_labels() -> None:
    from gpu_server.vocabulary import PERSON_LABELS

    for node in ast.parse(INTEGRATION.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "PERSON_LABELS":
            assert node.value is not None
            assert set(ast.literal_eval(node.value)) == PERSON_LABELS
            return
    raise AssertionError("the integration's vocabulary has no PERSON_LABELS")


def _label_tuples(path: Path) -> dict[str, set[str]]:
    """The module's label tuples by name: literal ones, and those made of others (`*NAMES`)."""
    found: dict[str, set[str]] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if not (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id.endswith("_LABELS")
            and isinstance(node.value, ast.Tuple)
        ):
            continue
        labels: set[str] = set()
        for item in node.value.elts:
            if isinstance(item, ast.Starred):
                assert isinstance(item.value, ast.Name)
                labels |= found[item.value.id]
            else:
                labels.add(ast.literal_eval(item))
        found[node.target.id] = labels
    return found


def test_both_sides_know_the_same_other_findings() -> None:
    from gpu_server.vocabulary import ANIMAL_LABELS, VEHICLE_LABELS

    found = _label_tuples(INTEGRATION)
    assert found.get("VEHICLE_LABELS") == VEHICLE_LABELS
    assert found.get("ANIMAL_LABELS") == ANIMAL_LABELS
    assert found.get("OTHER_FINDING_LABELS") == VEHICLE_LABELS | ANIMAL_LABELS

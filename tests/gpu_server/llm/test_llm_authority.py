"""What a language model may do follows its measured quality: judge, narrate or off."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from llm_testlib import llm_settings
from testlib.analysis_cases import load_cases, order_agreement

from gpu_server.llm.authority import (
    BUILTIN_RECORDS,
    RECORDS_FOLDER,
    Authority,
    QualityRecord,
    decide,
    find_record,
    load_records,
    record_file_name,
)
from gpu_server.llm.inputs import AnalysisInput
from gpu_server.llm.schema import Assessment
from gpu_server.llm.service import LanguageModelState
from gpu_server.risk.analysis import RiskAnalysis, bounded, narrated
from gpu_server.risk.rules import assess_with_rules
from gpu_server.vocabulary import RiskLevel

MakeInput = Callable[..., AnalysisInput]


def _record(**values: object) -> QualityRecord:
    base: dict[str, object] = {
        "model": "m.gguf", "cases": 40, "valid": 40, "narration_kept": 40,
        "judgement_kept": 40, "order_agreement": 0.9,
    }
    base.update(values)
    return QualityRecord.model_validate(base)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, Authority.JUDGE),
        ({"order_agreement": 0.7}, Authority.NARRATE),
        ({"judgement_kept": 20}, Authority.NARRATE),
        ({"narration_kept": 20}, Authority.OFF),
        ({"valid": 30}, Authority.OFF),
    ],
)
def test_the_measured_quality_decides(values: dict[str, object], expected: Authority) -> None:
    decision = decide(_record(**values))
    assert decision.authority is expected
    assert decision.reason.startswith({"judge": "judges", "narrate": "narrates", "off": "off"}[
        expected.value
    ])
    assert "measured on 40 cases" in decision.reason


def test_records_are_found_by_name_and_size_and_the_data_folder_wins(tmp_path: Path) -> None:
    shipped = tmp_path / "shipped"
    saved = tmp_path / "saved"
    for folder, order in ((shipped, 0.5), (saved, 0.95)):
        folder.mkdir()
        record = _record(model="a.gguf", size_bytes=10, order_agreement=order)
        (folder / record_file_name("a.gguf")).write_text(record.model_dump_json())
    (saved / "broken.json").write_text("{not json")
    records = load_records(shipped, saved)
    found = find_record(records, "a.gguf", 10)
    assert found is not None
    assert found.order_agreement == 0.95
    assert find_record(records, "a.gguf", 11) is None  # another file of the same name
    assert find_record(records, "b.gguf", 10) is None


def test_every_shipped_record_is_readable() -> None:
    paths = sorted(BUILTIN_RECORDS.glob("*.json"))
    assert paths, "the sidecar ships the records of the models it knows"
    for path in paths:
        QualityRecord.model_validate(json.loads(path.read_text()))


def test_a_judge_is_held_within_its_bound_and_a_narrator_to_the_rules(
    make_input: MakeInput,
) -> None:
    analysis = make_input()
    rules = assess_with_rules(analysis, "test")
    answer = Assessment(
        risk_score=5, risk_level=RiskLevel.LOW, summary="s", reasoning="r",
        recommended_action="a", model="m",
    )
    held = bounded(answer, rules, 15)
    assert held.risk_score == max(0, rules.risk_score - 15)
    told = narrated(answer, rules)
    assert (told.risk_score, told.risk_level, told.summary) == (
        rules.risk_score, rules.risk_level, "s",
    )


def _measured_too_weak(tiny_gguf: Path, data_dir: Path) -> Path:
    """A models folder with the tiny model as weak.gguf, and a record saying it is weak."""
    models = data_dir / "models"
    models.mkdir()
    model = models / "weak.gguf"
    model.write_bytes(tiny_gguf.read_bytes())
    folder = data_dir / RECORDS_FOLDER
    folder.mkdir(parents=True)
    weak = _record(model="weak.gguf", size_bytes=model.stat().st_size, narration_kept=3)
    (folder / record_file_name("weak.gguf")).write_text(weak.model_dump_json())
    return models


async def test_a_model_measured_too_weak_is_never_started(
    tiny_gguf: Path, tmp_path: Path, make_input: MakeInput
) -> None:
    """A record in the data folder says the model is off: no model server, no waiting, the
    rules' assessment as the chosen one (not a fallback), and the status says why."""
    models = _measured_too_weak(tiny_gguf, tmp_path)

    service = RiskAnalysis(
        llm_settings(authority="auto", model="weak.gguf"), models, data_dir=tmp_path
    )
    await service.start()
    try:
        assert service.server is None
        status = service.status()
        assert status.state is LanguageModelState.OFF
        assert status.authority is Authority.OFF
        assert status.reason.startswith("weak.gguf off: measured on 40 cases")
        analysis = make_input()
        assessment = await service.assess(analysis)
    finally:
        await service.close()
    assert assessment.model == "rules"
    assert not assessment.fallback
    assert assessment.risk_score == assess_with_rules(analysis, "test").risk_score
    assert service.status().fallbacks == 0


def test_an_unmeasured_model_narrates(tiny_gguf: Path, tmp_path: Path) -> None:
    service = RiskAnalysis(
        llm_settings(authority="auto", model=str(tiny_gguf)), tmp_path, data_dir=tmp_path
    )
    decision = service.model._decide_authority(tiny_gguf.name, tiny_gguf.stat().st_size)
    assert decision.authority is Authority.NARRATE
    assert "not measured yet" in decision.reason


def test_the_labelled_cases_hold_every_tier_and_the_rules_order_them() -> None:
    cases = load_cases()
    assert len(cases) >= 30
    assert {case.tier for case in cases} == {1, 2, 3, 4, 5}
    assert len({case.case_id for case in cases}) == len(cases)
    tiers = [case.tier for case in cases]
    rules = [float(assess_with_rules(case.analysis, "t").risk_score) for case in cases]
    # The rules are the baseline any model is measured against: far better than chance.
    assert order_agreement(tiers, rules) > 0.7
    assert order_agreement(tiers, [1.0] * len(cases)) == 0.5
    assert order_agreement(tiers, [None] * len(cases)) == 0.0
    assert order_agreement(tiers, [float(tier) for tier in tiers]) == 1.0

"""What an analysis is told of the household's verdicts on the camera's earlier events.

Two kinds of case go into the prompt and the rules: this window's own cases at this hour of
the week that have been judged before (calibrated or not), and the cases of the camera's last
few false alarms, whenever they were. The household's own words about what it really was go
in as untrusted text, like text read from an image.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from gpu_server.core.clock import hour_of_week
from gpu_server.feedback.calibration import Calibration, CaseRecord, Finding
from gpu_server.llm.inputs import HOUSEHOLD_SOURCE, AnalysisInput, FeedbackInput, UntrustedText
from gpu_server.vocabulary import label_group

RECENT_FALSE_ALARMS: Final = 3
MAX_FEEDBACK_LINES: Final = 10


def finding_of(label: str, zone: str | None) -> Finding:
    return Finding(label_group(label).value, zone or "")


def _as_input(record: CaseRecord) -> FeedbackInput:
    return FeedbackInput(
        label=record.finding.label,
        zone=record.finding.zone or None,
        hour_of_week=record.hour_of_week,
        false_alarms=record.false_alarms,
        confirmed=record.confirmed,
        calibrated=record.calibrated,
    )


def with_feedback(analysis: AnalysisInput, calibration: Calibration) -> AnalysisInput:
    """The analysis with the verdicts that bear on it."""
    hour = hour_of_week(analysis.local_time)
    findings: Iterable[Finding] = {
        finding_of(detection.label, detection.zone) for detection in analysis.detections
    }
    records = calibration.cases_for(analysis.camera_id, findings, hour)
    recent = calibration.recent_false_alarms(analysis.camera_id, RECENT_FALSE_ALARMS)
    for item in recent:
        records += [
            calibration.case(analysis.camera_id, finding, item.hour_of_week)
            for finding in item.findings
        ]
    unique = list(dict.fromkeys(records))[:MAX_FEEDBACK_LINES]
    notes = tuple(
        UntrustedText(source=HOUSEHOLD_SOURCE, text=item.what) for item in recent if item.what
    )
    if not unique and not notes:
        return analysis
    return analysis.model_copy(
        update={
            "feedback": tuple(_as_input(record) for record in unique),
            "untrusted_texts": analysis.untrusted_texts + notes,
        }
    )

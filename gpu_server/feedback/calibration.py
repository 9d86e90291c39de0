"""Calibration: what the household's verdicts say about a camera's recurring cases.

A case is one kind of object in one zone at one hour of the week on one camera ("a person in
the Driveway on Tuesdays at 07:00"). Once a case has been marked a false alarm `after` times
more than it was confirmed, within the last `window_s`, it is calibrated: the rules lower its
risk and the prompt says so. Only verdicts count; nothing is learned from silence.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from gpu_server.vocabulary import RiskLevel


class Verdict(StrEnum):
    FALSE_ALARM = "false_alarm"
    CORRECT = "correct"


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """One kind of object ("person", "vehicle", ...) in one zone ("" for none)."""

    label: str
    zone: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventCase:
    """What an event was about, kept so a later verdict can be attributed to its cases."""

    event_id: str
    camera_id: str
    hour_of_week: int
    findings: tuple[Finding, ...]
    summary: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Feedback:
    """The household's verdict on one event."""

    event_id: str
    camera_id: str
    verdict: Verdict
    at_ms: int
    hour_of_week: int
    findings: tuple[Finding, ...]
    actual_level: RiskLevel | None = None
    what: str = ""  # the household's own words: untrusted text
    summary: str = ""  # the event's summary, to recall it by


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseRecord:
    """How one case of a camera has been judged so far."""

    finding: Finding
    hour_of_week: int
    false_alarms: int
    confirmed: int
    calibrated: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraCounts:
    false_alarms: int
    confirmed: int
    calibrated_cases: int


_Key = tuple[str, Finding, int]  # camera, finding, hour of the week


class Calibration:
    """The verdicts of the last `window_s`, counted per case. Rebuilt when a verdict comes."""

    def __init__(
        self, feedback: Iterable[Feedback], *, after: int, window_s: float, now_ms: int
    ) -> None:
        self.after = after
        oldest = now_ms - int(window_s * 1000)
        self._feedback = sorted(
            (item for item in feedback if item.at_ms >= oldest), key=lambda item: item.at_ms
        )
        self._false: Counter[_Key] = Counter()
        self._confirmed: Counter[_Key] = Counter()
        for item in self._feedback:
            counter = self._false if item.verdict is Verdict.FALSE_ALARM else self._confirmed
            for finding in set(item.findings):
                counter[(item.camera_id, finding, item.hour_of_week)] += 1

    def case(self, camera_id: str, finding: Finding, hour: int) -> CaseRecord:
        key = (camera_id, finding, hour)
        false_alarms, confirmed = self._false[key], self._confirmed[key]
        return CaseRecord(
            finding=finding,
            hour_of_week=hour,
            false_alarms=false_alarms,
            confirmed=confirmed,
            calibrated=false_alarms - confirmed >= self.after,
        )

    def cases_for(
        self, camera_id: str, findings: Iterable[Finding], hour: int
    ) -> list[CaseRecord]:
        """The judged cases among these findings at this hour (unjudged ones left out)."""
        records = [self.case(camera_id, finding, hour) for finding in sorted(set(findings))]
        return [record for record in records if record.false_alarms or record.confirmed]

    def recent_false_alarms(self, camera_id: str, limit: int) -> list[Feedback]:
        """The camera's last false alarms, newest first."""
        found = [
            item
            for item in reversed(self._feedback)
            if item.camera_id == camera_id and item.verdict is Verdict.FALSE_ALARM
        ]
        return found[:limit]

    def counts(self) -> dict[str, CameraCounts]:
        """Verdicts and calibrated cases per camera."""
        false_alarms: Counter[str] = Counter()
        confirmed: Counter[str] = Counter()
        for item in self._feedback:
            target = false_alarms if item.verdict is Verdict.FALSE_ALARM else confirmed
            target[item.camera_id] += 1
        calibrated: Counter[str] = Counter(
            camera
            for (camera, finding, hour) in self._false
            if self.case(camera, finding, hour).calibrated
        )
        return {
            camera: CameraCounts(
                false_alarms=false_alarms[camera],
                confirmed=confirmed[camera],
                calibrated_cases=calibrated[camera],
            )
            for camera in sorted(set(false_alarms) | set(confirmed))
        }

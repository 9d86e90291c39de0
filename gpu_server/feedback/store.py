"""The household's verdicts and the cases they judge, kept in SQLite under the data folder.

Every security event leaves a small case record (camera, hour of the week, what was found in
which zone) for `case_retention_s`, because the event itself leaves the outbox once Home
Assistant has stored it, while a "false alarm" may come hours later from a notification.
Verdicts are few and kept for the calibration window; they are also held in memory, so the
analysis reads its calibration without touching the disk.

SQLite calls block: they run on one dedicated thread, which also owns the connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from gpu_server.errors import UnknownEventError
from gpu_server.feedback.calibration import (
    Calibration,
    EventCase,
    Feedback,
    Finding,
    Verdict,
)
from gpu_server.vocabulary import RiskLevel

_LOGGER = logging.getLogger(__name__)

FEEDBACK_FILE: Final = "feedback.sqlite3"
WHAT_MAX_CHARS: Final = 200
# Cases are pruned on every this many records, not on each.
_PRUNE_EVERY: Final = 500

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS cases (
    event_id TEXT PRIMARY KEY,
    camera_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    hour_of_week INTEGER NOT NULL,
    findings TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cases_by_time ON cases (at_ms);
CREATE TABLE IF NOT EXISTS feedback (
    event_id TEXT PRIMARY KEY,
    camera_id TEXT NOT NULL,
    verdict TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    hour_of_week INTEGER NOT NULL,
    findings TEXT NOT NULL,
    actual_level TEXT,
    what TEXT NOT NULL,
    summary TEXT NOT NULL
);
"""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FeedbackSettings:
    # A case is calibrated after this many more false alarms than confirmations.
    calibrate_after: int = 3
    # Verdicts older than this no longer count.
    window_s: float = 90 * 86_400.0
    # How long an event can still be judged.
    case_retention_s: float = 30 * 86_400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackOutcome:
    camera_id: str
    false_alarms: int  # the most for any one of the event's cases
    calibrated: bool  # whether one of the event's cases is now calibrated


def _findings_json(findings: tuple[Finding, ...]) -> str:
    return json.dumps([[finding.label, finding.zone] for finding in findings])


def _findings(text: str) -> tuple[Finding, ...]:
    return tuple(Finding(str(label), str(zone)) for label, zone in json.loads(text))


class FeedbackStore:
    """`open()` before use, `close()` at the end. Methods are coroutines; the loop never blocks."""

    def __init__(
        self,
        path: Path,
        settings: FeedbackSettings,
        *,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.path = path
        self.settings = settings
        self._now_ms = now_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedback")
        self._db: sqlite3.Connection | None = None
        self._feedback: list[Feedback] = []
        self._recorded = 0
        self.calibration = self._calibrate()

    def _calibrate(self) -> Calibration:
        return Calibration(
            self._feedback,
            after=self.settings.calibrate_after,
            window_s=self.settings.window_s,
            now_ms=self._now_ms(),
        )

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the feedback store is not open")
        return self._db

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        self._feedback = await self._run(self._open_sync)
        self.calibration = self._calibrate()

    def _open_sync(self) -> list[Feedback]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
        self._db = db
        oldest = self._now_ms() - int(self.settings.window_s * 1000)
        db.execute("DELETE FROM feedback WHERE at_ms < ?", (oldest,))
        rows = db.execute(
            "SELECT event_id, camera_id, verdict, at_ms, hour_of_week, findings, actual_level,"
            " what, summary FROM feedback ORDER BY at_ms"
        ).fetchall()
        return [self._feedback_from_row(row) for row in rows]

    @staticmethod
    def _feedback_from_row(row: tuple[Any, ...]) -> Feedback:
        event_id, camera_id, verdict, at_ms, hour, findings, level, what, summary = row
        return Feedback(
            event_id=event_id,
            camera_id=camera_id,
            verdict=Verdict(verdict),
            at_ms=int(at_ms),
            hour_of_week=int(hour),
            findings=_findings(findings),
            actual_level=RiskLevel(level) if level else None,
            what=what,
            summary=summary,
        )

    async def close(self) -> None:
        def close_sync() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        try:
            await self._run(close_sync)
        finally:
            self._executor.shutdown(wait=True)

    # -- cases -----------------------------------------------------------------------------

    async def record(self, case: EventCase) -> None:
        """Keep what an event was about, so it can be judged later (from now on)."""
        self._recorded += 1
        prune = self._recorded % _PRUNE_EVERY == 1
        now_ms = self._now_ms()

        def write() -> None:
            db = self._conn()
            db.execute(
                "INSERT OR REPLACE INTO cases VALUES (?, ?, ?, ?, ?, ?)",
                (
                    case.event_id,
                    case.camera_id,
                    now_ms,
                    case.hour_of_week,
                    _findings_json(case.findings),
                    case.summary,
                ),
            )
            if prune:
                oldest = now_ms - int(self.settings.case_retention_s * 1000)
                db.execute("DELETE FROM cases WHERE at_ms < ?", (oldest,))

        await self._run(write)

    # -- verdicts --------------------------------------------------------------------------

    async def give(
        self,
        event_id: str,
        verdict: Verdict,
        *,
        actual_level: RiskLevel | None = None,
        what: str = "",
    ) -> FeedbackOutcome:
        """Store the household's verdict on an event (a second one replaces the first)."""
        at_ms = self._now_ms()
        what = what.strip()[:WHAT_MAX_CHARS]

        def write() -> Feedback:
            db = self._conn()
            row = db.execute(
                "SELECT camera_id, hour_of_week, findings, summary FROM cases WHERE event_id = ?",
                (event_id,),
            ).fetchone()
            if row is None:
                raise UnknownEventError(
                    f"no event {event_id[:64]!r} to give feedback on: the server never made it, "
                    "or it is older than the feedback retention"
                )
            camera_id, hour, findings, summary = row
            item = Feedback(
                event_id=event_id,
                camera_id=camera_id,
                verdict=verdict,
                at_ms=at_ms,
                hour_of_week=int(hour),
                findings=_findings(findings),
                actual_level=actual_level,
                what=what,
                summary=summary,
            )
            db.execute(
                "INSERT OR REPLACE INTO feedback VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item.event_id,
                    item.camera_id,
                    item.verdict.value,
                    item.at_ms,
                    item.hour_of_week,
                    findings,
                    actual_level.value if actual_level is not None else None,
                    item.what,
                    item.summary,
                ),
            )
            return item

        item = await self._run(write)
        self._feedback = [old for old in self._feedback if old.event_id != event_id] + [item]
        self.calibration = self._calibrate()
        records = [
            self.calibration.case(item.camera_id, finding, item.hour_of_week)
            for finding in item.findings
        ]
        _LOGGER.info(
            "Feedback on event %s of %s: %s", event_id[:8], item.camera_id, verdict.value
        )
        return FeedbackOutcome(
            camera_id=item.camera_id,
            false_alarms=max((record.false_alarms for record in records), default=0),
            calibrated=any(record.calibrated for record in records),
        )

"""The persisted, bounded, acknowledged outbox of security events (SQLite under the data dir).

An event and the hashes of the frames it covers are written in one transaction, so after any
crash a frame is either covered by a stored event or not at all. Covered-frame rows outlive the
ack for a retention period, so a frame resent after its event was acknowledged is still
recognised as a duplicate. Where this sits in the delivery protocol: `docs/delivery.md`.

Events are stored as the bytes an `EventCodec` makes of them; the server gives the contract's
encoding, the one every existing database holds.

SQLite calls are blocking and run on one dedicated thread, which also owns the connection.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Final, Protocol, TypeVar

from gpu_server.errors import StaleCursorError
from gpu_server.events.model import SecurityEvent

_LOGGER = logging.getLogger(__name__)

OUTBOX_FILE: Final = "events.sqlite3"
READ_BATCH: Final = 100

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS events (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS covered_frames (
    sha256 TEXT PRIMARY KEY,
    sequence INTEGER NOT NULL,
    covered_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS covered_frames_by_sequence ON covered_frames (sequence);
CREATE INDEX IF NOT EXISTS covered_frames_by_time ON covered_frames (covered_at_ms);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

T = TypeVar("T")


class EventCodec(Protocol):
    def encode(self, event: SecurityEvent) -> bytes: ...

    def decode(self, payload: bytes) -> SecurityEvent: ...


def _rollback(db: sqlite3.Connection) -> None:
    """Roll back what is still open: SQLite itself rolls back on some errors (SQLITE_FULL),
    and a ROLLBACK then would raise and hide the real error."""
    if db.in_transaction:
        db.execute("ROLLBACK")


class Outbox:
    """`open()` before use, `close()` at the end. Methods are coroutines; the loop never blocks."""

    def __init__(
        self,
        path: Path,
        *,
        codec: EventCodec,
        max_events: int,
        retention_s: float = 86_400.0,
        max_covered_rows: int = 500_000,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.path = path
        self._codec = codec
        self.max_events = max_events
        self._retention_ms = int(retention_s * 1000)
        self._max_covered_rows = max_covered_rows
        self._now_ms = now_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._db: sqlite3.Connection | None = None
        self.closed = False  # set by close(): nothing can be stored any more
        self._depth = 0
        self._last_sequence = 0
        self._outbox_id = ""
        # Rows in covered_frames, counted once at open and kept since (outbox thread only), so
        # an ack never counts the table.
        self._covered_rows = 0
        # Why the last append failed (disk full, I/O error); empty once one succeeds again.
        self.write_error = ""
        # Replaced on every append; subscribers wait on the one current when they last read.
        self._changed = asyncio.Event()

    async def _run(self, fn: Callable[[], T]) -> T:
        if self.closed:
            raise RuntimeError("the outbox is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the outbox is not open")
        return self._db

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        await self._run(self._open_sync)

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode; transactions are explicit so event and covered frames go together.
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: an appended event survives a power cut, not just a process kill.
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        # Made once with the database: sequences only mean something within one outbox.
        db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('outbox_id', ?)", (uuid.uuid4().hex,)
        )
        self._outbox_id = str(
            db.execute("SELECT value FROM meta WHERE key = 'outbox_id'").fetchone()[0]
        )
        self._db = db
        self._depth = int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        self._covered_rows = int(db.execute("SELECT COUNT(*) FROM covered_frames").fetchone()[0])
        # AUTOINCREMENT remembers the highest sequence ever used, even after its row is gone.
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        self._last_sequence = int(row[0]) if row is not None else 0

    async def close(self) -> None:
        self.closed = True
        if self._db is None:
            return

        def close_sync() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, close_sync)
        finally:
            self._executor.shutdown(wait=True)

    # -- state -----------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Events not yet acknowledged."""
        return self._depth

    @property
    def outbox_id(self) -> str:
        """Random id made when the database was created; empty before `open()`."""
        return self._outbox_id

    @property
    def last_sequence(self) -> int:
        return self._last_sequence

    @property
    def full(self) -> bool:
        return self._depth >= self.max_events

    def changed(self) -> asyncio.Event:
        """An event that is set at the next append; take it before reading to miss nothing."""
        return self._changed

    # -- writing ---------------------------------------------------------------------------

    async def append(self, event: SecurityEvent) -> SecurityEvent:
        """Store an event with its covered frames; returns it with its sequence.

        Never refuses for space: the bound is kept on new frames (the scheduler takes one only
        while the events on their way leave room), so an event for frames already accepted is
        always kept.
        """
        payload = self._codec.encode(event)
        shas = list(dict.fromkeys(event.frame_sha256s))
        try:
            sequence = await self._run(lambda: self._append_sync(payload, shas))
        except Exception as exc:
            self.write_error = f"{type(exc).__name__}: {exc}"[:200]
            raise
        self.write_error = ""
        self._depth += 1
        self._last_sequence = max(self._last_sequence, sequence)
        waiters, self._changed = self._changed, asyncio.Event()
        waiters.set()
        return replace(event, sequence=sequence)

    def _append_sync(self, payload: bytes, shas: list[str]) -> int:
        db = self._conn()
        now = self._now_ms()
        db.execute("BEGIN IMMEDIATE")
        try:
            cursor = db.execute("INSERT INTO events (payload) VALUES (?)", (payload,))
            sequence = int(cursor.lastrowid or 0)
            # OR IGNORE: intake never lets a covered frame into a window, so a clash would be a
            # bug; the first event keeps the frame rather than losing this whole event.
            inserted = db.executemany(
                "INSERT OR IGNORE INTO covered_frames (sha256, sequence, covered_at_ms) "
                "VALUES (?, ?, ?)",
                [(sha, sequence, now) for sha in shas],
            ).rowcount
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        self._covered_rows += max(0, inserted)
        if inserted < len(shas):
            _LOGGER.error(
                "event %d: %d of its %d frame(s) were covered by an earlier event already",
                sequence, len(shas) - inserted, len(shas),
            )
        return sequence

    async def ack(self, up_to: int, outbox_id: str = "") -> int:
        """Remove events up to and including `up_to`; returns how many were removed.

        Raises StaleCursorError, removing nothing, when `outbox_id` is set and names another
        outbox, or when `up_to` is beyond the last sequence written: the cursor is not ours.
        """
        if outbox_id and outbox_id != self._outbox_id:
            raise StaleCursorError(
                f"the acknowledgement is for outbox {outbox_id[:64]!r}, this is "
                f"{self._outbox_id!r}; read the events again from the start"
            )
        if up_to > self._last_sequence:
            raise StaleCursorError(
                f"sequence {up_to} was never written here (last {self._last_sequence}); "
                "read the events again from the start"
            )
        removed = await self._run(lambda: self._ack_sync(up_to))
        self._depth = max(0, self._depth - removed)
        return removed

    def _ack_sync(self, up_to: int) -> int:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            removed = db.execute("DELETE FROM events WHERE sequence <= ?", (up_to,)).rowcount
            pruned = self._prune_covered(db)
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        self._covered_rows = max(0, self._covered_rows - pruned)
        return int(removed)

    def _prune_covered(self, db: sqlite3.Connection) -> int:
        """Drop expired and excess covered rows; returns how many. Visits only the rows it
        drops (by the time index), never the whole table: acks stay cheap at any size."""
        # Only rows whose event is gone (acknowledged) expire; unacked ones must stay.
        oldest_unacked = db.execute("SELECT MIN(sequence) FROM events").fetchone()[0]
        bound = int(oldest_unacked) if oldest_unacked is not None else self._last_sequence + 1
        cutoff = self._now_ms() - self._retention_ms
        pruned = db.execute(
            "DELETE FROM covered_frames INDEXED BY covered_frames_by_time "
            "WHERE covered_at_ms < ? AND sequence < ?",
            (cutoff, bound),
        ).rowcount
        excess = self._covered_rows - pruned - self._max_covered_rows
        if excess > 0:
            pruned += db.execute(
                "DELETE FROM covered_frames WHERE rowid IN (SELECT rowid FROM covered_frames "
                "WHERE sequence < ? ORDER BY sequence LIMIT ?)",
                (bound, excess),
            ).rowcount
        return max(0, pruned)

    # -- reading ---------------------------------------------------------------------------

    async def read_after(self, sequence: int, limit: int = READ_BATCH) -> list[SecurityEvent]:
        """Stored events with a greater sequence, oldest first."""
        rows = await self._run(
            lambda: self._conn()
            .execute(
                "SELECT sequence, payload FROM events WHERE sequence > ? "
                "ORDER BY sequence LIMIT ?",
                (sequence, limit),
            )
            .fetchall()
        )
        return [replace(self._codec.decode(payload), sequence=int(seq)) for seq, payload in rows]

    async def covered(self, shas: Iterable[str]) -> dict[str, int]:
        """Which of these frame hashes a stored (or recently acknowledged) event covers."""
        wanted = list(dict.fromkeys(shas))
        if not wanted:
            return {}

        def query() -> dict[str, int]:
            marks = ",".join("?" * len(wanted))
            rows = self._conn().execute(
                f"SELECT sha256, sequence FROM covered_frames WHERE sha256 IN ({marks})",  # noqa: S608 - only placeholders
                wanted,
            )
            return {sha: int(seq) for sha, seq in rows}

        return await self._run(query)

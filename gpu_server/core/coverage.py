"""Exactly-once coverage: the one owner of "which frame is in which event".

A frame's content is claimed in memory when a frame carrying it is taken (before it is
decoded), stays claimed while it waits in a window or an analysis, and is settled when its
event is stored: from then on the outbox's covered-frames table answers for it. Each frame asks
once (`claim`), with one outbox look-up at most; the answer says whether the caller now holds
the content or how it is held already. After a crash the claims are gone with the open windows,
and the client's resends are taken again. The delivery protocol as a whole is in
`docs/delivery.md`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol


class CoverageState(enum.Enum):
    NEW = "new"  # nothing held it: the caller has claimed it now and must see it through
    CLAIMED = "claimed"  # waiting in an open window or a running analysis
    COVERED = "covered"  # in a stored (or recently acknowledged) event


@dataclass(frozen=True, slots=True)
class Coverage:
    state: CoverageState
    sequence: int = 0  # the covering event's sequence when COVERED


NEW = Coverage(CoverageState.NEW)
CLAIMED = Coverage(CoverageState.CLAIMED)


class CoveredFrames(Protocol):
    """The persisted side: which frame hashes stored events cover (the outbox)."""

    async def covered(self, shas: Iterable[str]) -> Mapping[str, int]: ...


class CoverageLedger:
    def __init__(self, store: CoveredFrames) -> None:
        self._store = store
        self._claimed: set[str] = set()
        # Settled while a look-up was on its way: its answer may predate the store.
        self._looking = 0
        self._settled_meanwhile: dict[str, int] = {}

    async def claim(self, sha256: str) -> Coverage:
        """Claim the content unless something holds it; say how it is held otherwise."""
        if sha256 in self._claimed:
            return CLAIMED
        self._looking += 1
        try:
            covered = await self._store.covered([sha256])
        finally:
            self._looking -= 1
        sequence = covered.get(sha256) or self._settled_meanwhile.get(sha256, 0)
        if not self._looking:
            self._settled_meanwhile.clear()
        if sequence:
            return Coverage(CoverageState.COVERED, sequence)
        if sha256 in self._claimed:  # a twin claimed it while the outbox was asked
            return CLAIMED
        self._claimed.add(sha256)
        return NEW

    def release(self, shas: Iterable[str]) -> None:
        """Give claims up without an event (the frame was refused, the analysis not stored):
        the client's resends are taken again."""
        self._claimed.difference_update(shas)

    def settle(self, shas: Iterable[str], sequence: int) -> None:
        """The event with this sequence is stored and covers these frames."""
        hashes = list(shas)
        self._claimed.difference_update(hashes)
        if self._looking:
            self._settled_meanwhile.update(dict.fromkeys(hashes, sequence))

    def is_claimed(self, sha256: str) -> bool:
        return sha256 in self._claimed

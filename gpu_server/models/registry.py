"""The model zoo's registry: models load when first needed and share one memory budget.

Each model is described by a `ModelSpec`: its task, the memory it takes once loaded (an estimate
on the device it loads onto: VRAM on a GPU, RAM on the CPU) and how to load and unload it.
`use()` loads a model on its first use and counts who is using it. When a load would go over the
budget, the least recently used models that nobody is using are unloaded first; when every
loaded model is busy, the load waits for one to be released (up to `wait_s`).

One load runs at a time: two requests for the same model load it once, and two large models
never both pass the budget check before either is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")

MIB: Final = 1024 * 1024


class ModelRegistryError(Exception):
    """A model that is not registered, or one that cannot be given memory."""


@dataclass(frozen=True, slots=True)
class ModelSpec(Generic[T]):
    key: str
    task: str  # "face_embedding", "ocr", "reid", ...
    memory_bytes: int
    load: Callable[[], T]  # blocking; runs in a worker thread
    unload: Callable[[T], None] | None = None  # blocking; frees what `load` took

    def __post_init__(self) -> None:
        if self.memory_bytes <= 0:
            raise ValueError(f"model {self.key!r}: memory_bytes must be positive")


@dataclass(slots=True)
class _Loaded:
    spec: ModelSpec[Any]
    value: Any
    loaded_at: float
    last_used: float
    users: int = 0


@dataclass(frozen=True, slots=True)
class LoadedModelStatus:
    key: str
    task: str
    memory_bytes: int
    users: int
    idle_s: float  # since it was last released (0 while in use)


@dataclass(frozen=True, slots=True)
class RegistryStatus:
    budget_bytes: int
    used_bytes: int
    registered: tuple[str, ...]
    loaded: tuple[LoadedModelStatus, ...]  # least recently used first
    loads: int
    unloads: int


class ModelRegistry:
    """Models by key, loaded on demand, least recently used unloaded to fit the budget.

    Use it from one event loop; loading and unloading run in worker threads.
    """

    def __init__(self, budget_bytes: int, *, wait_s: float = 30.0) -> None:
        if budget_bytes <= 0:
            raise ValueError("the memory budget must be positive")
        self.budget_bytes = budget_bytes
        self._wait_s = wait_s
        self._specs: dict[str, ModelSpec[Any]] = {}
        # Loaded models, least recently used first.
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()
        self._load_lock = asyncio.Lock()
        self._released = asyncio.Condition()
        self._loads = 0
        self._unloads = 0

    def register(self, spec: ModelSpec[Any]) -> None:
        if spec.memory_bytes > self.budget_bytes:
            raise ModelRegistryError(
                f"model {spec.key!r} needs {spec.memory_bytes / MIB:.0f} MiB, more than the "
                f"whole budget of {self.budget_bytes / MIB:.0f} MiB"
            )
        self._specs[spec.key] = spec

    @property
    def used_bytes(self) -> int:
        return sum(entry.spec.memory_bytes for entry in self._loaded.values())

    def is_loaded(self, key: str) -> bool:
        return key in self._loaded

    @contextlib.asynccontextmanager
    async def use(self, key: str) -> AsyncIterator[Any]:
        """The loaded model for `key`, kept loaded until the block ends."""
        entry = await self._acquire(key)
        try:
            yield entry.value
        finally:
            entry.users -= 1
            entry.last_used = time.monotonic()
            async with self._released:
                self._released.notify_all()

    async def _acquire(self, key: str) -> _Loaded:
        if (entry := self._take(key)) is not None:
            return entry
        async with self._load_lock:
            # Another task may have loaded it while this one waited for the lock.
            if (entry := self._take(key)) is not None:
                return entry
            spec = self._specs.get(key)
            if spec is None:
                raise ModelRegistryError(f"no model {key!r} is registered")
            await self._make_room(spec)
            started = time.monotonic()
            value = await asyncio.to_thread(spec.load)
            now = time.monotonic()
            _LOGGER.info(
                "Loaded model %s (%s, about %.0f MiB) in %.2f s; %.0f of %.0f MiB in use",
                key, spec.task, spec.memory_bytes / MIB, now - started,
                (self.used_bytes + spec.memory_bytes) / MIB, self.budget_bytes / MIB,
            )
            entry = _Loaded(spec, value, loaded_at=now, last_used=now, users=1)
            self._loaded[key] = entry
            self._loads += 1
            return entry

    def _take(self, key: str) -> _Loaded | None:
        entry = self._loaded.get(key)
        if entry is not None:
            entry.users += 1
            self._loaded.move_to_end(key)
        return entry

    async def _make_room(self, spec: ModelSpec[Any]) -> None:
        deadline = time.monotonic() + self._wait_s
        while self.used_bytes + spec.memory_bytes > self.budget_bytes:
            idle = next((entry for entry in self._loaded.values() if entry.users == 0), None)
            if idle is not None:
                await self._unload(idle, "to make room")
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ModelRegistryError(
                    f"no memory for model {spec.key!r}: every loaded model stayed in use "
                    f"for {self._wait_s:g} s"
                )
            async with self._released:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(), remaining)

    async def _unload(self, entry: _Loaded, why: str) -> None:
        key = entry.spec.key
        del self._loaded[key]
        self._unloads += 1
        started = time.monotonic()
        if entry.spec.unload is not None:
            try:
                await asyncio.to_thread(entry.spec.unload, entry.value)
            except Exception:
                _LOGGER.exception("Unloading model %s failed; its memory may not be freed", key)
        _LOGGER.info(
            "Unloaded model %s (about %.0f MiB) in %.2f s, %s",
            key, entry.spec.memory_bytes / MIB, time.monotonic() - started, why,
        )

    def status(self) -> RegistryStatus:
        now = time.monotonic()
        return RegistryStatus(
            budget_bytes=self.budget_bytes,
            used_bytes=self.used_bytes,
            registered=tuple(sorted(self._specs)),
            loaded=tuple(
                LoadedModelStatus(
                    key=key,
                    task=entry.spec.task,
                    memory_bytes=entry.spec.memory_bytes,
                    users=entry.users,
                    idle_s=0.0 if entry.users else now - entry.last_used,
                )
                for key, entry in self._loaded.items()
            ),
            loads=self._loads,
            unloads=self._unloads,
        )

    async def close(self) -> None:
        """Unload every model (at shutdown; models still in use are unloaded too)."""
        async with self._load_lock:
            for entry in list(self._loaded.values()):
                await self._unload(entry, "at shutdown")

"""The model registry with real (tiny) torch models: loading on demand, LRU unloading under a
memory budget, reference counts, and one load at a time."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import torch

from gpu_server.models.registry import ModelRegistry, ModelRegistryError, ModelSpec


def _bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


class Zoo:
    """Tiny linear models whose loads and unloads are recorded in order."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.live: dict[str, torch.nn.Module] = {}

    def spec(self, key: str, width: int, **kwargs: Any) -> ModelSpec[torch.nn.Module]:
        size = _bytes(torch.nn.Linear(width, width))

        def load() -> torch.nn.Module:
            torch.manual_seed(0)
            model = torch.nn.Linear(width, width)
            self.log.append(f"load {key}")
            self.live[key] = model
            return model

        def unload(model: torch.nn.Module) -> None:
            self.log.append(f"unload {key}")
            del self.live[key]

        return ModelSpec(key, "test", size, load, unload, **kwargs)


def _registry(zoo: Zoo, budget_models: float, **kwargs: Any) -> ModelRegistry:
    one = zoo.spec("x", 64).memory_bytes
    registry = ModelRegistry(int(one * budget_models), **kwargs)
    for key in ("a", "b", "c", "d"):
        registry.register(zoo.spec(key, 64))
    return registry


async def test_models_load_on_first_use_and_run() -> None:
    zoo = Zoo()
    registry = _registry(zoo, 2)
    assert zoo.log == []
    async with registry.use("a") as model:
        out = model(torch.ones(1, 64))
        assert out.shape == (1, 64)
        assert registry.status().loaded[0].users == 1
    async with registry.use("a"):
        pass
    assert zoo.log == ["load a"]  # loaded once, reused
    status = registry.status()
    assert status.used_bytes == status.loaded[0].memory_bytes
    assert status.loads == 1
    assert status.registered == ("a", "b", "c", "d")


async def test_least_recently_used_idle_models_are_unloaded_to_fit_the_budget() -> None:
    zoo = Zoo()
    registry = _registry(zoo, 2.5)  # room for two
    for key in ("a", "b", "a", "c", "d", "c"):
        async with registry.use(key):
            assert registry.used_bytes <= registry.budget_bytes
    assert zoo.log == [
        "load a", "load b",
        "unload b", "load c",  # a was used more recently than b
        "unload a", "load d",
    ]
    assert [m.key for m in registry.status().loaded] == ["d", "c"]
    assert set(zoo.live) == {"c", "d"}


async def test_a_model_in_use_is_never_unloaded_and_a_load_waits_for_a_release() -> None:
    zoo = Zoo()
    registry = _registry(zoo, 1.5, wait_s=5.0)  # room for one
    holding = asyncio.Event()
    release = asyncio.Event()

    async def hold_a() -> None:
        async with registry.use("a"):
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold_a())
    await holding.wait()
    waiting = asyncio.create_task(_use(registry, "b"))
    for _ in range(50):  # let it run as far as it can: to the wait for a release
        await asyncio.sleep(0)
    assert not waiting.done()
    assert zoo.log == ["load a"]
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, waiting), 10)
    assert zoo.log == ["load a", "unload a", "load b"]


async def _use(registry: ModelRegistry, key: str) -> None:
    async with registry.use(key):
        pass


async def test_a_load_gives_up_when_every_model_stays_busy() -> None:
    zoo = Zoo()
    registry = _registry(zoo, 1.5, wait_s=0.2)
    async with registry.use("a"):
        with pytest.raises(ModelRegistryError, match="stayed in use"):
            await _use(registry, "b")
    assert zoo.log == ["load a"]
    assert registry.status().loaded[0].users == 0  # the failed request holds nothing


async def test_concurrent_requests_load_a_model_once_and_loads_never_overlap() -> None:
    running = 0
    most = 0
    lock = threading.Lock()
    loads: list[str] = []

    def slow_load(key: str) -> torch.nn.Module:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        threading.Event().wait(0.05)
        with lock:
            running -= 1
            loads.append(key)
        return torch.nn.Linear(8, 8)

    registry = ModelRegistry(10 * _bytes(torch.nn.Linear(8, 8)))
    for key in ("a", "b"):
        registry.register(
            ModelSpec(key, "test", _bytes(torch.nn.Linear(8, 8)), lambda k=key: slow_load(k))
        )
    await asyncio.gather(*(_use(registry, key) for key in ("a", "a", "b", "a", "b")))
    assert sorted(loads) == ["a", "b"]
    assert most == 1


async def test_unknown_and_oversized_models_are_refused() -> None:
    zoo = Zoo()
    registry = _registry(zoo, 1.5)
    with pytest.raises(ModelRegistryError, match="no model"):
        await _use(registry, "nope")
    with pytest.raises(ModelRegistryError, match="more than the whole budget"):
        registry.register(zoo.spec("huge", 512))
    with pytest.raises(ValueError, match="positive"):
        ModelSpec("empty", "test", 0, object)


async def test_a_failing_load_leaves_nothing_behind_and_close_unloads_all() -> None:
    zoo = Zoo()
    registry = _registry(zoo, 2.5)

    def broken() -> torch.nn.Module:
        raise OSError("weights unreadable")

    registry.register(ModelSpec("broken", "test", 1, broken))
    with pytest.raises(OSError, match="unreadable"):
        await _use(registry, "broken")
    assert not registry.is_loaded("broken")
    await _use(registry, "a")
    await _use(registry, "b")
    await registry.close()
    assert registry.status().loaded == ()
    assert zoo.live == {}
    assert zoo.log[-2:] == ["unload a", "unload b"]

"""GPU statistics through NVML (nvidia-ml-py). Without a driver it reports why, never raises."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GpuDeviceStats:
    index: int
    name: str
    utilization_percent: float
    memory_used_bytes: int
    memory_total_bytes: int
    temperature_celsius: float


@dataclass(frozen=True, slots=True)
class GpuSnapshot:
    available: bool
    reason: str = ""
    driver_version: str = ""
    devices: list[GpuDeviceStats] = field(default_factory=list)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class GpuMonitor:
    """Reads NVML on demand; NVML is initialised once, on the first read that needs it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nvml: Any = None
        self._init_error = ""

    def _ensure_nvml(self) -> Any:
        if self._nvml is not None or self._init_error:
            return self._nvml
        try:
            import pynvml  # noqa: PLC0415 - optional at runtime; absent means "no GPU"

            pynvml.nvmlInit()
        except Exception as exc:  # no library, no driver, no permission: all mean "no GPU"
            self._init_error = f"NVML unavailable: {exc or type(exc).__name__}"
            _LOGGER.info("GPU statistics disabled: %s", self._init_error)
            return None
        self._nvml = pynvml
        return pynvml

    def read(self) -> GpuSnapshot:
        """Blocking (NVML calls); run it in a worker thread from async code."""
        with self._lock:
            nvml = self._ensure_nvml()
            if nvml is None:
                return GpuSnapshot(available=False, reason=self._init_error)
            try:
                return self._read(nvml)
            except Exception as exc:
                _LOGGER.warning("reading GPU statistics failed: %s", exc)
                return GpuSnapshot(available=False, reason=f"NVML query failed: {exc}")

    @staticmethod
    def _read(nvml: Any) -> GpuSnapshot:
        count = nvml.nvmlDeviceGetCount()
        devices = []
        for index in range(count):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            util = nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            temperature = nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
            devices.append(
                GpuDeviceStats(
                    index=index,
                    name=_text(nvml.nvmlDeviceGetName(handle)),
                    utilization_percent=float(util.gpu),
                    memory_used_bytes=int(memory.used),
                    memory_total_bytes=int(memory.total),
                    temperature_celsius=float(temperature),
                )
            )
        if not devices:
            return GpuSnapshot(available=False, reason="NVML reports no GPU devices")
        return GpuSnapshot(
            available=True,
            driver_version=_text(nvml.nvmlSystemGetDriverVersion()),
            devices=devices,
        )

    def close(self) -> None:
        with self._lock:
            if self._nvml is not None:
                try:
                    self._nvml.nvmlShutdown()
                except Exception as exc:
                    _LOGGER.debug("NVML shutdown failed: %s", exc)
                self._nvml = None

"""The GPU figures of one cell: NVML sampled while it runs, summed up in one line."""

from __future__ import annotations

import time
from collections.abc import Mapping

from .discovery import Device, Reading

SAMPLE_PERIOD = 0.1  # seconds between NVML readings while a GPU cell runs
GIB = 2**30


class Usage:
    """Readings of a worker's devices during one run: peak memory, mean utilization, time.

    Memory is the worker's own use where NVML lists its processes, else the device's (the devices
    are the worker's alone while it holds them).

    Args:
        devices: the worker's GPUs.
        pids: the host pids of the worker's processes, as NVML lists them (its backend says).
    """

    def __init__(self, devices: list[Device], pids: frozenset[int]) -> None:
        self.devices = devices
        self.pids = pids
        self.started = time.monotonic()
        self.peak_bytes: int | None = None
        self._utilization: list[float] = []

    def add(self, readings: Mapping[int, Reading]) -> None:
        """Take one sample (device index -> reading)."""
        memory: list[int] = []
        for device in self.devices:
            reading = readings.get(device.index)
            if reading is None:
                continue
            if reading.utilization_percent is not None:
                self._utilization.append(reading.utilization_percent)
            own = [used for pid, used in reading.processes.items() if pid in self.pids]
            used = sum(own) if own else reading.memory_used_bytes
            if used is not None:
                memory.append(used)
        if memory:
            self.peak_bytes = max(self.peak_bytes or 0, sum(memory))

    @property
    def mean_utilization(self) -> float | None:
        """Mean GPU utilization (percent) over the samples and devices."""
        samples = self._utilization
        return sum(samples) / len(samples) if samples else None

    def summary(self) -> str:
        """``GPU 0 (NVIDIA A100-SXM4-80GB): peak memory 2.0 GiB, mean utilization 75%, 1.2 s``."""
        indices = ",".join(str(device.index) for device in self.devices)
        names = sorted({device.name for device in self.devices})
        if len(self.devices) == 1:
            which = f"GPU {indices} ({names[0]})"
        elif len(names) == 1:
            which = f"GPUs {indices} ({len(self.devices)}\N{MULTIPLICATION SIGN} {names[0]})"
        else:
            which = f"GPUs {indices} ({', '.join(names)})"
        peak = "n/a" if self.peak_bytes is None else f"{self.peak_bytes / GIB:.1f} GiB"
        mean = self.mean_utilization
        utilization = "n/a" if mean is None else f"{mean:.0f}%"
        elapsed = time.monotonic() - self.started
        return f"{which}: peak memory {peak}, mean utilization {utilization}, {elapsed:.1f} s"

"""A fake NVML for tests: the functions of the ``pynvml`` module the runner uses, answered from
a JSON file the test writes (and rewrites, to change the readings while a cell runs).

Test hook, not a feature: ``NBREMOTE_FAKE_NVML=/path/gpus.json nbremote runner`` makes the
runner use it. The file::

    {"devices": [{"name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920, "used_mib": 1024,
                  "utilization": 75, "processes": [{"pid": 4242, "used_mib": 900}]}],
     "error": null}

``error``, if set, makes ``nvmlInit`` fail with that message (NVML missing or broken). Write the
file atomically (a temporary file, then ``os.replace``); a file caught half-written is ignored
and the previous readings stand.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

MIB = 2**20


class FakeNvmlError(Exception):
    """What the fake raises where NVML would raise ``pynvml.NVMLError``."""


class FakeNvml:
    """Stands in for the ``pynvml`` module; device handles are indices."""

    NVMLError = FakeNvmlError

    def __init__(self, path: str) -> None:
        self._path = Path(path)
        self._last: dict[str, Any] | None = None

    def _document(self) -> dict[str, Any]:
        try:
            self._last = json.loads(self._path.read_text())
        except (OSError, ValueError) as exc:
            if self._last is None:
                raise FakeNvmlError(f"fake NVML file {self._path}: {exc}") from exc
        assert self._last is not None
        return self._last

    def _device(self, handle: int) -> dict[str, Any]:
        devices: list[dict[str, Any]] = self._document()["devices"]
        if handle >= len(devices):
            raise FakeNvmlError("Invalid Argument")
        return devices[handle]

    def nvmlInit(self) -> None:
        error = self._document().get("error")
        if error:
            raise FakeNvmlError(error)

    def nvmlShutdown(self) -> None:
        """Nothing to release."""

    def nvmlDeviceGetCount(self) -> int:
        return len(self._document()["devices"])

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._device(index)
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        name: str = self._device(handle)["name"]
        return name

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return str(self._device(handle).get("uuid", f"GPU-fake-{handle:04d}"))

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        device = self._device(handle)
        total, used = device.get("memory_mib", 16384) * MIB, device.get("used_mib", 0) * MIB
        return SimpleNamespace(total=total, used=used, free=total - used)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=self._device(handle).get("utilization", 0), memory=0)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(pid=p["pid"], usedGpuMemory=p.get("used_mib", 0) * MIB)
            for p in self._device(handle).get("processes", [])
        ]

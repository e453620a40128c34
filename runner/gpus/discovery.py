"""Where a runner's GPUs come from: NVML, a declared inventory, or none (and why).

`discover` picks the source once, at start-up: ``nbremote runner --gpus "A100-80GB:2,H100"``
declares the devices; otherwise NVML (nvidia-ml-py) lists them. NVML missing or failing is not
fatal: the runner starts with no GPUs, and `Discovery.unavailable` says why.

Test hook: ``NBREMOTE_FAKE_NVML=<file.json>`` replaces the NVML library with `FakeNvml`, which
reads its devices and their readings from that file (see `nbremote_runner.gpus.fake`).
"""

from __future__ import annotations

import abc
import contextlib
import ctypes
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nbremote.wire.gpu import parse_text

FAKE_NVML_ENV = "NBREMOTE_FAKE_NVML"


@dataclass(frozen=True)
class Device:
    """One GPU as the runner knows it: NVML's index and product name, memory, UUID."""

    index: int
    name: str
    memory_bytes: int | None = None
    uuid: str | None = None


@dataclass(frozen=True)
class Reading:
    """A device's state at one moment; None where it cannot be read."""

    utilization_percent: float | None = None
    memory_used_bytes: int | None = None
    processes: Mapping[int, int] = field(default_factory=dict)  # pid -> GPU memory in bytes


class Discovery(abc.ABC):
    """A source of GPUs.

    The contract: `devices` is what the source lists now; when it is empty, `unavailable` says
    why in words for a person. A machine's GPUs are fixed when the source is made; a cluster's
    follow its nodes: `due` says (at once, without I/O) that it is time to look again, and
    `refresh` looks, changing `devices` if they changed. A device keeps its index while it is
    listed, and a gone device's index is never given to another. `read` and `refresh` block
    (the runner calls them in an executor thread, never on its event loop) and never raise:
    what cannot be read comes back as None in the `Reading`; a failed look keeps the devices.
    """

    source: str = "none"

    def __init__(self, devices: list[Device], unavailable: str | None = None) -> None:
        self.devices = devices
        self.unavailable = unavailable if not devices else None

    @abc.abstractmethod
    def read(self, index: int) -> Reading:
        """The current utilization, memory use and GPU processes of device ``index``."""

    def due(self) -> bool:
        """Whether `refresh` may find something new (never, for a machine's fixed GPUs)."""
        return False

    def refresh(self) -> bool:
        """Look at the source again; whether `devices` changed."""
        return False

    def close(self) -> None:  # noqa: B027 - most sources hold nothing
        """Free what the source holds (NVML's handle)."""


class NoGpus(Discovery):
    """A runner without GPUs, knowing why."""

    def __init__(self, why: str) -> None:
        super().__init__([], why)

    def read(self, index: int) -> Reading:
        return Reading()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value  # older bindings answer bytes


class NvmlGpus(Discovery):
    """The GPUs NVML lists, read through ``nvml`` (the ``pynvml`` module, or `FakeNvml`).

    Raises:
        Exception: NVML's own error when it cannot start (no driver, version mismatch).
    """

    def __init__(self, nvml: Any, source: str = "nvml") -> None:
        nvml.nvmlInit()
        self._nvml = nvml
        self.source = source
        self._handles = [
            nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())
        ]
        devices = [
            Device(
                index,
                _text(nvml.nvmlDeviceGetName(handle)),
                int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
                _text(nvml.nvmlDeviceGetUUID(handle)),
            )
            for index, handle in enumerate(self._handles)
        ]
        super().__init__(devices, "NVML found no GPU on this machine")

    def _try(self, call: str, handle: Any) -> Any:
        try:
            return getattr(self._nvml, call)(handle)
        except Exception:  # NVMLError_NotSupported and friends: that figure is unknown
            return None

    def read(self, index: int) -> Reading:
        if index >= len(self._handles):
            return Reading()
        handle = self._handles[index]
        rates = self._try("nvmlDeviceGetUtilizationRates", handle)
        memory = self._try("nvmlDeviceGetMemoryInfo", handle)
        processes = self._try("nvmlDeviceGetComputeRunningProcesses", handle) or []
        return Reading(
            utilization_percent=float(rates.gpu) if rates is not None else None,
            memory_used_bytes=int(memory.used) if memory is not None else None,
            processes={
                int(p.pid): int(p.usedGpuMemory)
                for p in processes
                if getattr(p, "usedGpuMemory", None) is not None
            },
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):  # shutting down: nothing left to do about it
            self._nvml.nvmlShutdown()


class DeclaredGpus(Discovery):
    """The devices ``nbremote runner --gpus "A100-80GB:2,H100"`` declares, indexed from 0 in
    that order; readings come from NVML's device of the same index when NVML works.

    Raises:
        ValueError: the declaration is malformed (the message shows the form).
    """

    source = "declared"

    def __init__(self, declared: str, readings: Discovery | None = None) -> None:
        devices: list[Device] = []
        for item in declared.split(","):
            request = parse_text(item.strip(), where=f"--gpus {declared!r}")
            if len(request.choices) != 1 or request.choices[0].type == "any":
                raise ValueError(
                    f"--gpus {declared!r}: {item.strip()!r} must name one type, such as "
                    "A100-80GB:2 (comma between types)"
                )
            choice = request.choices[0]
            memory = choice.memory_gb * 2**30 if choice.memory_gb else None
            name = f"{choice.type}-{choice.memory_gb}GB" if choice.memory_gb else choice.type
            for _ in range(choice.count):
                devices.append(Device(len(devices), name, memory))
        super().__init__(devices)
        self._readings = readings

    def read(self, index: int) -> Reading:
        return self._readings.read(index) if self._readings is not None else Reading()

    def close(self) -> None:
        if self._readings is not None:
            self._readings.close()


def load_nvml() -> tuple[Discovery | None, str | None]:
    """NVML's devices, or None and why NVML cannot be used."""
    fake = os.environ.get(FAKE_NVML_ENV)
    try:
        if fake:
            from .fake import FakeNvml

            return NvmlGpus(FakeNvml(fake), "fake-nvml"), None
        if _no_nvml_library():
            return None, "NVML failed: NVML Shared Library Not Found"  # pynvml's own words
        import pynvml

        return NvmlGpus(pynvml), None
    except ImportError:
        return None, "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
    except Exception as exc:  # NVML's errors: no library, no driver, driver/library mismatch
        return None, f"NVML failed: {exc}"


def _no_nvml_library() -> bool:
    """Whether NVML's library is missing (no NVIDIA driver), asked before importing pynvml: its
    ~10k lines cost every runner's start ~10 ms of CPU on a machine without a GPU. Its own look-up
    on Linux, where its answer is final; elsewhere pynvml's is the only one."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return True
    return False


def discover(declared: str | None = None) -> Discovery:
    """The runner's GPUs: declared if ``declared`` is given, else as NVML lists them.

    Raises:
        ValueError: ``declared`` is malformed.
    """
    nvml, why = load_nvml()
    if declared:
        return DeclaredGpus(declared, nvml)
    if nvml is None:
        return NoGpus(why or "no GPU")
    return nvml

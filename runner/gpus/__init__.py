"""GPUs on the runner: discovery (NVML, declared or fake), allocation, and the driver that
starts every worker with the GPUs its spec asks for."""

from .broker import STATUS, GpuBroker, GpuUnavailable, Holder
from .discovery import Device, Discovery, Reading, discover

__all__ = [
    "STATUS",
    "Device",
    "Discovery",
    "GpuBroker",
    "GpuUnavailable",
    "Holder",
    "Reading",
    "discover",
]

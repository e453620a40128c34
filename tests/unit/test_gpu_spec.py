"""GPU specs as Modal spells them, NVML name matching, discovery sources, the cell summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nbremote_runner.gpus.discovery import DeclaredGpus, Reading, discover
from nbremote_runner.gpus.usage import Usage

import nbremote as nr
from nbremote.gpu import parse
from nbremote.wire.gpu import matches
from nbremote.wire.http import GpuChoice, WorkerSpec

GIB = 2**30


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("any", "any"),
        ("A100", "A100"),
        ("a100-80gb", "A100-80GB"),
        ("H100:2", "H100:2"),
        ("H100|A100-80GB", "H100|A100-80GB"),
        (" h100 | a100-40GB:2 ", "H100|A100-40GB:2"),
        ("H100!", "H100"),  # Modal's "no automatic upgrade": nothing is upgraded here anyway
        (["H100", "A100-80GB"], "H100|A100-80GB"),
        (nr.gpu.A100(memory=80, count=2), "A100-80GB:2"),
        (nr.gpu.A100(size="40GB"), "A100-40GB"),
        ([nr.gpu.H100(), "L40S"], "H100|L40S"),
        (nr.gpu.Any(count=2), "any:2"),
        ("RTX-4090", "RTX-4090"),  # not one of Modal's names: matched as written
    ],
)
def test_modal_spellings_parse(spec: object, expected: str) -> None:
    assert str(parse(spec)) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("A100:0", "whole number"),
        ("A100:two", "whole number"),
        ("any-80GB", "'any' has no memory variant"),
        ("A100$", "is not a GPU type"),
        ([], "empty GPU list"),
        (80, "got int"),
    ],
)
def test_malformed_specs_say_what_is_accepted(spec: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(spec)


def test_gpu_objects_validate_when_made() -> None:
    with pytest.raises(ValueError, match="use 40 or 80"):
        nr.gpu.A100(memory=60)
    with pytest.raises(ValueError, match="count=0"):
        nr.gpu.H100(count=0)


def test_different_gpu_requests_are_different_workers() -> None:
    specs = {WorkerSpec().key(), WorkerSpec(gpu=parse("A100")).key()}
    specs |= {WorkerSpec(gpu=parse("A100:2")).key(), WorkerSpec(gpu=parse("a100")).key()}
    assert len(specs) == 3  # "a100" and "A100" are one request


@pytest.mark.parametrize(
    ("choice", "name", "memory_gib", "expected"),
    [
        ("A100", "NVIDIA A100-SXM4-80GB", None, True),
        ("A100", "NVIDIA A100 80GB PCIe", None, True),
        ("A100-80GB", "NVIDIA A100-SXM4-80GB", None, True),
        ("A100-80GB", "NVIDIA A100-PCIE-40GB", None, False),
        ("A100-80GB", "NVIDIA A100", 80, True),  # no size in the name: by total memory
        ("A100-80GB", "NVIDIA A100", 40, False),
        ("H100", "NVIDIA H100 80GB HBM3", None, True),
        ("H100", "NVIDIA GH100", None, False),
        ("H200", "NVIDIA H200", None, True),
        ("T4", "Tesla T4", None, True),
        ("A10", "NVIDIA A100-SXM4-40GB", None, False),
        ("A10G", "NVIDIA A10", None, True),
        ("L40", "NVIDIA L40S", None, False),
        ("RTX-4090", "NVIDIA GeForce RTX 4090", None, True),
        ("any", "Tesla T4", None, True),
    ],
)
def test_matching_by_nvml_product_name(
    choice: str, name: str, memory_gib: int | None, expected: bool
) -> None:
    request = parse(choice)
    assert request is not None
    memory = memory_gib * GIB if memory_gib else None
    assert matches(request.choices[0], name, memory) is expected


def test_matching_is_case_insensitive() -> None:
    assert matches(GpuChoice(type="A100"), "nvidia a100-sxm4-80gb", None)


def _fake(path: Path, document: dict[str, object]) -> Path:
    path.write_text(json.dumps(document))
    return path


def test_the_fake_nvml_lists_devices_and_readings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = {"name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920, "uuid": "GPU-1"}
    fake = _fake(tmp_path / "gpus.json", {"devices": [device]})
    monkeypatch.setenv("NBREMOTE_FAKE_NVML", str(fake))
    gpus = discover()
    assert gpus.source == "fake-nvml" and gpus.unavailable is None
    [found] = gpus.devices
    assert (found.index, found.name, found.memory_bytes, found.uuid) == (
        0,
        "NVIDIA A100-SXM4-80GB",
        80 * GIB,
        "GPU-1",
    )
    device |= {"utilization": 40, "used_mib": 1024, "processes": [{"pid": 7, "used_mib": 512}]}
    _fake(fake, {"devices": [device]})
    assert gpus.read(0) == Reading(40.0, GIB, {7: GIB // 2})
    assert gpus.read(5) == Reading()  # no such device: nothing known, no error


def test_failing_nvml_means_no_gpus_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake(tmp_path / "gpus.json", {"devices": [], "error": "Driver Not Loaded"})
    monkeypatch.setenv("NBREMOTE_FAKE_NVML", str(fake))
    gpus = discover()
    assert gpus.devices == [] and gpus.unavailable == "NVML failed: Driver Not Loaded"
    monkeypatch.setenv("NBREMOTE_FAKE_NVML", str(tmp_path / "missing.json"))
    assert "missing.json" in (discover().unavailable or "")


def test_a_declared_inventory_needs_no_nvml() -> None:
    gpus = DeclaredGpus("A100-80GB:2, H100")
    names = [(d.index, d.name, d.memory_bytes) for d in gpus.devices]
    assert names == [(0, "A100-80GB", 80 * GIB), (1, "A100-80GB", 80 * GIB), (2, "H100", None)]
    assert gpus.read(0) == Reading()
    with pytest.raises(ValueError, match="must name one type"):
        DeclaredGpus("A100|H100")
    with pytest.raises(ValueError, match="whole number"):
        DeclaredGpus("A100:x")


def test_summary_line_takes_the_process_memory_peak_and_the_mean_utilization() -> None:
    gpus = DeclaredGpus("A100-80GB:2")
    usage = Usage(gpus.devices[:1], pids=frozenset({42}))
    usage.add({0: Reading(50.0, 3 * GIB, {})})
    usage.add({0: Reading(100.0, 9 * GIB, {42: 6 * GIB})})  # its own use, not the device's
    usage.add({0: Reading(None, None, {})})  # a reading that failed counts for nothing
    line = usage.summary()
    assert line.startswith("GPU 0 (A100-80GB): peak memory 6.0 GiB, mean utilization 75%, ")
    both = Usage(gpus.devices, pids=frozenset({42}))
    both.add({0: Reading(10.0, GIB, {}), 1: Reading(30.0, 2 * GIB, {})})
    assert both.summary().startswith(
        "GPUs 0,1 (2\N{MULTIPLICATION SIGN} A100-80GB): peak memory 3.0 GiB, mean utilization 20%"
    )
    assert (
        Usage(gpus.devices[:1], pids=frozenset({1}))
        .summary()
        .startswith("GPU 0 (A100-80GB): peak memory n/a, mean utilization n/a")
    )

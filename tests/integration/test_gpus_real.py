"""On a machine with an NVIDIA GPU (``pytest -m gpu``): real NVML, real CUDA in the worker.

Skipped elsewhere. Needs torch in the environment for the CUDA work.
"""

from __future__ import annotations

import re
import shutil

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="no NVIDIA GPU here"),
]

SUMMARY = re.compile(
    r"nbremote: GPUs? [\d,]+ \((?P<name>[^)]*)\): peak memory (?P<peak>[\d.]+) GiB, "
    r"mean utilization (?P<util>\d+)%, (?P<time>[\d.]+) s"
)


def test_torch_runs_on_the_gpu_inside_a_gpu_cell(shell: InteractiveShell) -> None:
    pytest.importorskip("torch")
    with capture_output() as captured:
        shell.run_cell_magic(
            "remote",
            "--gpu any",
            "import os, torch\n"
            "device = torch.cuda.get_device_name(0)\n"
            "visible = os.environ['CUDA_VISIBLE_DEVICES']\n"
            "total = float((torch.ones(1024, 1024, device='cuda') * 2).sum())",
        )
    assert shell.user_ns["total"] == 2 * 1024 * 1024
    assert shell.user_ns["visible"].startswith("GPU-")  # pinned by UUID
    found = SUMMARY.search(captured.stderr)
    assert found is not None, captured.stderr
    assert found["name"] == shell.user_ns["device"]


def test_the_summary_agrees_with_nvidia_smi(shell: InteractiveShell) -> None:
    pytest.importorskip("torch")
    with capture_output() as captured:
        shell.run_cell_magic(
            "remote",
            "--gpu any",
            "import os, subprocess, time, torch\n"
            "block = torch.empty(2 * 2**30, dtype=torch.uint8, device='cuda')  # 2 GiB\n"
            "a = torch.randn(4096, 4096, device='cuda')\n"
            "smi_util, end = [], time.monotonic() + 3\n"
            "while time.monotonic() < end:\n"
            "    for _ in range(20):\n"
            "        a = (a @ a).clamp_(-1, 1)\n"
            "    torch.cuda.synchronize()\n"
            "    smi_util.append(int(subprocess.check_output(['nvidia-smi', '-i', "
            "os.environ['CUDA_VISIBLE_DEVICES'], '--query-gpu=utilization.gpu', "
            "'--format=csv,noheader,nounits'], text=True).strip()))\n"
            # The cell's GPU is its own; in a sandbox its pid is not the one NVML lists.
            "apps = subprocess.check_output(['nvidia-smi', '-i',"
            " os.environ['CUDA_VISIBLE_DEVICES'], '--query-compute-apps=pid,used_memory',"
            " '--format=csv,noheader,nounits'], text=True)\n"
            "smi_mib = sum(int(line.split(', ')[1]) for line in apps.splitlines())\n"
            "del block, a",
        )
    found = SUMMARY.search(captured.stderr)
    assert found is not None, captured.stderr
    smi_gib = shell.user_ns["smi_mib"] / 1024
    smi_util = shell.user_ns["smi_util"]
    print(f"summary: {found[0]}; nvidia-smi: {smi_gib:.2f} GiB, utilization {smi_util}")
    assert smi_gib > 0 and abs(float(found["peak"]) - smi_gib) <= max(0.25, 0.1 * smi_gib)
    assert abs(int(found["util"]) - sum(smi_util) / len(smi_util)) <= 30
    assert float(found["time"]) >= 3

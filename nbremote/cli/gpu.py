"""``nbremote gpus``: the runner's GPUs, who holds each and who waits (or why there are none)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ._options import json_option, runner_client, runner_options
from ._utils import display_table, format_bytes

if TYPE_CHECKING:
    from ..wire.http import DescribeGpu, DescribeGpuHolder


@click.command()
@runner_options
@json_option
def gpus(url: str | None, token: str | None, as_json: bool) -> None:
    """Show the runner's GPUs: memory, utilization, who holds each; why there are none."""
    from ..wire.http import ListGpusResponse

    listed = runner_client(url, token).call("GET", "/api/v1/gpus", response=ListGpusResponse)
    display_table(
        ["INDEX", "NAME", "MEMORY", "UTIL", "HOLDER"],
        [_gpu_row(gpu) for gpu in listed.gpus],
        listed.model_dump(mode="json"),
        as_json,
        empty=f"no GPUs: {listed.unavailable}",
        right={"INDEX", "MEMORY", "UTIL"},
    )
    if not as_json:
        for waiting in listed.waiting:
            holder = waiting.holder
            who = holder.notebook or holder.session or holder.name
            click.echo(f"  waiting #{waiting.position}: {waiting.request} for {who}")


def _gpu_row(gpu: DescribeGpu) -> list[str]:
    used, total = gpu.memory_used_bytes, gpu.memory_total_bytes
    busy = gpu.utilization_percent
    return [
        str(gpu.index),
        gpu.name,
        f"{format_bytes(used)} / {format_bytes(total)}",
        "-" if busy is None else f"{busy:.0f}%",
        _holder(gpu.holder),
    ]


def _holder(holder: DescribeGpuHolder | None) -> str:
    if holder is None:
        return "free"
    owner = holder.notebook or holder.session or ""
    what = "cells" if holder.kind == "cell" else f"{holder.kind} {holder.name}"
    state = "idle" if holder.idle else "busy"
    worker = holder.worker or "starting"
    return f"{what} {owner} (worker {worker}, {state})".replace("  ", " ")

"""``nbremote demo``: execute a notebook headless (nbclient) and print what each cell showed."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from ._config import nbremote_home


def _describe_output(output: dict) -> str:  # type: ignore[type-arg]
    kind = output["output_type"]
    if kind == "stream":  # as a terminal would show it: each line as its last \r left it
        lines = str(output["text"]).rstrip("\n").split("\n")
        return "\n".join(line.rstrip("\r").split("\r")[-1] for line in lines)
    if kind == "error":
        return f"[error] {output['ename']}: {output['evalue']}"
    data = output.get("data", {})
    if "image/png" in data:
        return f"[image/png, {len(data['image/png']) * 3 // 4:,} bytes]"
    if "text/plain" in data:
        return str(data["text/plain"])
    return f"[{', '.join(data)}]"


def _merge_streams(outputs: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    """Consecutive pieces of one stream as one output, as Jupyter shows them."""
    merged: list[dict] = []  # type: ignore[type-arg]
    for output in outputs:
        last = merged[-1] if merged else None
        if (
            last
            and output["output_type"] == last["output_type"] == "stream"
            and output["name"] == last["name"]
        ):
            merged[-1] = {**last, "text": last["text"] + output["text"]}
        else:
            merged.append(output)
    return merged


def run_demo(path: Path, output: Path | None) -> int:
    """Execute the notebook, print its cells' outputs; 0 if it ran to the end."""
    notebook = nbformat.read(path, as_version=4)
    print(f"running {path} on the embedded runner of {nbremote_home()} ...")
    started = time.perf_counter()
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    status = 0
    try:
        client.execute()
    except CellExecutionError as exc:
        print(f"the notebook stopped at an unexpected error:\n{exc}")
        status = 1
    for number, cell in enumerate(notebook.cells, 1):
        if cell.cell_type != "code":
            continue
        print(f"\n── cell {number} " + "─" * 60)
        print("\n".join("  " + line for line in cell.source.splitlines()))
        for item in _merge_streams(cell.get("outputs", [])):
            print("\n".join("→ " + line for line in _describe_output(item).splitlines()))
    print(f"\nran in {time.perf_counter() - started:.1f} s")
    if output is not None:
        nbformat.write(notebook, output)
        print(f"executed notebook saved to {output}")
    return status

"""A small Ray cluster on this machine for the Ray backend's tests and bench.

    python scripts/ray_cluster.py start DIR BASE_PORT   # prints the head's address
    python scripts/ray_cluster.py stop DIR [BASE_PORT]
    python scripts/ray_cluster.py stop-node DIR NODE_BASE_PORT   # prints the node's id

A head and two more nodes, each declaring one CPU (a warm worker reserves 1/8) and a small
object store; the last node declares two (fake) A100s. Everything of the cluster lives under DIR
(Ray's temp dir) and on ports BASE_PORT..BASE_PORT+39, so that it never meets another cluster of
this machine; ``stop`` ends only the processes whose command line names DIR, what they
started, and the head's client server on BASE_PORT+39, by their pids (``ray stop`` would end
every Ray process of the machine, other people's too).

Every port is chosen here, and a node's agents' port files are written as soon as its raylet
exists: the raylet waits at most 15 s for its agents to write them, and on a loaded two-core
machine their Python takes longer than that to import Ray.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).parent / "ray")
# A local test cluster without Ray's token auth: with it unset, one ``ray.init()`` anywhere on
# the machine writes ~/.ray/auth_token, and every later head then wants a token its nodes lack.
# Set before ENV is copied, so that the nodes get it too (and this process's ray.init).
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
START_TIMEOUT = 200  # one node's ``ray start``: Ray's agents are slow on a loaded machine
NODE_ID = re.compile(r"--node[-_]id=([0-9a-f]{56})")


def _ports(base: int) -> dict[str, int]:
    return {
        "node-manager-port": base + 1,
        "object-manager-port": base + 2,
        "dashboard-agent-listen-port": base + 3,
        "dashboard-agent-grpc-port": base + 4,
        "runtime-env-agent-port": base + 5,
        "metrics-export-port": base + 6,
        "min-worker-port": base + 7,
        "max-worker-port": base + 9,
    }


def _port_files(ports: dict[str, int]) -> dict[str, int]:
    return {
        "dashboard_agent_listen_port": ports["dashboard-agent-listen-port"],
        "metrics_agent_port": ports["dashboard-agent-grpc-port"],
        "runtime_env_agent_port": ports["runtime-env-agent-port"],
        "metrics_export_port": ports["metrics-export-port"],
    }


def _ours(folder: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if str(folder) in cmdline and proc.pid != os.getpid() and "ray_cluster.py" not in cmdline:
            found.append(proc)
    return found


def _write_port_files(folder: Path, ports: dict[str, int], done: threading.Event) -> None:
    """Write the port files of the raylet listening on ``ports``' node manager port."""
    needle = f"--node_manager_port={ports['node-manager-port']}"
    while not done.is_set():
        for proc in _ours(folder):
            try:
                cmdline = " ".join(proc.cmdline())
            except psutil.Error:
                continue
            node = NODE_ID.search(cmdline)
            if needle in cmdline and node and (folder / "session_latest").exists():
                session = (folder / "session_latest").resolve()
                for name, port in _port_files(ports).items():
                    path = session / f"{name}_{node.group(1)}"
                    if not path.exists():
                        path.with_suffix(".tmp").write_text(str(port))
                        path.with_suffix(".tmp").rename(path)
                return
        time.sleep(0.1)


STORE = 80_000_000  # each node's object store, bytes (bench_ray sets more for W3)


def _node(folder: Path, base: int, *extra: str) -> subprocess.Popen[bytes]:
    ports = _ports(base)
    command = [RAY, "start", "--num-cpus", "1", "--object-store-memory", str(STORE)]
    command += ["--temp-dir", str(folder), "--disable-usage-stats", *extra]
    command += [f"--{name}={port}" for name, port in ports.items()]
    done = threading.Event()
    threading.Thread(target=_write_port_files, args=(folder, ports, done), daemon=True).start()
    log = open(folder / f"start-{base}.log", "wb")  # noqa: SIM115 (the child holds it)
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=ENV)
    proc.done = done  # type: ignore[attr-defined]
    return proc


def _finish(folder: Path, proc: subprocess.Popen[bytes], base: int, name: str) -> None:
    """Wait for ``ray start`` of node ``name``; exit saying which node did not start, and why."""
    try:
        code: int | None = proc.wait(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = None
    proc.done.set()  # type: ignore[attr-defined]
    if code != 0:
        tail = (folder / f"start-{base}.log").read_text(errors="replace")[-3000:]
        why = f"did not start within {START_TIMEOUT}s" if code is None else f"failed ({code})"
        raise SystemExit(f"ray start of the {name} (ports from {base}) {why}:\n{tail}")


def start(folder: Path, base: int) -> str:
    """Start the cluster; the head's address."""
    folder.mkdir(parents=True, exist_ok=True)
    head = _node(
        folder,
        base,
        "--head",
        f"--port={base}",
        "--include-dashboard=false",
        f"--ray-client-server-port={base + 39}",
    )
    _finish(folder, head, base, "head node")
    address = f"127.0.0.1:{base}"
    # One after the other: nodes of one machine share the temp dir, and two starting at once
    # can pick the same name for their sockets there.
    _finish(folder, _node(folder, base + 10, f"--address={address}"), base + 10, "plain node")
    gpus = ["--num-gpus=2", '--resources={"accelerator_type:A100": 2}']
    gpu_node = _node(folder, base + 20, f"--address={address}", *gpus)
    _finish(folder, gpu_node, base + 20, "GPU node")
    return address


def stop(folder: Path, base: int | None = None) -> None:
    """End the cluster's processes: ours (their command lines name ``folder``), all they
    started (Ray's agents rename themselves, ``ray::DashboardAgent``, and would outlive them),
    and, given the head's ``base`` port, its client server (which names neither)."""
    tree = {proc.pid: proc for proc in _ours(folder)}
    if base is not None:
        needle = f"--port={base + 39}"
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = proc.info["cmdline"] or ()
            if "ray.util.client.server" in cmdline and needle in cmdline:
                tree[proc.pid] = proc
    for proc in list(tree.values()):
        with contextlib.suppress(psutil.Error):
            tree.update((child.pid, child) for child in proc.children(recursive=True))
    for proc in tree.values():
        with contextlib.suppress(psutil.Error):
            proc.kill()


def _raylet(folder: Path, base: int) -> tuple[psutil.Process, str]:
    """The raylet of the node whose ports start at ``base``, and the node's id."""
    needle = f"--node_manager_port={_ports(base)['node-manager-port']}"
    for proc in _ours(folder):
        try:
            cmdline = " ".join(proc.cmdline())
            node = NODE_ID.search(cmdline)
            if needle in cmdline and "raylet" in proc.name() and node:
                return proc, node.group(1)
        except psutil.Error:
            continue
    raise SystemExit(f"no raylet of {folder} on port {base + 1}")


def node_id(folder: Path, base: int) -> str:
    """The id of the node whose ports start at ``base``."""
    return _raylet(folder, base)[1]


def stop_node(folder: Path, base: int) -> str:
    """End the node whose ports start at ``base`` (its raylet and everything under it); its id."""
    raylet, node = _raylet(folder, base)
    for child in raylet.children(recursive=True):
        child.kill()
    raylet.kill()
    return node


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "stop-node":
        print(stop_node(Path(sys.argv[2]), int(sys.argv[3])))
    elif len(sys.argv) in (3, 4) and sys.argv[1] == "stop":
        stop(Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) == 4 else None)
    elif len(sys.argv) == 4 and sys.argv[1] == "start":
        print(start(Path(sys.argv[2]), int(sys.argv[3])))
    else:
        raise SystemExit(__doc__)

"""The runner's relay hop for a big buffer (issue 23, W3 to a worker without the runner's shm).

A kernel-like sender (a blocking socket in a thread) sends one frame with a 256 MiB buffer to a
`FrameConnection` in an asyncio loop, which relays it on to a receiver (another blocking socket in
a thread) as the runner relays a call's argument to a Ray or docker worker. Printed: the relay hop
(from the frame being complete at the runner to its last byte at the receiver), the whole trip,
and a small frame's round trip through the same relay (the hot path), medians. TCP loopback, as a
worker on another node is reached.

Run ``.venv/bin/python bench/bench_relay.py [--mib 256] [--runs 5]``; it writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import threading
import time

from nbremote_runner.frames import FrameConnection, OnFrame, connect

from nbremote.wire.codec import Header, encode_prefix


def _pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
    return client, accepted


def _drain(sock: socket.socket, size: int, done: list[float], ready: threading.Event) -> None:
    view = memoryview(bytearray(size))
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], min(size - got, 1 << 24))
        if not n:
            break
        got += n
    done.append(time.perf_counter())
    ready.set()


def _relay(out: FrameConnection, relayed: list[float]) -> OnFrame:
    def on_frame(header: Header, buffers: list[bytearray]) -> None:
        relayed.append(time.perf_counter())
        out.send(header, buffers)

    return on_frame


def _send(sock: socket.socket, prefix: bytes, data: bytearray) -> None:
    sock.sendall(prefix)
    sock.sendall(data)


async def _big(mib: int, runs: int) -> tuple[list[float], list[float]]:
    data = bytearray(mib << 20)
    data[::4096] = b"\1" * len(data[::4096])
    hops, trips = [], []
    for _ in range(runs):
        kernel, k_side = _pair()
        w_side, worker = _pair()
        out = await connect(w_side)
        relayed: list[float] = []
        inbound = await connect(k_side)
        inbound.listen(_relay(out, relayed))
        prefix = encode_prefix({"op": "call", "id": "x"}, [data])
        done: list[float] = []
        ready = threading.Event()
        size = len(prefix) + len(data)
        reader = threading.Thread(target=_drain, args=(worker, size, done, ready))
        reader.start()
        start = time.perf_counter()
        sender = threading.Thread(target=_send, args=(kernel, prefix, data))
        sender.start()
        while not ready.is_set():
            await asyncio.sleep(0.001)
        sender.join()
        reader.join()
        hops.append(done[0] - relayed[0])
        trips.append(done[0] - start)
        inbound.close()
        out.close()
        kernel.close()
        worker.close()
        await asyncio.sleep(0.05)
    return hops, trips


async def _small(rounds: int) -> list[float]:
    kernel, k_side = _pair()
    inbound = await connect(k_side)
    inbound.listen(lambda header, buffers: inbound.send(header, buffers))  # an echo
    prefix = encode_prefix({"op": "call", "id": "x"}, [b"y" * 100])
    frame = prefix + b"y" * 100
    times: list[float] = []

    def client() -> None:
        buf = bytearray(len(frame))
        for _ in range(rounds):
            start = time.perf_counter()
            kernel.sendall(frame)
            got = 0
            while got < len(frame):
                got += kernel.recv_into(memoryview(buf)[got:])
            times.append(time.perf_counter() - start)

    thread = threading.Thread(target=client)
    thread.start()
    while thread.is_alive():
        await asyncio.sleep(0.001)
    inbound.close()
    kernel.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    hops, trips = asyncio.run(_big(args.mib, args.runs))
    print(f"{args.mib} MiB relay hop: median {statistics.median(hops):.3f} s  {sorted(hops)}")
    print(f"{args.mib} MiB whole trip: median {statistics.median(trips):.3f} s")
    small = asyncio.run(_small(5000))
    print(f"small frame echo round trip: p50 {statistics.median(small) * 1e6:.1f} µs")


if __name__ == "__main__":
    main()

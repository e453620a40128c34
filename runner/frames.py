"""Asynchronous reading and writing of `nbremote._protocol` frames on tornado streams."""

from __future__ import annotations

import json
from collections.abc import Sequence

from tornado.iostream import IOStream

from nbremote._protocol import LENGTH, PREFIX, Buffer, Header, encode_prefix

# Buffers this big are received straight into their own bytearray, with no intermediate copy.
_DIRECT = 1 << 16

Frame = tuple[Header, list[bytearray]]


async def read_frame(stream: IOStream) -> Frame:
    """Read one frame; each buffer is received straight into its own bytearray."""
    header_len, count = PREFIX.unpack(await stream.read_bytes(PREFIX.size))
    rest = await stream.read_bytes(header_len + LENGTH.size * count)
    header = json.loads(rest[:header_len])
    sizes = [LENGTH.unpack_from(rest, header_len + LENGTH.size * i)[0] for i in range(count)]
    buffers = []
    for size in sizes:
        if size < _DIRECT:
            buffers.append(bytearray(await stream.read_bytes(size)))
            continue
        buf = bytearray(size)
        await stream.read_into(buf)
        buffers.append(buf)
    return header, buffers


async def write_frame(stream: IOStream, header: Header, buffers: Sequence[Buffer] = ()) -> None:
    """Queue one frame on the stream (buffers are not copied) and wait until it is written."""
    prefix = encode_prefix(header, buffers)
    if all(memoryview(buf).nbytes < _DIRECT for buf in buffers):
        await stream.write(b"".join([prefix, *buffers]))  # one segment for a small frame
        return
    done = stream.write(prefix)
    for buf in buffers:
        done = stream.write(buf)  # type: ignore[arg-type]
    await done

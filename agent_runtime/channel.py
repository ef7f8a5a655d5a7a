"""Messages over a pipe between the shim's supervisor and its worker process.

Runs inside allocations; standard library only. A message is a 1-byte tag,
an 8-byte big-endian payload length and the payload, so results of any size
(hundreds of MB) pass through without a size limit. Tags:

    worker -> supervisor   READY (payload: input count, group size), DONE, INFRA,
                           FATAL (payload: ``pack_outcome``), DONE_MANY (``pack_many``),
                           DONE_RANGE (``pack_range``)
    supervisor -> worker   RUN (input index, attempt), RUN_MANY (first index, count),
                           RUN_RANGE (first index, count), QUIT

RUN_RANGE is a plain function's hot path (``.map`` chunks): the worker runs
the inputs one after the other and answers every few milliseconds with one
DONE_RANGE for the inputs finished since the last: one pickle of their values
(a failed input's slot is None) and a ``pack_outcome`` per failed input. It
writes the index of the input it is running into a shared ``Progress`` page,
so the supervisor still times out (and blames) each input on its own.

The group size is how many inputs the worker runs at once (``@modal.concurrent``'s
``max_inputs``, ``@modal.batched``'s ``max_batch_size``; 1 otherwise): the supervisor then
sends RUN_MANY for up to that many inputs and gets one DONE_MANY with an outcome for each.
"""

from __future__ import annotations

import os
import select
import struct
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

READY = b"R"
DONE = b"D"
INFRA = b"I"  # setup failed for reasons outside the user's function (import, call body)
FATAL = b"F"  # an @modal.enter() method raised: no input can run in this container
RUN = b"G"
RUN_MANY = b"M"
DONE_MANY = b"N"
QUIT = b"Q"
RUN_RANGE = b"A"
DONE_RANGE = b"B"

_HEAD = struct.Struct(">cQ")
RUN_BODY = struct.Struct(">QI")  # input index, attempt number
RUN_MANY_BODY = struct.Struct(">QI")  # first input index, number of inputs (each on its first attempt)
READY_BODY = struct.Struct(">QI")  # inputs in the call, group size
RUN_RANGE_BODY = struct.Struct(">QQ")  # first input index, number of inputs (each on its first attempt)
_RANGE_HEAD = struct.Struct(">QQQ")  # first input index, inputs, length of the values' pickle
_FAILED = struct.Struct(">QQ")  # offset in the range, length of its pack_outcome
_PART = struct.Struct(">Q")
_OUTCOME_HEAD = struct.Struct(">??H")  # ok, retryable, summary length; summary and pickled Outcome follow

POLL_S = 0.5  # how often a silent worker is checked for having died without closing the pipe


def pack_outcome(ok: bool, retryable: bool, summary: str, outcome: bytes) -> bytes:
    """An outcome message: flags, a one-line summary for the log, the pickled ``Outcome``."""
    text = summary.encode("utf-8", "replace")[:1000]
    return _OUTCOME_HEAD.pack(ok, retryable, len(text)) + text + outcome


def unpack_outcome(payload: bytearray) -> tuple[bool, bool, str, bytes]:
    ok, retryable, size = _OUTCOME_HEAD.unpack_from(payload)
    start = _OUTCOME_HEAD.size
    summary = bytes(payload[start:start + size]).decode("utf-8", "replace")
    return ok, retryable, summary, bytes(memoryview(payload)[start + size:])


def pack_many(parts: list[bytes]) -> bytes:
    """Several ``pack_outcome`` payloads in one message, each prefixed by its length."""
    return b"".join(_PART.pack(len(p)) + p for p in parts)


def unpack_many(payload: bytearray) -> list[bytearray]:
    out: list[bytearray] = []
    pos = 0
    while pos < len(payload):
        (size,) = _PART.unpack_from(payload, pos)
        pos += _PART.size
        out.append(payload[pos:pos + size])
        pos += size
    return out


def pack_range(first: int, count: int, values: bytes, failed: list[tuple[int, bytes]]) -> bytes:
    """A DONE_RANGE payload: inputs ``first``..``first + count - 1``, their values' pickle, the failed ones."""
    return b"".join([_RANGE_HEAD.pack(first, count, len(values)), values,
                     *(_FAILED.pack(off, len(p)) + p for off, p in failed)])


def unpack_range(payload: bytearray) -> tuple[int, int, bytes, list[tuple[int, bytearray]]]:
    first, count, size = _RANGE_HEAD.unpack_from(payload)
    pos = _RANGE_HEAD.size
    values = bytes(memoryview(payload)[pos:pos + size])
    pos += size
    failed: list[tuple[int, bytearray]] = []
    while pos < len(payload):
        off, size = _FAILED.unpack_from(payload, pos)
        pos += _FAILED.size
        failed.append((off, payload[pos:pos + size]))
        pos += size
    return first, count, values, failed


class Progress:
    """A page shared by the supervisor and its forked worker: the index of the input the worker runs (one
    aligned 8-byte word; the supervisor times when it changes)."""

    NONE = 2 ** 64 - 1

    def __init__(self) -> None:
        import mmap

        self.page = mmap.mmap(-1, mmap.PAGESIZE)  # anonymous and MAP_SHARED: the fork shares it
        self.word = memoryview(self.page).cast("Q")  # one native 8-byte word: a store is ~4x quicker than struct's
        self.set(self.NONE)

    def set(self, index: int) -> None:
        self.word[0] = index

    def get(self) -> int:
        return int(self.word[0])


def stack_file(result_dir: str, pid: int) -> str:
    """Where worker ``pid`` dumps its threads' stacks when the supervisor sends SIGUSR1."""
    return os.path.join(result_dir, f".stacks-{pid}")


class Expired(Exception):
    """The deadline passed before a whole message arrived."""


def send(fd: int, tag: bytes, payload: bytes = b"") -> None:
    os.write(fd, _HEAD.pack(tag, len(payload)))
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view):]


class Receiver:
    """Reads whole messages from ``fd``; ``None`` means the writer is gone."""

    def __init__(self, fd: int, *, writer_alive: Callable[[], bool] = lambda: True):
        self.fd = fd
        self._writer_alive = writer_alive

    def receive(self, deadline: float | None = None) -> tuple[bytes, bytearray] | None:
        head = self._read_exact(_HEAD.size, deadline)
        if head is None:
            return None
        tag, size = _HEAD.unpack(head)
        body = self._read_exact(size, deadline)
        if body is None:
            return None
        return tag, body

    def _read_exact(self, size: int, deadline: float | None) -> bytearray | None:
        out = bytearray(size)
        view = memoryview(out)
        pos = 0
        while pos < size:
            wait = POLL_S
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Expired
                wait = min(wait, left)
            readable, _, _ = select.select([self.fd], [], [], wait)
            if not readable:
                # A child the user started may hold the pipe open after the worker died.
                if not self._writer_alive():
                    return None
                continue
            got = os.readv(self.fd, [view[pos:]])
            if got == 0:
                return None
            pos += got
        return out

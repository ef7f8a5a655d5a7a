"""The call protocol: versioned envelopes for calls and results.

Runs on the client and inside allocations; standard library only (cloudpickle
is imported only when plain pickle cannot serialize a value). An envelope is

    MAGIC  b"MODALC1\\n"
    header one line of JSON: {"v", "python", "cloudpickle", "kind", ...}
    body   a pickle

so the versions are read, and a mismatch refused with a message naming both
sides, before anything is unpickled. A generator's values stream into
``stream.pkl`` as frames (``append_frame``/``read_frames``): an 8-byte
big-endian unsigned length, then that many bytes of pickle.

The shim's result envelope (kind "result") adds ``exit_code`` (see
``agent_runtime.exitcodes``), ``error`` (a one-line summary, "" on success)
and ``inputs`` to the header; its body is a ``list[Outcome]`` in input order.
When the call could not be read or the module not imported, the list holds
one failed ``Outcome`` describing that, whatever the number of inputs. Pickles are only loaded from the job's
own call file and the job's own result file.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import sys
from dataclasses import dataclass, field
from typing import Any

MAGIC = b"MODALC1\n"
PROTOCOL_VERSION = 1
RESULT_FILE = "result.pkl"
STREAM_FILE = "stream.pkl"


class ProtocolError(Exception):
    """An envelope that cannot be read: wrong magic, protocol or versions."""


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def cloudpickle_version() -> str:
    """cloudpickle's version, read without importing it (its import is not free)."""
    global _cloudpickle_version
    mod = sys.modules.get("cloudpickle")
    if mod is not None:
        return str(mod.__version__)
    if _cloudpickle_version is None:
        _cloudpickle_version = _find_cloudpickle_version()
    return _cloudpickle_version


_cloudpickle_version: str | None = None


def _find_cloudpickle_version() -> str:
    # importlib.metadata costs ~20 ms to import; the dist-info folder name says it for free.
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith("cloudpickle-") and name.endswith(".dist-info"):
                return name[len("cloudpickle-"):-len(".dist-info")]
    try:
        from importlib.metadata import version

        return version("cloudpickle")
    except Exception:  # pragma: no cover - cloudpickle is a dependency
        return "unknown"


def _major(version: str) -> str:
    return version.split(".")[0]


def dumps_value(value: Any) -> bytes:
    """Plain pickle when it can; cloudpickle for lambdas, local classes and the like."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        import cloudpickle

        return bytes(cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def encode(kind: str, body: Any, **header: Any) -> bytes:
    head = {"v": PROTOCOL_VERSION, "python": python_version(), "cloudpickle": cloudpickle_version(),
            "kind": kind, **header}
    return MAGIC + json.dumps(head, sort_keys=True).encode() + b"\n" + dumps_value(body)


def read_header(data: bytes) -> tuple[dict[str, Any], int]:
    """The header of an envelope and the offset of its body; checks compatibility."""
    if not data.startswith(MAGIC):
        raise ProtocolError("not a modalc envelope (bad magic bytes)")
    end = data.index(b"\n", len(MAGIC))
    header = json.loads(data[len(MAGIC):end])
    if header.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"call protocol version {header.get('v')} here expects {PROTOCOL_VERSION}")
    mismatches = []
    if header.get("python") != python_version():
        mismatches.append(f"Python {header.get('python')} on the sender, {python_version()} here")
    if _major(str(header.get("cloudpickle"))) != _major(cloudpickle_version()):
        mismatches.append(f"cloudpickle {header.get('cloudpickle')} on the sender, {cloudpickle_version()} here")
    if mismatches:
        raise ProtocolError("version mismatch: " + "; ".join(mismatches)
                            + " (pickled calls only work between the same Python minor version and cloudpickle major version)")
    return header, end + 1


def decode(data: bytes) -> tuple[dict[str, Any], Any]:
    header, offset = read_header(data)
    return header, pickle.loads(data[offset:])


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` so that readers see the whole file or none of it."""
    folder = os.path.dirname(path) or "."
    # Not tempfile: its import (random, shutil, ...) costs the runtime's start-up a few ms.
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{os.urandom(6).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


_FRAME_HEAD = struct.Struct(">Q")


def append_frame(path: str, value: Any) -> int:
    """Append ``value`` as one frame to the stream file; return the bytes written.

    The frame goes out in one ``O_APPEND`` write loop and is on disk (page
    cache) when this returns, so a reader polling the file sees it at once.
    """
    payload = dumps_value(value)
    frame = _FRAME_HEAD.pack(len(payload)) + payload
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(frame)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    return len(frame)


def frame_boundary(data: bytes, offset: int = 0) -> int:
    """The offset just past the last complete frame at or after ``offset``."""
    while offset + _FRAME_HEAD.size <= len(data):
        (size,) = _FRAME_HEAD.unpack_from(data, offset)
        if offset + _FRAME_HEAD.size + size > len(data):
            break
        offset += _FRAME_HEAD.size + size
    return offset


def read_frames(data: bytes, offset: int = 0) -> tuple[list[Any], int]:
    """The values of the complete frames in ``data`` from ``offset``, and where the next frame starts.

    A trailing partial frame (still being written) is left for the next read:
    call again with the returned offset once more bytes have arrived.
    """
    values: list[Any] = []
    end = frame_boundary(data, offset)
    while offset < end:
        (size,) = _FRAME_HEAD.unpack_from(data, offset)
        start = offset + _FRAME_HEAD.size
        values.append(pickle.loads(data[start:start + size]))
        offset = start + size
    return values, offset


def split_frames(buffer: bytes) -> tuple[list[Any], bytes]:
    """The values of the complete frames at the start of ``buffer``, and the bytes left over
    (a partial frame: prepend them to the next chunk read)."""
    values, end = read_frames(buffer)
    return values, buffer[end:]


@dataclass
class Call:
    """The body of a call envelope: one or more inputs for one function (or class method)."""

    inputs: list[tuple[tuple[Any, ...], dict[str, Any]]]
    method: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """What happened to one input: a value, or an exception with its remote traceback."""

    ok: bool
    value: Any = None
    exc: BaseException | None = None
    exc_type: str = ""
    exc_repr: str = ""
    traceback: str = ""
    attempts: int = 1
    timed_out: bool = False

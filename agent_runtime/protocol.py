"""The call protocol: versioned envelopes for calls and results.

Runs on the client and inside allocations; standard library only (cloudpickle
is imported only when plain pickle cannot serialize a value). An envelope is

    MAGIC  b"MODALC1\\n"
    header one line of JSON: {"v", "python", "cloudpickle", "kind", ...}
    body   a pickle

so the versions are read, and a mismatch refused with a message naming both
sides, before anything is unpickled. Pickles are only loaded from the job's
own call file and the job's own result file.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import tempfile
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
    mod = sys.modules.get("cloudpickle")
    if mod is not None:
        return str(mod.__version__)
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
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
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

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
and ``inputs`` to the header; its body is a ``list[Outcome]`` in input order, or, when the
inputs ran in ranges (a plain function's ``.map`` chunk), a ``Results``: ``Batch``es of
values of consecutive inputs and ``Outcome``s, in input order (``Results.outcomes()``
is the list).
When the call could not be read or the module not imported, the list holds
one failed ``Outcome`` describing that, whatever the number of inputs. Pickles are only loaded from the job's
own call file and the job's own result file.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
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
    return MAGIC + _dump_header(head).encode() + b"\n" + dumps_value(body)


def _dump_header(head: dict[str, Any]) -> str:
    """``json.dumps(head, sort_keys=True)``; without importing json for the usual flat header of
    strings, ints and bools (json costs the runtime's start-up ~2.5 ms)."""
    parts = []
    for key in sorted(head):
        value = head[key]
        if type(value) is str and value.isascii() and value.isprintable() and '"' not in value \
                and "\\" not in value and type(key) is str and key.isidentifier():
            parts.append(f'"{key}": "{value}"')
        elif (type(value) is int or type(value) is bool) and type(key) is str and key.isidentifier():
            parts.append(f'"{key}": {"true" if value is True else "false" if value is False else value}')
        else:
            import json

            return json.dumps(head, sort_keys=True)
    return "{" + ", ".join(parts) + "}"


def _load_header(line: bytes) -> dict[str, Any]:
    """``json.loads(line)``; without importing json for a flat object of plain strings (no escapes),
    ints, booleans and nulls, as ``_dump_header`` writes it. Anything else goes to json."""
    try:
        text = line.decode()
    except UnicodeDecodeError:
        text = ""
    out: dict[str, Any] = {}
    if text.startswith("{") and text.endswith("}") and "\\" not in text:
        i, end = 1, len(text) - 1
        while i < end:
            if text[i] != '"':
                break
            close = text.find('"', i + 1)
            if close < 0 or text[close + 1:close + 3] != ": ":
                break
            key, i = text[i + 1:close], close + 3
            if text.startswith('"', i):
                close = text.find('"', i + 1)
                if close < 0:
                    break
                value: Any = text[i + 1:close]
                i = close + 1
            else:
                stop = text.find(",", i)
                stop = end if stop < 0 else stop
                word = text[i:stop]
                if word in _JSON_WORDS:
                    value = _JSON_WORDS[word]
                elif (digits := word[1:] if word[:1] == "-" else word).isdigit() \
                        and (digits[0] != "0" or word == "0"):
                    value = int(word)
                else:
                    break
                i = stop
            out[key] = value
            if i == end:
                return out
            if text[i:i + 2] != ", ":
                break
            i += 2
        else:
            if i == end and text == "{}":
                return out
    import json

    header = json.loads(line)
    if not isinstance(header, dict):
        raise ProtocolError("not a modalc envelope (the header is not a JSON object)")
    return header


_JSON_WORDS: dict[str, Any] = {"true": True, "false": False, "null": None}


def read_header(data: bytes) -> tuple[dict[str, Any], int]:
    """The header of an envelope and the offset of its body; checks compatibility."""
    if not data.startswith(MAGIC):
        raise ProtocolError("not a modalc envelope (bad magic bytes)")
    end = data.index(b"\n", len(MAGIC))
    header = _load_header(data[len(MAGIC):end])
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


FRAME_HEAD_SIZE = _FRAME_HEAD.size
END_OF_FRAMES = _FRAME_HEAD.pack(0)  # no pickle is empty: a warm worker's stream ends its frames with this


def frame(value: Any) -> bytes:
    """``value`` as one frame: its pickle's length (8 bytes, big-endian), then the pickle."""
    payload = dumps_value(value)
    return _FRAME_HEAD.pack(len(payload)) + payload


def frame_size(head: bytes) -> int:
    """The pickle's length a frame's first ``FRAME_HEAD_SIZE`` bytes give."""
    return int(_FRAME_HEAD.unpack(head)[0])


def append_frame(path: str, value: Any) -> int:
    """Append ``value`` as one frame to the stream file; return the bytes written.

    The frame goes out in one ``O_APPEND`` write loop and is on disk (page
    cache) when this returns, so a reader polling the file sees it at once.
    """
    frame_ = frame(value)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(frame_)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    return len(frame_)


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


class Inputs:
    """A ``.map`` chunk's inputs: each one's positional arguments, and the one keyword dict they all share.

    Reads as a sequence of ``(args, kwargs)`` pairs. Pickled as one list of argument tuples and one dict:
    a pair per input would cost a tuple and a memo reference each, and its unpickling, with the garbage
    collector tracking every pair that holds the dict, takes about five times as long (0.36 s against
    0.07 s for 500,000 inputs)."""

    __slots__ = ("args", "kwargs")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, args: list[tuple[Any, ...]], kwargs: dict[str, Any]) -> None:
        self.args = args
        self.kwargs = kwargs

    def __len__(self) -> int:
        return len(self.args)

    def __getitem__(self, index: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return self.args[index], self.kwargs

    def __iter__(self) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
        kwargs = self.kwargs
        return ((args, kwargs) for args in self.args)

    def slice(self, start: int, stop: int) -> Inputs:
        return Inputs(self.args[start:stop], self.kwargs)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Inputs):
            return (self.args, self.kwargs) == (other.args, other.kwargs)
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"Inputs({self.args!r}, {self.kwargs!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return Inputs, (self.args, self.kwargs)


class Call:
    """The body of a call envelope: one or more inputs for one function (or class method)."""

    __slots__ = ("inputs", "method", "params")
    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it was

    def __init__(self, inputs: list[tuple[tuple[Any, ...], dict[str, Any]]] | Inputs, method: str | None = None,
                 params: dict[str, Any] | None = None) -> None:
        self.inputs = inputs
        self.method = method
        self.params: dict[str, Any] = {} if params is None else params

    def __repr__(self) -> str:
        return f"Call(inputs={self.inputs!r}, method={self.method!r}, params={self.params!r})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Call:
            return NotImplemented
        assert isinstance(other, Call)
        return (self.inputs, self.method, self.params) == (other.inputs, other.method, other.params)

    def __reduce__(self) -> tuple[Any, ...]:
        return Call, (self.inputs, self.method, self.params)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Reads pickles of the dataclass this class was (a ``__dict__`` state)."""
        for name, value in state.items():
            setattr(self, name, value)


class Outcome:
    """What happened to one input: a value, or an exception with its remote traceback."""

    __slots__ = ("attempts", "exc", "exc_repr", "exc_type", "ok", "timed_out", "traceback", "value")
    __hash__ = None  # type: ignore[assignment]
    _FIELDS = ("ok", "value", "exc", "exc_type", "exc_repr", "traceback", "attempts", "timed_out")

    def __init__(self, ok: bool, value: Any = None, exc: BaseException | None = None, exc_type: str = "",
                 exc_repr: str = "", traceback: str = "", attempts: int = 1, timed_out: bool = False) -> None:
        self.ok = ok
        self.value = value
        self.exc = exc
        self.exc_type = exc_type
        self.exc_repr = exc_repr
        self.traceback = traceback
        self.attempts = attempts
        self.timed_out = timed_out

    def _astuple(self) -> tuple[Any, ...]:
        return (self.ok, self.value, self.exc, self.exc_type, self.exc_repr, self.traceback, self.attempts,
                self.timed_out)

    def __repr__(self) -> str:
        fields = ", ".join([f"{name}={value!r}" for name, value in zip(self._FIELDS, self._astuple(), strict=True)])
        return f"Outcome({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Outcome:
            return NotImplemented
        assert isinstance(other, Outcome)
        return self._astuple() == other._astuple()

    def __reduce__(self) -> tuple[Any, ...]:
        return Outcome, self._astuple()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Reads pickles of the dataclass this class was (a ``__dict__`` state)."""
        for name, value in state.items():
            setattr(self, name, value)


class Batch:
    """The outcomes of consecutive inputs that ran in one range: their values (attempt 1), except the inputs
    in ``apart`` (offset -> ``Outcome``: failed, retried, or not plain), whose value slot holds None."""

    __slots__ = ("apart", "values")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, values: list[Any], apart: dict[int, Outcome] | None = None) -> None:
        self.values = values
        self.apart: dict[int, Outcome] = apart or {}

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        return f"Batch(values={self.values!r}, apart={self.apart!r})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Batch:
            return NotImplemented
        assert isinstance(other, Batch)
        return (self.values, self.apart) == (other.values, other.apart)

    def __reduce__(self) -> tuple[Any, ...]:
        return Batch, (self.values, self.apart)

    def outcomes(self) -> list[Outcome]:
        apart = self.apart
        return [apart[i] if i in apart else Outcome(ok=True, value=v) for i, v in enumerate(self.values)]


class Results:
    """A result envelope's body when inputs ran in ranges: ``Batch``es and ``Outcome``s, in input order."""

    __slots__ = ("parts",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, parts: list[Batch | Outcome]) -> None:
        self.parts = parts

    def __len__(self) -> int:
        return sum(len(p) if isinstance(p, Batch) else 1 for p in self.parts)

    def __repr__(self) -> str:
        return f"Results(parts={self.parts!r})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Results:
            return NotImplemented
        assert isinstance(other, Results)
        return self.parts == other.parts

    def __reduce__(self) -> tuple[Any, ...]:
        return Results, (self.parts,)

    def outcomes(self) -> list[Outcome]:
        out: list[Outcome] = []
        for p in self.parts:
            if isinstance(p, Batch):
                out.extend(p.outcomes())
            else:
                out.append(p)
        return out


def as_outcomes(body: Any) -> list[Outcome]:
    """A result envelope's body as one ``Outcome`` per input (a ``Results`` flattened)."""
    return body.outcomes() if isinstance(body, Results) else list(body)

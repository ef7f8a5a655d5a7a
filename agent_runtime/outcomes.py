"""Turning what happened to one input into a pickled ``protocol.Outcome``.

Runs inside allocations (worker and supervisor); standard library only.
Values and exceptions are pickled here, in the process that produced them,
so the supervisor never unpickles user objects: it stores each outcome as
bytes and ``result_body`` wraps them so the client's single ``pickle.loads``
of result.pkl yields the list of ``Outcome`` objects.
"""

from __future__ import annotations

import os
import pickle

from .protocol import Outcome, dumps_value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any

_RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))
_STDLIB_DIR = os.path.dirname(os.path.abspath(os.__file__))


def type_name(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    module = getattr(cls, "__module__", "")
    if module.startswith("agent_runtime.sdk."):  # the names users know: modal.exception.X
        module = "modal." + module[len("agent_runtime.sdk."):]
    return cls.__qualname__ if module in ("builtins", "__main__", "") else f"{module}.{cls.__qualname__}"


def _is_machinery(filename: str) -> bool:
    path = os.path.abspath(filename)
    return (filename.startswith("<frozen") or path.startswith(_RUNTIME_DIR + os.sep)
            or path.startswith(_STDLIB_DIR + os.sep))


def remote_traceback(exc: BaseException) -> str:
    """The formatted traceback, starting at the user's frame (the shim's, importlib's and
    asyncio's leading frames dropped)."""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and _is_machinery(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    import traceback  # only failures need it

    return "".join(traceback.format_exception(type(exc), exc, tb))


def remote_exception(o: Outcome) -> BaseException:
    """The exception an outcome carries, with the remote traceback attached as a note (runs where the call
    was made: on the client, or in the allocation that made a nested call). An exception that crossed
    several allocations keeps one note per allocation, each added once."""
    if o.exc is not None:
        exc = o.exc
    else:
        from .sdk.exception import RemoteError

        exc = RemoteError(f"{o.exc_type}: {o.exc_repr}")
    seen: tuple[str, ...] = getattr(exc, "__modalc_tracebacks__", ())
    if o.traceback and o.traceback not in seen:
        exc.__modalc_tracebacks__ = (*seen, o.traceback)  # type: ignore[attr-defined]
        exc.add_note("Remote traceback (from the allocation):\n" + o.traceback.rstrip("\n"))
    return exc


_SHIM_FILES = tuple(f'File "{os.path.join(_RUNTIME_DIR, name)}"' for name in ("worker.py", "shim.py"))


def user_stacks(dump: str) -> str:
    """faulthandler's dump (most recent call first) cut where the shim's own frames begin."""
    out: list[str] = []
    skipping = False
    for line in dump.splitlines(keepends=True):
        if not line.startswith("  File "):  # a thread's header or a blank line
            skipping = False
            out.append(line)
        elif skipping:
            continue
        elif line.strip().startswith(_SHIM_FILES):
            skipping = True
            out.append("  (the runtime's frames)\n")
        else:
            out.append(line)
    return "".join(out)


def _roundtrips(exc: BaseException) -> bool:
    # Some exceptions pickle but cannot be rebuilt (an __init__ with extra required arguments).
    try:
        pickle.loads(dumps_value(exc))
    except Exception:
        return False
    return True


def failure(exc: BaseException, *, attempts: int = 1, timed_out: bool = False, tb: str | None = None) -> bytes:
    """A failed outcome; the exception itself is kept only if it survives a pickle round trip."""
    text = remote_traceback(exc) if tb is None else tb
    outcome = Outcome(ok=False, exc=exc if _roundtrips(exc) else None, exc_type=type_name(exc),
                      exc_repr=_safe_repr(exc), traceback=text, attempts=attempts, timed_out=timed_out)
    try:
        return dumps_value(outcome)
    except Exception:
        outcome.exc = None
        return dumps_value(outcome)


def success(value: Any, *, attempts: int = 1) -> tuple[bool, bytes]:
    """``(True, outcome)``; or ``(False, failed outcome)`` when the value cannot be pickled."""
    try:
        return True, dumps_value(Outcome(ok=True, value=value, attempts=attempts))
    except Exception as exc:
        from .sdk.exception import ExecutionError

        error = ExecutionError(f"result of type {type_name(value)} could not be pickled: {exc}")
        return False, failure(error, attempts=attempts, tb=f"{type_name(error)}: {error}\n")


def runtime_failure(kind: str, message: str, *, attempts: int = 1, timed_out: bool = False,
                    details: str = "") -> bytes:
    """An outcome the supervisor makes (timeout, crash): ``kind`` names a ``modal.exception`` class;
    ``details`` (the worker's stacks, say) go after the message in the traceback text."""
    from .sdk import exception

    error: BaseException = getattr(exception, kind)(message)
    return failure(error, attempts=attempts, timed_out=timed_out,
                   tb=f"{type_name(error)}: {message}\n{details}")


def _safe_repr(obj: Any) -> str:
    try:
        return repr(obj)
    except Exception:
        return f"<{type_name(obj)} (repr failed)>"


class _Pickled:
    """An already-pickled object that unpickles as itself, inside an outer pickle."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return pickle.loads, (self.data,)


def result_body(outcomes: list[bytes]) -> list[Any]:
    """What to pass as the body of the result envelope: unpickles to ``list[Outcome]``."""
    return [_Pickled(data) for data in outcomes]


class _PickledBatch:
    """A range's values (already pickled) and its inputs apart (pickled outcomes): unpickles as a ``Batch``."""

    __slots__ = ("apart", "values")

    def __init__(self, values: bytes, apart: dict[int, bytes]):
        self.values = values
        self.apart = apart

    def __reduce__(self) -> tuple[Any, ...]:
        from .protocol import Batch

        return Batch, (_Pickled(self.values), {off: _Pickled(data) for off, data in self.apart.items()})


def ranges_body(parts: list[bytes | tuple[int, bytes, dict[int, bytes]]]) -> Any:
    """The body of a result envelope whose inputs ran in ranges: unpickles to a ``protocol.Results``. Each part
    is a pickled outcome, or (inputs, their values' pickle, offset -> pickled outcome of an input apart)."""
    from .protocol import Results

    wrapped: list[Any] = [_Pickled(p) if isinstance(p, bytes) else _PickledBatch(p[1], p[2]) for p in parts]
    return Results(wrapped)


def call_parts(tag: str, result: bytes | None, why: str, n_inputs: int) -> list[Any]:
    """The outcomes of one call's ``n_inputs`` inputs as ``Outcome``s and ``Batch``es (values of consecutive
    inputs) in input order, read from its result (the client's, or a calling allocation's own call); without a
    readable result of that length, each is an ExecutionError saying ``why``."""
    from .protocol import ProtocolError, Results, decode
    from .sdk.exception import ExecutionError  # not at import: this module is on the allocation's start-up path

    if result is not None:
        try:
            _, outcomes = decode(result)
        except ProtocolError as exc:
            raise ExecutionError(f"{tag}: unreadable result from the allocation: {exc}") from None
        if len(outcomes) == n_inputs:
            return list(outcomes.parts) if isinstance(outcomes, Results) else list(outcomes)
    error = ExecutionError(f"{tag}: {why}")
    return [Outcome(ok=False, exc=error, exc_type="ExecutionError", exc_repr=str(error)) for _ in range(n_inputs)]


def call_outcomes(tag: str, result: bytes | None, why: str, n_inputs: int) -> list[Outcome]:
    """``call_parts`` as one ``Outcome`` per input."""
    from .protocol import Batch

    out: list[Outcome] = []
    for p in call_parts(tag, result, why, n_inputs):
        if isinstance(p, Batch):
            out.extend(p.outcomes())
        else:
            out.append(p)
    return out

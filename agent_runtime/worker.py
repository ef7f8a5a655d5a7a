"""The worker process: imports the user's module and runs the call's inputs.

Runs inside allocations, in a child the supervisor (``shim``) forks; standard
library only until the user's code asks for more. It binds ``modal`` to the
compat SDK, puts ``--code`` on ``sys.path``, imports the module, unpickles
the call, runs ``@modal.enter()`` methods once, then waits for RUN commands
and answers each with a DONE message carrying the pickled ``Outcome``. QUIT
runs the ``@modal.exit()`` methods and ends the process.

For a class, the call names the method and carries the parameters. With
``@modal.concurrent(max_inputs=n)`` the worker tells the supervisor its group
size and runs each RUN_MANY group of inputs at once (threads for a sync
function, one event loop for an async one); with ``@modal.batched`` it calls
the function once per group with a list per argument and splits the returned
list back per input (a single RUN is a batch of one).
"""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import sys
from types import AsyncGeneratorType, CoroutineType, FunctionType, GeneratorType

from . import channel, outcomes
from .protocol import STREAM_FILE, Call, Inputs, append_frame

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .args import Options


class _Setup:
    """The user's callable(s), the inputs, and the class instance when there is one."""

    def __init__(self, opts: Options, call_body: bytes | None):
        os.environ["MODALC_IN_CONTAINER"] = "1"  # modal.is_local() is False in here, whatever the env said
        sys.path.insert(0, os.path.abspath(opts.code_dir))
        from .sdk.binding import bind_modal

        bind_modal()
        module = importlib.import_module(opts.module)
        target: Any = module
        for part in opts.qualname.split("."):
            target = getattr(target, part)
        self.call: Call = _loads_call(call_body) if call_body is not None else Call(inputs=[((), {})])
        self.instance: Any = None
        self.exit_methods: list[str] = []
        self.target = target
        self.settings: dict[str, Any] = {}  # {"concurrent": {...}} / {"batched": {...}}
        self.raw: Any = None  # the undecorated function or method (to tell async from sync)
        self.fn = self._resolve(opts.qualname)
        from .sdk.cls import GROUPING, GROUPING_ENV

        override = os.environ.get(GROUPING_ENV)
        if override:  # a with_concurrency / with_batching variant's job: replaces the decorators' grouping
            import json

            self.settings = {**{k: v for k, v in self.settings.items() if k not in GROUPING}, **json.loads(override)}
        concurrent, batched = self.settings.get("concurrent"), self.settings.get("batched")
        self.mode = "batched" if batched else "concurrent" if concurrent else ""
        size = (batched or {}).get("max_batch_size") or (concurrent or {}).get("max_inputs") or 1
        self.group = max(1, int(size))
        code = getattr(self.raw, "__code__", None)
        self.is_async = isinstance(self.raw, FunctionType) and bool(code and code.co_flags & _CO_COROUTINE)

    def _resolve(self, qualname: str) -> Callable[..., Any]:
        from .sdk.cls import Cls

        target = self.target
        if isinstance(target, Cls):
            user_cls = target.user_cls
            method = self.call.method
            if user_cls is None or not method:
                raise TypeError(f"{qualname} is a class: the call must name one of its methods")
            if method not in target.methods:
                raise AttributeError(f"{qualname} has no @modal.method() named {method!r}")
            self._class, self._method = target, method
            self.raw = target.methods[method].raw_f
            self.settings = {**target.partial,
                             **{k: v for k, v in target.methods[method].flags.items() if k == "batched"}}
            return self._bound_method
        raw = getattr(target, "raw_f", target)
        if not callable(raw):
            raise TypeError(f"{qualname} is a {type(raw).__name__}, not a function")
        self.raw = raw
        self.settings = dict(getattr(target, "partial", None) or {})
        return raw  # type: ignore[no-any-return]

    def enter(self) -> None:
        """Build the class instance with its parameters and run its enter methods (user code)."""
        if not hasattr(self, "_class"):
            return
        user_cls: Any = self._class.user_cls
        instance = user_cls.__new__(user_cls)
        for key, value in self.call.params.items():
            setattr(instance, key, value)
        self.instance = instance
        self.exit_methods = self._class.lifecycle("exit")
        for name in self._class.lifecycle("enter"):
            getattr(instance, name)()

    def _bound_method(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.instance, self._method)(*args, **kwargs)

    def exit(self) -> None:
        for name in self.exit_methods:
            try:
                getattr(self.instance, name)()
            except Exception:
                import traceback

                traceback.print_exc()


_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE, without inspect


def _loads_call(body: bytes) -> Call:
    """The call, unpickled with the garbage collector off, its objects then frozen out of its reach: they
    live as long as the allocation, and scanning a million inputs at every collection would triple the
    cost of the loads and slow every input the user's code runs after it."""
    import gc

    gc.disable()
    try:
        call: Call = pickle.loads(body)
    finally:
        gc.enable()
    gc.freeze()
    return call


def _summary(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{outcomes.type_name(exc)}: {lines[0] if lines else ''}"[:300]


def _run_one(setup: _Setup, opts: Options, index: int, attempt: int,
             emit: Callable[[Any], object] | None = None) -> bytes:
    """Run one input; return the DONE payload (``channel.pack_outcome``). A generator's values go to
    ``emit`` (default: appended to the stream file). Retrying a generator that already yielded would
    repeat its values, so that is not retryable."""
    if setup.mode == "batched":
        return _run_batch(setup, [index], attempt)[0]
    args, kwargs = setup.call.inputs[index]
    os.environ["MODALC_INPUT_ID"] = f"in-{index}"
    if emit is None:
        stream = os.path.join(opts.result_dir, STREAM_FILE)

        def emit(item: Any) -> object:
            return append_frame(stream, item)
    yielded = 0
    try:
        result = setup.fn(*args, **kwargs)
        if isinstance(result, CoroutineType):  # what inspect.iscoroutine checks, without inspect
            import asyncio

            result = asyncio.run(result)
        if isinstance(result, GeneratorType):
            for item in result:
                _emit(emit, item)
                yielded += 1
            result = yielded
        elif isinstance(result, AsyncGeneratorType):
            import asyncio

            async def drain(agen: Any) -> int:
                count = 0
                async for item in agen:
                    _emit(emit, item)
                    count += 1
                return count

            result = asyncio.run(drain(result))
    except _UnpicklableYield as err:
        text = _summary(err.error)
        return channel.pack_outcome(False, False, text,
                                    outcomes.failure(err.error, attempts=attempt, tb=text + "\n"))
    except BaseException as exc:  # SystemExit from the user's function is its failure too
        return channel.pack_outcome(False, yielded == 0, _summary(exc), outcomes.failure(exc, attempts=attempt))
    ok, data = outcomes.success(result, attempts=attempt)
    return channel.pack_outcome(ok, False, "" if ok else "result could not be pickled", data)


def _packed(ok_value: tuple[bool, Any], attempt: int) -> bytes:
    ok, value = ok_value
    if ok:
        good, data = outcomes.success(value, attempts=attempt)
        return channel.pack_outcome(good, False, "" if good else "result could not be pickled", data)
    return channel.pack_outcome(False, True, _summary(value), outcomes.failure(value, attempts=attempt))


def _run_batch(setup: _Setup, indices: list[int], attempt: int) -> list[bytes]:
    """``@modal.batched``: one call with a list per argument; the returned list split back per input."""
    inputs = [setup.call.inputs[i] for i in indices]
    try:
        arity, keys = len(inputs[0][0]), sorted(inputs[0][1])
        if any(len(a) != arity or sorted(k) != keys for a, k in inputs):
            raise TypeError("every input of a @modal.batched function must pass the same arguments")
        args = [[a[pos] for a, _ in inputs] for pos in range(arity)]
        kwargs = {key: [k[key] for _, k in inputs] for key in keys}
        os.environ["MODALC_INPUT_ID"] = f"in-{indices[0]}"
        result = setup.fn(*args, **kwargs)
        if isinstance(result, CoroutineType):
            import asyncio

            result = asyncio.run(result)
        if not isinstance(result, (list, tuple)) or len(result) != len(inputs):
            raise TypeError(f"a @modal.batched function must return a list of {len(inputs)} values (one per "
                            f"input), got {outcomes.type_name(result)}"
                            + (f" of {len(result)}" if isinstance(result, (list, tuple)) else ""))
    except BaseException as exc:
        return [_packed((False, exc), attempt) for _ in indices]
    return [_packed((True, value), attempt) for value in result]


def _run_concurrent(setup: _Setup, opts: Options, indices: list[int]) -> list[bytes]:
    """``@modal.concurrent``: the inputs at once, in threads (sync) or on one event loop (async)."""
    if setup.is_async:
        import asyncio

        async def one(index: int) -> bytes:
            args, kwargs = setup.call.inputs[index]
            try:
                return _packed((True, await setup.fn(*args, **kwargs)), 1)
            except BaseException as exc:
                return _packed((False, exc), 1)

        async def gather() -> list[bytes]:
            return list(await asyncio.gather(*(one(i) for i in indices)))

        return asyncio.run(gather())
    import threading

    results: list[bytes] = [b""] * len(indices)

    def work(slot: int) -> None:
        results[slot] = _run_one(setup, opts, indices[slot], 1)

    threads = [threading.Thread(target=work, args=(slot,), daemon=True) for slot in range(len(indices))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


RANGE_FLUSH_S = 0.005  # a RUN_RANGE's finished inputs go to the supervisor at least this often
CLOCK_EVERY = 32  # inputs between two readings of the clock in a RUN_RANGE (a slow input is read after)
_NOT_PLAIN = frozenset((CoroutineType, GeneratorType, AsyncGeneratorType))  # none of them can be subclassed


def _run_range(setup: _Setup, opts: Options, first: int, count: int, messages: int,
               progress: channel.Progress) -> None:
    """A plain function's inputs ``first``..``first + count - 1`` one after the other (RUN_RANGE): their
    values go in one pickle per DONE_RANGE, not one message and one pickle per input."""
    from time import monotonic

    from . import sdk

    inputs = setup.call.inputs
    shared = inputs.kwargs if isinstance(inputs, Inputs) else None
    fn = setup.fn
    state: dict[str, Any] = vars(sdk)  # modal.current_input_id() reads _input_index (an env write per input costs ~2 us)
    word = progress.word  # progress.set without the call
    values: list[Any] = []
    failed: list[tuple[int, bytes]] = []
    start = first
    flush_at = monotonic() + RANGE_FLUSH_S
    check_at = first  # the clock is read every CLOCK_EVERY inputs: a no-op input costs less than reading it
    for index in range(first, first + count):
        if index >= check_at:
            check_at = index + CLOCK_EVERY
            now = monotonic()
            if now >= flush_at and (values or failed):
                _send_range(messages, start, values, failed)
                values, failed, start = [], [], index
                flush_at = now + RANGE_FLUSH_S
        word[0] = index
        state["_input_index"] = index
        try:
            if shared is None:
                args, kwargs = inputs[index]
                result = fn(*args, **kwargs)
            elif shared:
                result = fn(*inputs.args[index], **shared)  # type: ignore[union-attr]
            else:
                result = fn(*inputs.args[index])  # type: ignore[union-attr]
            if result.__class__ in _NOT_PLAIN:
                raise _NotPlain
        except _NotPlain:  # awaited or drained as _run_one does, in its own message part
            values.append(None)
            failed.append((index - start, _finish_one(setup, opts, result, index)))
            continue
        except BaseException as exc:  # SystemExit from the user's function is its failure too
            values.append(None)
            failed.append((index - start, channel.pack_outcome(False, True, _summary(exc),
                                                               outcomes.failure(exc, attempts=1))))
            continue
        values.append(result)
    progress.set(channel.Progress.NONE)
    state["_input_index"] = None
    os.environ["MODALC_INPUT_ID"] = f"in-{first + count - 1}"
    _send_range(messages, start, values, failed)


class _NotPlain(Exception):
    pass


def _finish_one(setup: _Setup, opts: Options, result: Any, index: int) -> bytes:
    """A coroutine's or generator's result in a range: run by _run_one's rules (as its DONE payload)."""
    from . import sdk

    saved = setup.fn
    setup.fn = lambda *a, **k: result
    sdk._input_index = None  # _run_one sets the environment's MODALC_INPUT_ID
    try:
        return _run_one(setup, opts, index, 1)
    finally:
        setup.fn = saved
        sdk._input_index = index


def _send_range(messages: int, first: int, values: list[Any], failed: list[tuple[int, bytes]]) -> None:
    from .protocol import dumps_value

    try:
        data = dumps_value(values)
    except Exception:  # a value cannot be pickled: find which, and fail those inputs alone
        apart = dict(failed)
        for off, value in enumerate(values):
            if off not in apart:
                ok, packed = outcomes.success(value)
                if not ok:
                    values[off] = None
                    apart[off] = channel.pack_outcome(False, False, "result could not be pickled", packed)
        failed = sorted(apart.items())
        data = dumps_value(values)
    channel.send(messages, channel.DONE_RANGE, channel.pack_range(first, len(values), data, failed))


def _run_many(setup: _Setup, opts: Options, first: int, count: int) -> bytes:
    indices = list(range(first, first + count))
    parts = _run_batch(setup, indices, 1) if setup.mode == "batched" else _run_concurrent(setup, opts, indices)
    return channel.pack_many(parts)


class _UnpicklableYield(Exception):
    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


def _stopped(setup: _Setup, signum: int) -> None:
    """SIGTERM while a class instance is up: its ``@modal.exit()`` methods run (interrupting the input in
    progress, as when Modal stops a container), then the worker ends."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    setup.exit()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(128 + signum)


def _emit(emit: Callable[[Any], object], item: Any) -> None:
    try:
        emit(item)
    except OSError:  # where the values go is gone (a warm worker's client hung up): not the value's fault
        raise
    except Exception as exc:
        from .sdk.exception import ExecutionError

        raise _UnpicklableYield(ExecutionError(
            f"yielded value of type {outcomes.type_name(item)} could not be pickled: {exc}")) from None


def main(opts: Options, call_body: bytes | None, commands: int, messages: int,
         progress: channel.Progress | None = None) -> None:
    """The worker's whole life; never returns (``os._exit``), so the supervisor's state stays its own."""
    code = 0
    try:
        os.setpgid(0, 0)  # its own group: a timeout kills whatever the user's code started too
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # On a timeout the supervisor asks for the stacks (SIGUSR1) before it kills: the outcome
        # then says where the function was stuck, even inside C code.
        import faulthandler

        stacks = open(channel.stack_file(opts.result_dir, os.getpid()), "w")  # noqa: SIM115 - lives as long as the process
        faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True)
        try:
            setup = _Setup(opts, call_body)
        except BaseException as exc:
            channel.send(messages, channel.INFRA,
                         channel.pack_outcome(False, False, _summary(exc), outcomes.failure(exc)))
            return
        channel.send(messages, channel.READY, channel.READY_BODY.pack(len(setup.call.inputs), setup.group))
        entered: bytes | None = None
        try:
            setup.enter()
        except BaseException as exc:
            # Answered to the first RUN: the supervisor fails every remaining input with it.
            entered = channel.pack_outcome(False, False, _summary(exc), outcomes.failure(exc))
        else:
            if setup.exit_methods:  # stopped (Nomad stops the task, Ctrl-C, cancel): exit methods first
                signal.signal(signal.SIGTERM, lambda signum, frame: _stopped(setup, signum))
        receiver = channel.Receiver(commands)
        while True:
            message = receiver.receive()
            if message is None or message[0] == channel.QUIT:
                if entered is None:
                    setup.exit()
                return
            if entered is not None:
                channel.send(messages, channel.FATAL, entered)
                return
            if message[0] == channel.RUN_RANGE and progress is not None:
                first, count = channel.RUN_RANGE_BODY.unpack(message[1])
                _run_range(setup, opts, first, count, messages, progress)
                continue
            if message[0] == channel.RUN_MANY:
                first, count = channel.RUN_MANY_BODY.unpack(message[1])
                channel.send(messages, channel.DONE_MANY, _run_many(setup, opts, first, count))
                continue
            index, attempt = channel.RUN_BODY.unpack(message[1])
            channel.send(messages, channel.DONE, _run_one(setup, opts, index, attempt))
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 70
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

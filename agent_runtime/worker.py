"""The worker process: imports the user's module and runs inputs one at a time.

Runs inside allocations, in a child the supervisor (``shim``) forks; standard
library only until the user's code asks for more. It binds ``modal`` to the
compat SDK, puts ``--code`` on ``sys.path``, imports the module, unpickles
the call, runs ``@modal.enter()`` methods once, then waits for RUN commands
and answers each with a DONE message carrying the pickled ``Outcome``. QUIT
runs the ``@modal.exit()`` methods and ends the process.
"""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import sys
from types import AsyncGeneratorType, CoroutineType, GeneratorType

from . import channel, outcomes
from .protocol import Call, append_frame

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
        self.call: Call = pickle.loads(call_body) if call_body is not None else Call(inputs=[((), {})])
        self.instance: Any = None
        self.exit_methods: list[str] = []
        self.target = target
        self.fn = self._resolve(opts.qualname)

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
            return self._bound_method
        raw = getattr(target, "raw_f", target)
        if not callable(raw):
            raise TypeError(f"{qualname} is a {type(raw).__name__}, not a function")
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


def _summary(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{outcomes.type_name(exc)}: {lines[0] if lines else ''}"[:300]


def _run_one(setup: _Setup, opts: Options, index: int, attempt: int) -> bytes:
    """Run one input; return the DONE payload (``channel.pack_outcome``). Retrying a generator that already
    yielded would repeat its values, so that is not retryable."""
    args, kwargs = setup.call.inputs[index]
    os.environ["MODALC_INPUT_ID"] = f"in-{index}"
    stream = os.path.join(opts.result_dir, "stream.pkl")
    yielded = 0
    try:
        result = setup.fn(*args, **kwargs)
        if isinstance(result, CoroutineType):  # what inspect.iscoroutine checks, without inspect
            import asyncio

            result = asyncio.run(result)
        if isinstance(result, GeneratorType):
            for item in result:
                _append(stream, item)
                yielded += 1
            result = yielded
        elif isinstance(result, AsyncGeneratorType):
            import asyncio

            async def drain(agen: Any) -> int:
                count = 0
                async for item in agen:
                    _append(stream, item)
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


class _UnpicklableYield(Exception):
    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


def _append(stream: str, item: Any) -> None:
    try:
        append_frame(stream, item)
    except Exception as exc:
        from .sdk.exception import ExecutionError

        raise _UnpicklableYield(ExecutionError(
            f"yielded value of type {outcomes.type_name(item)} could not be pickled: {exc}")) from None


def main(opts: Options, call_body: bytes | None, commands: int, messages: int) -> None:
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
        channel.send(messages, channel.READY, len(setup.call.inputs).to_bytes(8, "big"))
        entered: bytes | None = None
        try:
            setup.enter()
        except BaseException as exc:
            # Answered to the first RUN: the supervisor fails every remaining input with it.
            entered = channel.pack_outcome(False, False, _summary(exc), outcomes.failure(exc))
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

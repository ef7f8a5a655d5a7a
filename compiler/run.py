"""An app run: compile, start a backend, install the invoker, run the entrypoint, clean up.

Runs on the client. Used by ``modalc run`` and by ``with app.run():`` in the
user's own script. Nomad is used whenever an address is configured
(``NOMAD_ADDR``), the local backend otherwise or with ``--local``. However
the run ends (return, exception, Ctrl-C, SIGTERM), every allocation it
started is stopped.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import signal
import sys
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from agent_runtime.protocol import write_atomic
from agent_runtime.sdk import _state

from . import preflight, run_secrets
from .acl_policy import secret_names
from .backends.base import Backend
from .call_broker import CallBroker
from .client import Invoker
from .entrypoint_args import parse_entrypoint_args, parse_method_args
from .errors import UserError
from .graph import AppGraph
from .ir import CompiledApp
from .lower import BuildOptions
from .variants import variant_compiler

_OWN_DIRS = tuple(os.path.dirname(os.path.abspath(m)) + os.sep for m in (__file__, _state.__file__))


def select_backend(*, local: bool, quiet: bool) -> Backend:
    if not local and os.environ.get("NOMAD_ADDR"):
        from .backends.nomad import NomadBackend

        return NomadBackend.from_env(quiet=quiet)
    from .backends.local import LocalBackend, LogSink

    return LocalBackend(sink=LogSink(quiet=False))


def max_containers(graph: AppGraph) -> dict[str, int]:
    out = {}
    for node in graph.functions:
        value = node.options.get("max_containers")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            out[node.tag] = value
    return out


@contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """Ctrl-C and SIGTERM end a run with KeyboardInterrupt, so cleanup runs.

    SIGINT is set explicitly: a process started in the background by a shell
    inherits it ignored, and then Ctrl-C (or ``kill -INT``) would do nothing.
    """
    if not threading_main():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _stderr_line(line: str) -> None:
    sys.stderr.write(line + "\n")


@contextmanager
def app_run(compiled: CompiledApp, graph: AppGraph, *, local: bool = False, quiet: bool = False,
            detach: bool = False, backend: Backend | None = None,
            volume_plugin: str | None = None, build_options: BuildOptions | None = None) -> Iterator[Invoker]:
    """Check, start the app's jobs on a backend and install the invoker for the SDK's calls.

    Before anything is submitted: named secrets and volumes are checked (``preflight``) and run-scoped
    secrets resolved; those are published for the run's lifetime (``run_secrets``)."""
    backend = backend or select_backend(local=local, quiet=quiet)
    run_id = f"{compiled.app_name}-{uuid.uuid4().hex[:8]}"
    try:
        preflight.check_before_run(backend, graph, compiled, volume_plugin=volume_plugin, echo=_stderr_line)
        secret_values = run_secrets.resolve(graph, compiled)
    except BaseException:
        backend.stop(detach=False)  # nothing was submitted; this only releases the backend
        raise
    invoker = Invoker(backend, compiled, max_containers=max_containers(graph), quiet=quiet,
                      compile_variant=variant_compiler(graph, build_options or BuildOptions(mode="run")))
    with run_secrets.published(backend, secret_values, run_id, detach=detach):
        previous = _state.set_invoker(invoker)
        broker = None
        try:
            with _signals_as_interrupt():
                if backend.uses_call_broker:  # calls made inside the run's allocations come back here
                    broker = CallBroker(backend, invoker.function, invoker.concurrency, invoker.nested_web_url)
                    backend.call_env = broker.env
                backend.policy_secrets = tuple(secret_names(graph, compiled))
                backend.policy_variables = tuple(run_secrets.run_paths(secret_values, run_id))
                backend.start(compiled, run_id=run_id)
                # What loading and compiling left (the user's modules, the SDK, modalc, its HCL and template
                # libraries) lives as long as the run: frozen, the collector stops rescanning it, which was a
                # full collection of ~20 ms in the first .map's input reading.
                gc.freeze()
                yield invoker
        finally:
            _state.set_invoker(previous)
            if broker is not None:
                broker.close()  # no new calls from allocations while the run's allocations are stopped
            invoker.close()
            backend.stop(detach=detach)


def user_traceback(exc: BaseException) -> str:
    """The traceback of an exception with modalc's own frames left out (notes kept)."""
    te = traceback.TracebackException.from_exception(exc)

    def trim(t: traceback.TracebackException) -> None:
        t.stack = traceback.StackSummary.from_list(
            [f for f in t.stack if not os.path.abspath(f.filename).startswith(_OWN_DIRS)])
        if t.__cause__:
            trim(t.__cause__)
        if t.__context__:
            trim(t.__context__)

    trim(te)
    return "".join(te.format())


def call_entrypoint(runnable: Any, argv: list[str], *, prog: str, detach: bool) -> Any:
    """Run the resolved entrypoint with its parsed command-line arguments."""
    if runnable.kind == "local_entrypoint":
        f = runnable.obj.raw_f
        if inspect.isgeneratorfunction(f) or inspect.isasyncgenfunction(f):
            raise UserError(f"{runnable.tag}: a local entrypoint cannot be a generator",
                            location=runnable.obj.location)
        args, kwargs = parse_entrypoint_args(f, argv, prog=prog, location=runnable.obj.location)
        result = f(*args, **kwargs)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        return result
    if runnable.kind == "function":
        fn = runnable.obj
        args, kwargs = parse_entrypoint_args(fn.raw_f, argv, prog=prog, location=fn.location)
        if detach:
            return fn.spawn(*args, **kwargs)
        if fn.is_generator:
            return list(fn.remote_gen(*args, **kwargs))
        return fn.remote(*args, **kwargs)
    if runnable.kind == "method":
        cls = runnable.obj
        params, kwargs = parse_method_args(cls, runnable.method, argv, prog=prog, location=cls.location)
        method = getattr(cls(**params), runnable.method)
        if detach:
            return method.spawn(**kwargs)
        if method.is_generator:
            return list(method.remote_gen(**kwargs))
        return method.remote(**kwargs)
    raise UserError(f"{runnable.name}: cannot be run", hint="run a function, a class method or a local entrypoint")


def write_result(path: str, value: Any) -> None:
    if isinstance(value, str):
        data = value.encode()
    elif isinstance(value, bytes):
        data = value
    else:
        raise UserError(f"--write-result needs the function to return str or bytes, got {type(value).__name__}")
    write_atomic(os.path.abspath(path), data)


def run_main_entrypoint(invoke: Any) -> int:
    """Run ``invoke()``; turn an exception from user code into its traceback and exit code 1."""
    try:
        invoke()
    except (UserError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # the user's entrypoint (or a remote call) raised
        sys.stderr.write(user_traceback(exc))
        return 1
    return 0

"""The invoker's call semantics (ordering, exceptions, chunking, payload limits), on an in-process backend.

The backend here decodes each call envelope and runs the raw function in
this process: it isolates the client's logic from process start-up. The
real local backend and the runtime are tested with real subprocesses
elsewhere.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from agent_runtime import protocol
from agent_runtime.protocol import Call, Outcome
from agent_runtime.sdk import _state
from agent_runtime.sdk.binding import bind_modal
from agent_runtime.sdk.functions import Target
from compiler.backends.base import AllocResult, Backend, Dispatch
from compiler.client import Invoker
from compiler.errors import UserError
from compiler.graph import build_graph
from compiler.ir import CompiledApp, FunctionJob
from compiler.loader import load
from compiler.lower import BuildOptions, lower_app
from compiler.refs import parse_import_ref

APP = '''
import time
import modal

app = modal.App("client-test")


@app.function(max_containers=3)
def double(x, delay=0.0):
    time.sleep(delay)
    if x == 13:
        raise ValueError("unlucky 13")
    return 2 * x


@app.function()
def echo(data):
    return data
'''


class InProcessBackend(Backend):
    """Runs each dispatch's inputs with the raw function, in a thread of this process."""

    name = "in-process"

    def __init__(self, functions: dict[str, Any], max_payload_bytes: int | None = None):
        self.functions = functions
        self.max_payload_bytes = max_payload_bytes
        self.dispatches: list[int] = []
        self.payload_sizes: list[int] = []
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()
        self._results: dict[str, bytes] = {}

    def start(self, app: CompiledApp, *, run_id: str) -> None:
        pass

    def dispatch(self, fn: FunctionJob, payload: bytes, *, call_id: str) -> Dispatch:
        _, call = protocol.decode(payload)
        with self._lock:
            self.dispatches.append(len(call.inputs))
            self.payload_sizes.append(len(payload))
            self.active += 1
            self.peak = max(self.peak, self.active)
        outcomes = []
        for args, kwargs in call.inputs:
            try:
                outcomes.append(Outcome(ok=True, value=self.functions[fn.tag](*args, **kwargs)))
            except Exception as exc:
                outcomes.append(Outcome(ok=False, exc=exc, exc_type=type(exc).__name__, exc_repr=repr(exc),
                                        traceback="Traceback (most recent call last):\n  remote frame\n"))
        time.sleep(0.01)
        with self._lock:
            self.active -= 1
        self._results[call_id] = protocol.encode("result", outcomes)
        return Dispatch(function=fn.tag, dispatch_id=call_id, call_id=call_id)

    def wait(self, dispatch: Dispatch, timeout: float | None = None) -> AllocResult:
        return AllocResult(exit_code=0, result=self._results.pop(dispatch.dispatch_id))

    def cancel(self, dispatch: Dispatch) -> None:
        pass

    def stop(self, *, detach: bool = False) -> None:
        pass


@pytest.fixture
def app_and_invoker(tmp_path: Any, request: Any) -> Any:
    script = tmp_path / "client_app.py"
    script.write_text(APP)
    bind_modal()
    loaded = load(parse_import_ref(str(script)))
    graph = build_graph(loaded, "app")
    compiled = lower_app(graph, BuildOptions(mode="run"))
    module = loaded.module
    backend = InProcessBackend({"double": module.double.raw_f, "echo": module.echo.raw_f},
                               max_payload_bytes=getattr(request, "param", None))
    invoker = Invoker(backend, compiled, max_containers={"double": 3}, quiet=True)
    previous = _state.set_invoker(invoker)
    yield module, backend, invoker
    _state.set_invoker(previous)
    invoker.close()


def test_remote_returns_value(app_and_invoker: Any) -> None:
    module, backend, _ = app_and_invoker
    assert module.double.remote(21) == 42
    assert backend.dispatches == [1]


def test_remote_reraises_with_remote_traceback(app_and_invoker: Any) -> None:
    module, _, _ = app_and_invoker
    with pytest.raises(ValueError, match="unlucky 13") as info:
        module.double.remote(13)
    assert any("Remote traceback" in note and "remote frame" in note for note in info.value.__notes__)


def test_map_is_ordered_and_batched(app_and_invoker: Any) -> None:
    module, backend, _ = app_and_invoker
    inputs = [x for x in range(101) if x != 13]
    assert list(module.double.map(inputs)) == [2 * x for x in inputs]
    # 100 inputs over 3 containers: far fewer allocations than inputs.
    assert sum(backend.dispatches) == 100
    assert len(backend.dispatches) <= 12
    assert backend.peak <= 3


def test_map_unordered_and_return_exceptions(app_and_invoker: Any) -> None:
    module, _, _ = app_and_invoker
    out = list(module.double.map(range(20), order_outputs=False, return_exceptions=True))
    errors = [o for o in out if isinstance(o, ValueError)]
    assert len(errors) == 1 and "unlucky" in str(errors[0])
    assert sorted(o for o in out if not isinstance(o, Exception)) == sorted(2 * x for x in range(20) if x != 13)


def test_map_raises_first_error(app_and_invoker: Any) -> None:
    module, _, _ = app_and_invoker
    with pytest.raises(ValueError):
        list(module.double.map(range(20)))


def test_starmap_kwargs_and_for_each(app_and_invoker: Any) -> None:
    module, _backend, _ = app_and_invoker
    assert list(module.double.starmap([(1,), (2,)], kwargs={"delay": 0})) == [2, 4]
    assert module.double.for_each(range(5)) is None
    assert list(module.double.map([1, 2], [0.0, 0.0])) == [2, 4]


def test_spawn_get_and_gather(app_and_invoker: Any) -> None:
    module, _, _ = app_and_invoker
    modal = __import__("modal")
    calls = [module.double.spawn(i) for i in range(5)]
    assert all(c.object_id.startswith("fc-") for c in calls)
    assert modal.FunctionCall.gather(*calls) == [0, 2, 4, 6, 8]
    assert modal.FunctionCall.from_id(calls[2].object_id).get(timeout=5) == 4


def test_aio_forms(app_and_invoker: Any) -> None:
    import asyncio

    module, _, _ = app_and_invoker

    async def main() -> tuple[int, list[int]]:
        one = await module.double.remote.aio(4)
        many = [x async for x in module.double.map.aio(range(3))]
        return one, many

    assert asyncio.run(main()) == (8, [0, 2, 4])


@pytest.mark.parametrize("app_and_invoker", [2048], indirect=True)
def test_payload_limit_splits_chunks_and_names_the_limit(app_and_invoker: Any) -> None:
    module, backend, _ = app_and_invoker
    data = ["x" * 300 for _ in range(40)]
    assert list(module.echo.map(data)) == data
    assert max(backend.payload_sizes) <= 2048
    with pytest.raises(UserError, match="at most 2048 bytes") as info:
        module.echo.remote("y" * 5000)
    assert "blob store" in info.value.hint or "Volume" in info.value.hint


def test_unknown_function_is_a_clear_error(app_and_invoker: Any) -> None:
    _, _, invoker = app_and_invoker
    from agent_runtime.sdk.exception import ExecutionError

    with pytest.raises(ExecutionError, match=r"no function 'nope' in app 'client-test' \(this run's functions: .*double"):
        invoker.call(Target(app_name="client-test", tag="nope"), (), {})


def test_calls_outside_a_run_say_how_to_run() -> None:
    bind_modal()
    import modal

    app = modal.App("outside")

    @app.function()
    def f() -> int:
        return 1

    previous = _state.set_invoker(None)
    try:
        with pytest.raises(modal.exception.ExecutionError, match="modalc run"):
            f.remote()
        assert f.local() == 1
    finally:
        _state.set_invoker(previous)


def test_call_envelope_round_trip() -> None:
    data = protocol.encode("call", Call(inputs=[((1,), {"a": 2})]))
    header, call = protocol.decode(data)
    assert header["kind"] == "call" and call.inputs == [((1,), {"a": 2})]


def test_functions_gather_is_modal_0x_spelling(app_and_invoker: Any) -> None:
    module, _, _ = app_and_invoker
    import modal.functions

    calls = [module.double.spawn(i) for i in (1, 2, 3)]
    assert modal.functions.gather(*calls) == [2, 4, 6]


def test_batcher_gathers_concurrent_inputs_and_shares_a_failure() -> None:
    from compiler.batching import Batcher

    runs: list[int] = []

    def run(items: list[Any]) -> list[Outcome]:
        runs.append(len(items))
        if any(args == (-1,) for args, _ in items):
            raise RuntimeError("the batch's dispatch failed")
        return [Outcome(ok=True, value=args[0] * 10) for args, _ in items]

    batcher = Batcher(run, size=3, wait_s=5.0)
    results: dict[int, Any] = {}

    def submit(x: int) -> None:
        try:
            results[x] = batcher.submit(((x,), {})).value
        except RuntimeError as exc:
            results[x] = str(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=submit, args=(x,)) for x in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {1: 10, 2: 20, 3: 30} and runs == [3] and time.monotonic() - started < 4  # full: no wait
    lone = Batcher(run, size=3, wait_s=0.05)
    assert lone.submit(((7,), {})).value == 70 and runs[-1] == 1  # wait_ms passed: a batch of one
    threads = [threading.Thread(target=submit, args=(x,)) for x in (-1, 5, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[-1] == results[5] == results[6] == "the batch's dispatch failed"


def test_options_of_a_deployed_class_are_refused_not_ignored(app_and_invoker: Any) -> None:
    _, backend, invoker = app_and_invoker
    from agent_runtime.sdk.exception import ExecutionError

    with pytest.raises(ExecutionError, match=r"other-app\.Model\.with_options.*deployed with"):
        invoker.call(Target(app_name="other-app", tag="Model", method="run", options=(("gpu", "A100"),)), (), {})
    assert backend.dispatches == []


def test_map_reads_a_generator_lazily_within_a_bounded_window(app_and_invoker: Any) -> None:
    from compiler import client

    module, backend, _ = app_and_invoker
    pulled = 0
    total = 200_000

    def numbers() -> Any:
        nonlocal pulled
        for x in range(total):
            pulled += 1
            yield x if x != 13 else 12

    out = module.double.map(numbers())
    assert next(out) == 0
    # At most LOOKAHEAD inputs to size the chunks, then WINDOW_PER_WORKER chunks per container (3 here).
    bound = client.LOOKAHEAD + 3 * client.WINDOW_PER_WORKER * client.MAX_CHUNK
    assert pulled <= bound < total
    rest = list(out)
    assert len(rest) == total - 1 and rest[-1] == 2 * (total - 1)
    assert pulled == total
    assert backend.peak <= 3

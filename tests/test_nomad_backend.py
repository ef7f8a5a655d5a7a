"""The Nomad backend (compiler/backends/nomad.py) over real HTTP against the Nomad test double.

In-process: the app is compiled once, each test runs calls through an
``Invoker`` on a ``NomadBackend`` pointed at a fresh double, with faults
injected. After every test no job of the run remains registered.
"""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_runtime.sdk.exception import ExecutionError
from agent_runtime.sdk.functions import Target
from compiler.backends.local import LogSink
from compiler.backends.nomad import NomadBackend
from compiler.backends.nomad_api import NomadSettings
from compiler.client import Invoker
from compiler.errors import UserError
from compiler.phases import CompilerData
from tests.helpers import compile_for_run
from tests.nomad_double import NomadDouble

ROOT = Path(__file__).resolve().parents[1]

APP = textwrap.dedent("""
    import time
    import modal

    app = modal.App("nb")

    @app.function()
    def square(x: int) -> int:
        print(f"squaring {x}")
        return x * x

    @app.function()
    def nap(s: float) -> str:
        print("napping", flush=True)
        time.sleep(s)
        return "rested"

    @app.function()
    def boom(x: int) -> int:
        raise ValueError(f"bad {x}")

    @app.function()
    def count(n: int):
        for i in range(n):
            yield i

    @app.function(gpu="H100")
    def gpu_fn() -> int:
        return 1

    @app.function()
    def ticker(n: int, every: float):
        for i in range(n):
            yield i, time.time()
            time.sleep(every)

    @app.function()
    def chatty(s: float) -> str:
        import sys
        print("working", file=sys.stderr, flush=True)
        time.sleep(s)
        print("finished", file=sys.stderr, flush=True)
        return "said"
""")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> CompilerData:
    return compile_for_run(tmp_path_factory.mktemp("nb"), "nb_app", APP)


class Run:
    def __init__(self, double: NomadDouble, data: CompilerData, **kw: object):
        self.double = double
        settings = NomadSettings.from_env({}, address=double.address, token=kw.pop("token", None))
        sink = kw.pop("sink", None) or LogSink(quiet=True)
        self.backend = NomadBackend(settings, sink=sink, **kw)  # type: ignore[arg-type]
        self.backend.api.backoff = 0.01
        self.backend.start(data.compiled, run_id=f"nb-{os.urandom(3).hex()}")
        self.invoker = Invoker(self.backend, data.compiled, quiet=True)

    def call(self, tag: str, *args: object) -> object:
        return self.invoker.call(Target(app_name=None, tag=tag), args, {})

    def children(self) -> list[str]:
        return [j for (_, j), job in self.double.jobs.items() if job.get("ParentID")]

    def close(self) -> None:
        self.invoker.close()
        self.backend.stop()
        assert not self.double.jobs, f"jobs left registered: {list(self.double.jobs)}"


@pytest.fixture
def run(double: NomadDouble, compiled: CompilerData) -> Iterator[Run]:
    r = Run(double, compiled)
    try:
        yield r
    finally:
        r.close()


def test_remote_map_and_generator(run: Run) -> None:
    parents = {j for (_, j), job in run.double.jobs.items() if not job.get("ParentID")}
    assert len(parents) == 7
    for job_id in parents:
        meta = run.double.jobs[("default", job_id)]["Meta"]
        assert meta["modalc_ephemeral"] == "true" and meta["modalc_run"] == run.backend.run_id
    before = len(run.double.requests)
    assert run.call("square", 7) == 49
    # dispatch, allocations, followed stdout, the allocation's end (blocking queries: Nomad keeps the followed
    # stream open, hashicorp/nomad#18369), the rest of stdout, stderr, the result
    assert len(run.double.requests) - before <= 8
    before = run.double.count_requests("POST", r"/dispatch$")
    assert list(run.invoker.map(Target(app_name=None, tag="square"), [(i,) for i in range(20)], {})) == [
        i * i for i in range(20)]
    assert run.double.count_requests("POST", r"/dispatch$") - before == 1  # min_chunk: one dispatch
    assert list(run.invoker.call_generator(Target(app_name=None, tag="count"), (5,), {})) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="bad 3"):
        run.call("boom", 3)


class Recorder(LogSink):
    """Records when each line of allocation output arrived."""

    def __init__(self) -> None:
        super().__init__(quiet=True)
        self.lines: list[tuple[float, str, str, bool]] = []  # (when, prefix, text, on stderr)

    def line(self, prefix: str, text: str, stream: Any) -> None:
        self.lines.append((time.monotonic(), prefix, text, stream is sys.stderr))


def test_stderr_of_a_long_call_is_streamed_live_and_of_a_short_one_read_once(double: NomadDouble,
                                                                            compiled: CompilerData) -> None:
    sink = Recorder()
    r = Run(double, compiled, sink=sink)
    try:
        before = double.count_requests("GET", r"/client/fs/logs/")
        assert r.call("chatty", 0) == "said"
        # stdout followed, the rest of stdout read once the task ended (Nomad keeps the followed stream open),
        # stderr read
        assert double.count_requests("GET", r"/client/fs/logs/") - before == 3
        assert [(p, t, e) for _, p, t, e in sink.lines] == [("chatty", "working\n", True),
                                                            ("chatty", "finished\n", True)]
        sink.lines.clear()
        assert r.call("chatty", 3) == "said"
        ended = time.monotonic()
        assert [(p, t, e) for _, p, t, e in sink.lines] == [("chatty", "working\n", True),
                                                            ("chatty", "finished\n", True)]
        assert ended - sink.lines[0][0] > 1.0  # "working" was printed while the call still ran
    finally:
        r.close()


def test_generator_values_arrive_while_it_runs(run: Run) -> None:
    lags = [time.time() - sent for _, sent in run.invoker.call_generator(Target(app_name=None, tag="ticker"),
                                                                         (30, 0.05), {})]
    assert len(lags) == 30
    assert sorted(lags)[len(lags) // 2] < 0.3 and max(lags) < 0.8  # read as they come, not once a second


def test_dispatch_5xx_and_lost_answers_are_retried_never_duplicated(run: Run) -> None:
    run.double.faults.fail_next(2, r"/dispatch$", status=500)
    assert run.call("square", 3) == 9
    assert len(run.children()) == 1
    run.double.faults.drop_next(1, r"/dispatch$", after=True)  # applied by Nomad, answer lost
    assert run.call("square", 4) == 16
    assert len(run.children()) == 2
    assert run.double.count_requests("POST", r"/dispatch$") == 5


def test_connection_errors_and_slow_responses(run: Run) -> None:
    run.double.faults.drop_next(1, r"/allocations$")
    run.double.faults.fail_next(1, r"/client/fs/logs/", status=502)
    run.double.faults.fail_next(1, r"/client/fs/cat/", status=503)
    run.double.faults.delay(0.3, r"/dispatch$", n=2)
    assert run.call("square", 5) == 25
    assert run.call("square", 6) == 36
    assert len(run.children()) == 2


def test_forbidden_without_a_valid_token(double: NomadDouble, compiled: CompilerData) -> None:
    double.token = "right-token"
    settings = NomadSettings.from_env({}, address=double.address, token="wrong-s3cret")
    backend = NomadBackend(settings, sink=LogSink(quiet=True))
    with pytest.raises(UserError) as info:
        backend.start(compiled.compiled, run_id="nb-403")
    backend.stop()
    text = str(info.value) + str(info.value.hint or "") + repr(backend.settings)
    assert "403" in text and "NOMAD_TOKEN" in text and "wrong-s3cret" not in text
    assert not double.jobs


def test_unplaceable_gpu_call_names_the_constraint_and_gives_up(double: NomadDouble, compiled: CompilerData) -> None:
    r = Run(double, compiled, placement_timeout=1.0)
    try:
        started = time.monotonic()
        with pytest.raises(ExecutionError) as info:
            r.call("gpu_fn")
        assert 1.0 <= time.monotonic() - started < 10
        msg = str(info.value)
        assert "could not be placed within 1 s" in msg
        assert "no node offers an nvidia/gpu matching ^(NVIDIA |Tesla )?H(100|200)( .*)?$" in msg
    finally:
        r.close()


def test_failed_allocation_is_explained(run: Run) -> None:
    run.double.faults.fail_next_allocs(1, exit_code=3)
    with pytest.raises(ExecutionError, match=r"exited with code 3 \(bad call envelope.*without writing a result"):
        run.call("square", 2)


def _dispatch_nap(run: Run, seconds: float) -> tuple[object, str]:
    fn = run.invoker.functions["nap"]
    from agent_runtime import protocol
    from agent_runtime.protocol import Call

    payload = protocol.encode("call", Call(inputs=[((seconds,), {})], method=None, params={}))
    dispatch = run.backend.dispatch(fn, payload, call_id=os.urandom(4).hex())
    allocs = [a for a in run.double.allocs.values() if a["JobID"] == dispatch.dispatch_id]
    return dispatch, allocs[0]["ID"]


def test_lost_allocation_is_explained(run: Run) -> None:
    dispatch, alloc_id = _dispatch_nap(run, 30)
    threading.Timer(0.5, run.double.lose_allocation, args=(alloc_id,)).start()
    result = run.backend.wait(dispatch)  # type: ignore[arg-type]
    assert result is not None and result.result is None
    assert f"allocation {alloc_id[:8]} was lost" in result.failure


def test_allocation_garbage_collected_before_its_result_is_read(run: Run) -> None:
    dispatch, alloc_id = _dispatch_nap(run, 0)
    run.double.wait_alloc_terminal(alloc_id)
    run.double.gc_allocation(alloc_id)
    result = run.backend.wait(dispatch)  # type: ignore[arg-type]
    assert result is not None and result.result is None
    assert "garbage-collected by its Nomad client before its result was read" in result.failure


def test_stop_purges_running_children_and_parents(double: NomadDouble, compiled: CompilerData) -> None:
    r = Run(double, compiled)
    _dispatch_nap(r, 30)
    assert len(r.children()) == 1
    r.close()  # asserts nothing is left


def test_rescheduled_allocation_is_followed_to_its_replacement(run: Run) -> None:
    dispatch, first = _dispatch_nap(run, 1.5)
    d = run.double

    def reschedule() -> None:
        with d._cond:
            job = d.jobs[("default", dispatch.dispatch_id)]  # type: ignore[attr-defined]
            replacement = d._place(job, job["TaskGroups"][0], 0, d.allocs[first]["EvalID"])
            replacement["PreviousAllocation"] = first
            d.allocs[first]["NextAllocation"] = replacement["ID"]
        d.lose_allocation(first)

    threading.Timer(0.3, reschedule).start()
    result = run.backend.wait(dispatch)  # type: ignore[arg-type]
    assert result is not None and result.result is not None and not result.failure


def test_task_event_failures_are_explained() -> None:
    from compiler.backends.nomad import explain_failure

    def alloc(*events: dict[str, object]) -> dict[str, object]:
        return {"ID": "abcdef0123", "ClientStatus": "failed",
                "Job": {"TaskGroups": [{"Tasks": [{"Resources": {"MemoryMB": 256}}]}]},
                "TaskStates": {"main": {"Events": list(events)}}}

    oom = alloc({"Type": "Terminated", "ExitCode": 137, "Details": {"oom_killed": "true"}})
    assert "OOM-killed: it used more than its memory limit of 256 MiB" in explain_failure(oom, gone=False)
    driver = alloc({"Type": "Driver Failure", "DriverError": "image pull failed: not found"})
    assert "failed to start: Driver Failure: image pull failed" in explain_failure(driver, gone=False)
    crashed = alloc({"Type": "Terminated", "ExitCode": 1, "Signal": 0})
    assert "exited with code 1 (the function raised" in explain_failure(crashed, gone=False)

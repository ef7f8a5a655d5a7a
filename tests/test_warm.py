"""Warm workers (compiler/warm_pool.py, agent_runtime/serve.py): reuse, scaling, failures, authentication.

Real worker processes, on the local backend and against the Nomad test double.
"""

from __future__ import annotations

import http.client
import os
import pickle
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_runtime import protocol
from agent_runtime.protocol import Call
from agent_runtime.sdk.exception import ExecutionError
from agent_runtime.sdk.functions import Target
from compiler.backends.base import Backend, Dispatch
from compiler.backends.local import LocalBackend, LogSink
from compiler.backends.nomad import NomadBackend
from compiler.backends.nomad_api import NomadSettings
from compiler.client import Invoker
from compiler.phases import CompilerData
from compiler.warm_pool import WarmPool
from tests.helpers import compile_for_run, running, stops_within
from tests.nomad_double.double import NomadDouble

ROOT = Path(__file__).resolve().parents[1]


def refuses(address: tuple[str, int], seconds: float = 5.0) -> bool:
    """Whether connecting to ``address`` is refused within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection(*address, timeout=1)
            conn.connect()
        except ConnectionRefusedError:
            return True
        except OSError:
            pass
        else:
            conn.close()
        time.sleep(0.02)
    return False


APP = '''
import os
import signal
import time

import modal

app = modal.App("warm-test")


@app.function(scaledown_window=30)
def ident(data=b""):
    return os.getpid(), len(data)


@app.function(max_containers=2, scaledown_window=30)
@modal.concurrent(max_inputs=4)
def nap(seconds):
    start = time.time()
    time.sleep(seconds)
    return os.getpid(), start, time.time()


@app.function(max_containers=2, scaledown_window=30)
def slow(seconds):
    time.sleep(seconds)
    return os.getpid()


@app.function(scaledown_window=1)
def brief():
    return os.getpid()


@app.function(scaledown_window=30, retries=1)
def dies_once(marker):
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


@app.function(scaledown_window=30, retries=0)
def dies(marker):
    os.kill(os.getpid(), signal.SIGKILL)


@app.function(scaledown_window=30, timeout=1)
def hangs():
    time.sleep(30)


@app.function(min_containers=1, scaledown_window=30)
def kept():
    return os.getpid()


@app.function(max_containers=3, buffer_containers=1, scaledown_window=30)
def buffered():
    return os.getpid()


IMPORTED_AT = time.time()  # once per process: a warm worker imports the module once


@app.function(max_containers=2, scaledown_window=30)
def square(x):
    return x * x, os.getpid(), IMPORTED_AT


@app.function(max_containers=1, scaledown_window=30, timeout=1)
def paced(x, stall=-1):
    time.sleep(30 if x == stall else 0.55)
    return x, os.getpid()


@app.function(max_containers=1, scaledown_window=30, retries=0)
def crashes_on(x, culprit):
    if x == culprit:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


@app.function(scaledown_window=30, retries=1)
def ticks(n, pause=0.0, fail_at=-1):
    for i in range(n):
        if i == fail_at:
            raise ValueError(f"tick {i} failed")
        yield i, os.getpid(), time.time()
        time.sleep(pause)


@app.cls(scaledown_window=30)
class Streamer:
    @modal.enter()
    def load(self):
        self.loaded_by = os.getpid()

    @modal.method()
    def words(self, text):
        for word in text.split():
            yield word, self.loaded_by


@app.cls(scaledown_window=30)
class Batcher:
    @modal.batched(max_batch_size=4, wait_ms=10)
    def double(self, xs):
        return [(x * 2, len(xs)) for x in xs]


@app.cls(scaledown_window=30, timeout=1)
class StuckBatch:
    @modal.batched(max_batch_size=4, wait_ms=10)
    def echo(self, xs):
        if 5 in xs:
            time.sleep(30)
        return xs


@app.cls(scaledown_window=30)
class Counter:
    start: int = modal.parameter(default=0)

    @modal.enter()
    def setup(self):
        self.n = self.start

    @modal.method()
    def bump(self):
        self.n += 1
        return os.getpid(), self.n
'''


class Marker:
    """A pickle whose loading creates a file: proof that a refused request was never unpickled."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> CompilerData:
    return compile_for_run(tmp_path_factory.mktemp("warm"), "warm_app", APP)


class Run:
    def __init__(self, backend: Backend, data: CompilerData, double: NomadDouble | None = None):
        self.backend = backend
        self.double = double
        backend.start(data.compiled, run_id=f"warm-{os.urandom(3).hex()}")
        self.invoker = Invoker(backend, data.compiled, quiet=True)

    def call(self, tag: str, *args: Any, method: str | None = None, params: tuple[tuple[str, Any], ...] = ()) -> Any:
        return self.invoker.call(Target(app_name=None, tag=tag, method=method, params=params), args, {})

    def spawn(self, tag: str, *args: Any) -> str:
        return self.invoker.spawn(Target(app_name=None, tag=tag), args, {})

    def map(self, tag: str, *iterables: Any, method: str | None = None) -> list[Any]:
        return list(self.invoker.map(Target(app_name=None, tag=tag, method=method), zip(*iterables, strict=True), {},
                                     return_exceptions=True))

    def gen(self, tag: str, *args: Any, method: str | None = None) -> Iterator[Any]:
        return self.invoker.call_generator(Target(app_name=None, tag=tag, method=method), args, {})

    def pool(self, tag: str) -> WarmPool:
        return next(p for (t, _), p in self.invoker._pools.items() if t == tag)

    def close(self) -> None:
        self.invoker.close()
        self.backend.stop()


@pytest.fixture
def local(compiled: CompilerData) -> Iterator[Run]:
    run = Run(LocalBackend(sink=LogSink(quiet=True)), compiled)
    try:
        yield run
    finally:
        run.close()


@pytest.fixture
def nomad(tmp_path: Path, compiled: CompilerData) -> Iterator[Run]:
    double = NomadDouble(root_dir=tmp_path / "double",
                         extra_env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)})
    double.start()
    backend = NomadBackend(NomadSettings.from_env({}, address=double.address), sink=LogSink(quiet=True))
    backend.api.backoff = 0.01
    run = Run(backend, compiled, double)
    try:
        yield run
    finally:
        run.close()
        double.stop()


@pytest.mark.parametrize("where", ["local", "nomad"])
def test_first_call_starts_a_worker_later_calls_reuse_it(where: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(where)
    pids = {run.call("ident")[0] for _ in range(5)}
    big = b"x" * (100 * 1024)  # far over a dispatch payload's 16 KiB
    pid, size = run.call("ident", big)
    assert size == len(big) and pids == {pid}
    assert run.pool("ident").started == 1
    if run.double is not None:
        assert run.double.count_requests("POST", r".*/dispatch") == 1
        token_vars = [path for (_, path) in run.double.variables if path.startswith("nomad/jobs/")]
        assert len(token_vars) == 1
        job = run.double.job(token_vars[0][len("nomad/jobs/"):])
        assert job is not None and "MODALC_WARM_TOKEN" not in repr(job)  # never in a spec
    run.close()
    assert not running(pid) or time.sleep(0.5) or not running(pid)
    if run.double is not None:
        assert not run.double.jobs and not run.double.variables


def test_discovery_waits_on_nomads_blocking_queries(nomad: Run) -> None:
    nomad.call("ident")
    service = nomad.pool("ident").warm.service
    other = Dispatch(function="ident", dispatch_id="a-worker-not-registered-yet", call_id="x")
    before = len(nomad.double.requests)
    assert nomad.backend.endpoint(other, service) is None  # the first look answers at once
    assert nomad.backend.endpoint(other, service) is None  # then: wait for a change (up to 1 s), not poll
    first, second = [r for r in nomad.double.requests[before:] if r.path == f"/v1/service/{service}"]
    assert "index" not in first.query
    assert int(second.query["index"][0]) > 0 and second.query["wait"] == ["1s"]


def test_concurrent_calls_overlap_in_one_worker(local: Run) -> None:
    calls = [local.spawn("nap", 0.5) for _ in range(4)]
    results = [local.invoker.get(c, timeout=30) for c in calls]
    assert len({pid for pid, _, _ in results}) == 1
    assert max(e for _, _, e in results) - min(s for _, s, _ in results) < 0.9


def test_scale_up_to_max_containers(local: Run) -> None:
    calls = [local.spawn("slow", 0.6) for _ in range(5)]
    pids = {local.invoker.get(c, timeout=30) for c in calls}
    assert len(pids) == 2 and local.pool("slow").started == 2


def test_idle_worker_exits_after_scaledown_window(local: Run) -> None:
    pid = local.call("brief")
    deadline = time.monotonic() + 10
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(pid)
    assert local.call("brief") != pid  # a fresh worker
    assert local.pool("brief").started == 2


def test_min_containers_start_with_the_pool_and_stay(local: Run) -> None:
    pid = local.call("kept")
    assert local.pool("kept").started == 1 and running(pid)


def test_buffer_containers_keep_an_idle_worker(local: Run) -> None:
    local.call("buffered")
    pool = local.pool("buffered")
    deadline = time.monotonic() + 10
    while sum(w.ready for w in pool._workers) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.started == 2 and pool.workers() == 2


def test_unreachable_worker_is_dropped_and_replaced(local: Run) -> None:
    pid = local.call("ident")[0]
    address = local.pool("ident")._workers[0].address
    assert address is not None
    os.kill(pid, signal.SIGKILL)  # ident has no retries: the call must not count this as an attempt
    assert stops_within(pid)
    assert refuses(address)  # every thread gone, so nothing holds its port: a connection is refused
    assert local.call("ident")[0] != pid
    assert local.pool("ident").started == 2


@pytest.mark.parametrize("where", ["local", "nomad"])
def test_map_is_served_by_the_warm_workers(where: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(where)
    out = run.map("square", range(200))
    assert [v for v, _, _ in out] == [x * x for x in range(200)]
    workers = {(pid, imported) for _, pid, imported in out}
    assert len(workers) == len({pid for pid, _ in workers}) <= 2  # each worker imported the module once
    started = run.pool("square").started  # a second worker may start yet get no input before the end
    assert len(workers) <= started <= 2
    if run.double is not None:  # the workers' dispatches only: no dispatch per chunk
        assert run.double.count_requests("POST", r".*/dispatch") == started


def test_each_input_of_a_warm_map_has_its_own_timeout(local: Run) -> None:
    out = local.map("paced", range(8))  # 2 inputs per request: 1.1 s per request, 0.55 s per input
    assert [x for x, _ in out] == list(range(8)) and len({pid for _, pid in out}) == 1


def test_a_timed_out_input_fails_alone_and_the_rest_of_its_request_is_sent_again(local: Run) -> None:
    out = local.map("paced", range(8), [5] * 8)
    assert type(out[5]).__name__ == "FunctionTimeoutError"
    assert [o[0] for i, o in enumerate(out) if i != 5] == [0, 1, 2, 3, 4, 6, 7]
    assert local.pool("paced").started == 2  # the worker exits after a timeout; a fresh one takes the rest


def test_a_worker_killed_during_a_request_of_several_inputs_fails_only_the_culprit(local: Run) -> None:
    out = local.map("crashes_on", range(12), [6] * 12)
    assert isinstance(out[6], ExecutionError) and "warm worker ended" in str(out[6])
    assert [o for i, o in enumerate(out) if i != 6] == [i for i in range(12) if i != 6]


@pytest.mark.parametrize("where", ["local", "nomad"])
def test_a_warm_generator_streams_its_values_as_they_come(where: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(where)
    first = list(run.gen("ticks", 3))
    assert [i for i, _, _ in first] == [0, 1, 2]
    got = [(i, pid, time.time() - sent) for i, pid, sent in run.gen("ticks", 3, 0.4)]
    assert [i for i, _, _ in got] == [0, 1, 2] and got[0][2] < 0.6  # on arrival: buffered, it would lag 0.8 s
    assert run.pool("ticks").started == 1 and {pid for _, pid, _ in first} == {pid for _, pid, _ in got}
    if run.double is not None:
        assert run.double.count_requests("POST", r".*/dispatch") == 1  # the worker's only
    words = list(run.gen("Streamer", "a warm stream", method="words"))
    assert [w for w, _ in words] == ["a", "warm", "stream"]
    again = list(run.gen("Streamer", "again", method="words"))
    assert again[0][1] == words[0][1]  # entered once


def test_a_warm_generator_that_fails_after_yielding_is_not_retried(local: Run) -> None:
    seen = []
    with pytest.raises(ValueError, match="tick 2 failed"):
        for i, _, _ in local.gen("ticks", 5, 0.0, 2):
            seen.append(i)
    assert seen == [0, 1]  # retries=1, but a retry would repeat 0 and 1
    assert [i for i, _, _ in local.gen("ticks", 2)] == [0, 1]  # the worker still serves


def test_a_warm_generator_left_early_leaves_the_pool_usable(local: Run) -> None:
    stream = local.gen("ticks", 50, 0.01)
    assert next(stream)[0] == 0
    stream.close()
    assert [i for i, _, _ in local.gen("ticks", 3)] == [0, 1, 2]


def test_a_warm_batched_method_gets_full_batches_from_a_map(local: Run) -> None:
    out = local.map("Batcher", range(8), method="double")
    assert out == [(x * 2, 4) for x in range(8)]


def test_every_input_of_a_timed_out_batch_fails_with_the_timeout(local: Run) -> None:
    out = local.map("StuckBatch", range(8), method="echo")
    assert out[:4] == [0, 1, 2, 3]
    assert [type(o).__name__ for o in out[4:]] == ["FunctionTimeoutError"] * 4


def test_class_instance_entered_once_per_parameters(local: Run) -> None:
    first = [local.call("Counter", method="bump", params=(("start", 10),)) for _ in range(3)]
    assert [n for _, n in first] == [11, 12, 13] and len({p for p, _ in first}) == 1
    assert local.call("Counter", method="bump", params=(("start", 0),))[1] == 1


@pytest.mark.parametrize("where", ["local", "nomad"])
def test_worker_killed_mid_call_is_retried_elsewhere(where: str, request: pytest.FixtureRequest,
                                                     tmp_path: Path) -> None:
    run: Run = request.getfixturevalue(where)
    assert running(run.call("dies_once", str(tmp_path / "once")))
    assert run.pool("dies_once").started == 2


def test_worker_killed_without_retries_fails_clearly(local: Run, tmp_path: Path) -> None:
    with pytest.raises(ExecutionError, match="warm worker ended while running the call"):
        local.call("dies", str(tmp_path / "x"))


def test_timeout_answers_and_ends_the_worker(local: Run) -> None:
    with pytest.raises(Exception, match="timed out after 1 seconds") as info:
        local.call("hangs")
    assert type(info.value).__name__ == "FunctionTimeoutError"


@pytest.mark.parametrize("where", ["local", "nomad"])
def test_requests_without_the_token_are_refused_before_unpickling(where: str, request: pytest.FixtureRequest,
                                                                  tmp_path: Path) -> None:
    run: Run = request.getfixturevalue(where)
    run.call("ident")
    address = run.pool("ident")._workers[0].address
    assert address is not None
    marker = tmp_path / "unpickled"
    body = protocol.MAGIC + b'{"kind": "call"}\n' + pickle.dumps(Call(inputs=[((Marker(str(marker)),), {})]))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        conn = http.client.HTTPConnection(*address, timeout=10)
        conn.request("POST", "/call", body=body, headers=headers)
        assert conn.getresponse().status == 401
        conn.close()
    assert not marker.exists()
    conn = http.client.HTTPConnection(*address, timeout=10)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    conn.close()
    assert run.call("ident")[1] == 0  # the worker still serves its client


def test_stop_leaves_no_worker_running(compiled: CompilerData) -> None:
    run = Run(LocalBackend(sink=LogSink(quiet=True)), compiled)
    pid = run.call("kept")
    assert running(pid)
    run.close()
    deadline = time.monotonic() + 5
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def test_a_warm_function_has_no_web_url(local: Run) -> None:
    # its job registers a service for its workers, but it is not a web endpoint
    assert local.invoker.deployed_web_url("warm-test", "ident") is None

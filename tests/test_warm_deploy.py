"""Warm pools of deployed apps (compiler/warm_deploy.py, WarmPool(deployed=True)) against the Nomad test double:
deploy keeps min_containers workers, Function.from_name calls go to them, extra workers scale down, app stop
leaves nothing. Real worker processes; the double is a double of Nomad's API, not a cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agent_runtime.sdk.functions import Target
from compiler.backends.local import LogSink
from compiler.backends.nomad import NomadBackend
from compiler.backends.nomad_api import NomadAPI, NomadSettings
from compiler.client import Invoker
from compiler.ir import CompiledApp
from compiler.lower import BuildOptions
from compiler.nomad_commands import app_list, app_stop, deploy_app
from compiler.phases import CompilerData
from compiler.refs import parse_import_ref
from tests.helpers import running
from tests.nomad_double.double import NomadDouble

APP = '''
import os
import time

import modal

app = modal.App("wd")


@app.function(min_containers=1, max_containers=2, scaledown_window=2)
def ident(seconds=0.0):
    time.sleep(seconds)
    return os.getpid()


@app.function()
def plain():
    return os.getpid()
'''

JOB = "wd-ident"
DISPATCH = r".*/job/wd-ident/dispatch"


def _compile(tmp_path: Path, text: str = APP) -> CompilerData:
    path = tmp_path / "wd.py"
    path.write_text(text)
    return CompilerData(parse_import_ref(str(path)), BuildOptions(mode="deploy"),
                        select_ref=False)


def _api(double: NomadDouble) -> NomadAPI:
    return NomadAPI(NomadSettings.from_env({}, address=double.address))


def _workers(api: NomadAPI) -> int:
    try:
        regs, _ = api.service(f"{JOB}-rpc")
    except Exception:
        return 0
    live = {j["ID"] for j in api.jobs(prefix=f"{JOB}/") if j.get("Status") in ("pending", "running")}
    return sum(1 for r in regs if r.get("JobID") in live)


def _until(what: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _token(double: NomadDouble) -> str:
    var = double.variables[("default", f"nomad/jobs/{JOB}")]
    return str((var.get("Items") or {})["MODALC_WARM_TOKEN"])


class Caller:
    """Another app's run calling the deployed functions (Function.from_name)."""

    def __init__(self, double: NomadDouble):
        self.backend = NomadBackend(NomadSettings.from_env({}, address=double.address), sink=LogSink(quiet=True))
        self.backend.api.backoff = 0.01
        self.backend.start(CompiledApp(app_name="caller", functions=(), warnings=()), run_id="caller-1")
        self.invoker = Invoker(self.backend, CompiledApp(app_name="caller", functions=(), warnings=()), quiet=True)

    def call(self, tag: str, *args: Any) -> Any:
        return self.invoker.call(Target(app_name="wd", tag=tag), args, {})

    def close(self) -> None:
        self.invoker.close()
        self.backend.stop()


def test_deployed_pool_min_workers_from_name_scaledown_redeploy_stop(double: NomadDouble, tmp_path: Path) -> None:
    data = _compile(tmp_path)
    lines: list[str] = []
    with _api(double) as api:
        deploy_app(api, data.compiled, lines.append)
        assert double.count_requests("POST", DISPATCH) == 1  # the one minimum worker
        assert double.count_requests("POST", r".*/job/wd-plain/dispatch") == 0
        token = _token(double)
        assert token not in repr(double.job(JOB)) and token not in "\n".join(lines)  # never in a spec or output
        assert "MODALC_WARM_TOKEN" not in repr(double.job(JOB))
        _until(lambda: _workers(api) == 1)

        caller = Caller(double)
        try:
            pid = caller.call("ident")
            assert caller.call("ident") == pid
            assert double.count_requests("POST", DISPATCH) == 1  # no dispatch for the calls: the warm worker
            with ThreadPoolExecutor(2) as pool:  # both busy: the caller starts one more (max_containers=2)
                pids = set(pool.map(lambda s: caller.call("ident", s), [1.5, 1.5]))
            assert len(pids) == 2 and pid in pids
            assert double.count_requests("POST", DISPATCH) == 2
            caller.call("plain")  # not warm: dispatched per call, as before
            assert double.count_requests("POST", r".*/job/wd-plain/dispatch") == 1
        finally:
            caller.close()
        assert (("default", JOB)) in double.jobs  # the run purged neither the deployed job nor its workers
        assert _workers(api) >= 1
        _until(lambda: _workers(api) == 1)  # the extra worker exits after scaledown_window (2 s) idle

        out: list[str] = []
        app_list(api, out.append)
        assert "(1 warm worker(s))" in "\n".join(out)

        deploy_app(api, _compile(tmp_path).compiled, lines.append)  # unchanged: same token, same workers
        assert _token(double) == token and double.count_requests("POST", DISPATCH) == 2 and _workers(api) == 1

        caller = Caller(double)
        try:
            assert caller.call("ident") == pid  # the same minimum worker, found through the service catalog
        finally:
            caller.close()

        stopped: list[str] = []
        assert app_stop(api, "wd", stopped.append) == 0
    assert not double.jobs and not double.variables
    _until(lambda: not running(pid), timeout=10)


def test_redeploy_of_a_changed_job_replaces_the_minimum_workers(double: NomadDouble, tmp_path: Path) -> None:
    with _api(double) as api:
        deploy_app(api, _compile(tmp_path).compiled, lambda line: None)
        token = _token(double)
        _until(lambda: _workers(api) == 1)
        changed = APP.replace("min_containers=1", "min_containers=2")
        lines: list[str] = []
        deploy_app(api, _compile(tmp_path, changed).compiled, lines.append)
        assert _token(double) == token
        assert any("2 minimum worker(s), 2 started, 1 old one(s) stopped" in line for line in lines), lines
        _until(lambda: _workers(api) == 2)
        deploy_app(api, _compile(tmp_path, changed).compiled, lambda line: None, rotate_token=True)
        assert _token(double) != token
        assert app_stop(api, "wd", lambda line: None) == 0
    assert not double.jobs and not double.variables



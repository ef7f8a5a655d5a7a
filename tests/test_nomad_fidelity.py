"""Real-cluster timing against the Nomad test double (issue 10): what a Nomad agent answers, and modalc with it.

The double follows Nomad's texts and codes here (each cited where the double implements it):
logs before the task started are 404 ``task "main" not started yet`` (client/fs_endpoint.go), a file that is
not there is 400 ``stat ...: no such file or directory`` (client/fs_endpoint.go stream), an unknown
allocation is 404 ``unknown alloc ID`` / ``Unknown allocation`` (nomad/client_fs_endpoint.go).
"""

from __future__ import annotations

import io
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from compiler.backends.local import LogSink
from compiler.phases import CompilerData
from tests.nomad_double import NomadDouble
from tests.test_nomad_backend import Run, _dispatch_nap, compiled  # noqa: F401  (the module's app fixture)


def _get(double: NomadDouble, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(double.address + path, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_double_answers_as_nomad_before_start_for_missing_files_and_unknown_allocations(
        double: NomadDouble, compiled: CompilerData) -> None:  # noqa: F811
    double.task_start_delay = 3.0
    run = Run(double, compiled)
    try:
        _, alloc_id = _dispatch_nap(run, 0)
        assert _get(double, f"/v1/client/fs/logs/{alloc_id}?task=main&type=stdout&plain=true") == (
            404, 'task "main" not started yet. No logs available')
        status, text = _get(double, f"/v1/client/fs/cat/{alloc_id}?path=alloc/data/nothing.pkl")
        assert status == 400 and text.endswith("alloc/data/nothing.pkl: no such file or directory")
        assert _get(double, "/v1/client/fs/logs/00000000-0000-0000-0000-000000000000?task=main&type=stdout") == (
            404, 'unknown alloc ID "00000000-0000-0000-0000-000000000000"')
        double.wait_alloc_terminal(alloc_id)
    finally:
        run.close()


def test_a_task_that_starts_seconds_late_is_waited_for_not_taken_for_garbage_collected(
        double: NomadDouble, compiled: CompilerData) -> None:  # noqa: F811
    double.task_start_delay = 3.0
    run = Run(double, compiled)
    try:
        started = time.monotonic()
        assert run.call("square", 7) == 49
        assert time.monotonic() - started >= 3.0
        assert double.count_requests("GET", r"/v1/allocation/") >= 1  # it waited on the allocation
    finally:
        run.close()


def test_a_task_that_ends_before_the_first_log_read_still_gives_its_result(
        double: NomadDouble, compiled: CompilerData) -> None:  # noqa: F811
    run = Run(double, compiled)
    try:
        double.faults.delay(1.5, pattern=r"/v1/client/fs/logs/", n=1)
        assert run.call("square", 5) == 25
    finally:
        run.close()


def test_a_result_file_that_was_never_written_is_explained_not_a_400_error(
        double: NomadDouble, compiled: CompilerData) -> None:  # noqa: F811
    run = Run(double, compiled)
    try:
        double.faults.fail_next_allocs(1, exit_code=1)
        with pytest.raises(Exception, match="exited with code 1"):
            run.call("square", 2)
    finally:
        run.close()


def test_an_unplaceable_call_says_why_within_seconds_and_runs_when_capacity_appears(
        double: NomadDouble, compiled: CompilerData, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    run = Run(double, compiled, sink=LogSink(), placement_timeout=60.0)
    try:
        out: dict[str, object] = {}
        t = threading.Thread(target=lambda: out.setdefault("v", run.call("gpu_fn")), daemon=True)
        started = time.monotonic()
        t.start()
        while "waiting for placement" not in err.getvalue():
            assert time.monotonic() - started < 5, err.getvalue()
            time.sleep(0.05)
        note = err.getvalue()
        assert "[gpu_fn] waiting for placement:" in note and "nvidia/gpu" in note and "H(100|200)" in note
        double.provide_gpus()
        t.join(30)
        assert out.get("v") == 1
    finally:
        run.close()

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


def test_rpc_errors_are_500_with_their_text_and_modalc_reports_them_without_retrying(
        double: NomadDouble, compiled: CompilerData) -> None:  # noqa: F811
    """Job validation and dispatch errors are plain RPC errors: 500 (command/agent/http.go errCodeFromHandler).
    modalc reads them as Nomad's answer (a user error, said once), not as an outage to retry."""
    from compiler.backends.nomad_api import NomadAPI, NomadRejected, NomadSettings

    with NomadAPI(NomadSettings.from_env({}, address=double.address), backoff=0.01) as api:
        bad = {"ID": "bad", "Name": "bad", "Type": "batch", "Datacenters": ["dc1"],
               "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "raw_exec",
                                                       "Resources": {"memory_mb": 64}}]}]}
        with pytest.raises(NomadRejected) as err:
            api.register(bad)
        assert "Nomad rejected register job 'bad': 2 errors occurred:" in str(err.value)
        assert err.value.exit_code == 2 and "reachable" not in str(err.value)
        before = double.count_requests("POST", r"/dispatch$")
        with pytest.raises(NomadRejected, match="parameterized job not found"):
            api.dispatch("no-such-job", b"x", {"modalc_call": "c1"}, idempotency_token="t1")
        assert double.count_requests("POST", r"/dispatch$") - before == 1  # an answer: not retried


def test_a_call_to_a_job_stopped_from_outside_says_so_at_once(
        double: NomadDouble, compiled: CompilerData) -> None:  # noqa: F811
    """`nomad job stop` (no purge) of a run's parameterized job: Nomad answers dispatches with 500
    `Specified job "<id>" is stopped` (nomad/job_endpoint.go Dispatch); the double did not check."""
    from compiler.errors import UserError

    run = Run(double, compiled)
    try:
        parent = run.backend.parents["square"]
        run.backend.api.deregister(parent, purge=False)
        assert double.jobs[("default", parent)]["Stop"] is True
        started = time.monotonic()
        with pytest.raises(UserError, match=r"square cannot be called: its job .* is stopped"):
            run.call("square", 3)
        assert time.monotonic() - started < 5
    finally:
        run.close()


def test_a_child_purged_before_placement_is_noticed_not_waited_for(
        double: NomadDouble, compiled: CompilerData) -> None:  # noqa: F811
    """Nomad lists no allocations, never a 404, for a job it does not have (command/agent/job_endpoint.go
    jobAllocations); a purge from outside while a call waits for placement ends the wait with the reason."""
    run = Run(double, compiled, placement_timeout=60)  # the double has no GPUs: gpu_fn waits for placement
    try:
        from agent_runtime import protocol
        from agent_runtime.protocol import Call

        fn = run.invoker.functions["gpu_fn"]
        payload = protocol.encode("call", Call(inputs=[((), {})], method=None, params={}))
        dispatch = run.backend.dispatch(fn, payload, call_id="purged")
        threading.Timer(3.0, run.backend.api.deregister, args=(dispatch.dispatch_id,), kwargs={"purge": True}).start()
        started = time.monotonic()
        result = run.backend.wait(dispatch)
        assert result is not None and result.failure and "stopped and purged" in result.failure
        assert time.monotonic() - started < 15
        assert _get(double, f"/v1/job/{dispatch.dispatch_id}/allocations") == (200, "[]")
        assert _get(double, f"/v1/job/{dispatch.dispatch_id}") == (404, "job not found")
        assert _get(double, f"/v1/job/{dispatch.dispatch_id}/versions") == (404, "job versions not found")
    finally:
        run.close()


def test_a_followed_log_stays_open_after_the_task_ended_and_calls_end_all_the_same(
        double: NomadDouble, compiled: CompilerData, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Nomad does not end a followed log stream when the task ends (client/fs_endpoint.go logsImpl;
    hashicorp/nomad#18369). modalc ends the call from the allocation's state, and prints every line,
    including the last ones written just before the exit (read once more without following)."""
    import requests

    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    run = Run(double, compiled, sink=LogSink())
    try:
        started = time.monotonic()
        assert run.call("chatty", 1.5) == "said"  # stderr followed live, then the task ends
        assert time.monotonic() - started < 10
        assert "[chatty] working" in err.getvalue() and "[chatty] finished" in err.getvalue()
        assert run.call("square", 6) == 36 and "[square] squaring 6" in out.getvalue()
        _, alloc_id = _dispatch_nap(run, 0)
        double.wait_alloc_terminal(alloc_id)
        url = f"{double.address}/v1/client/fs/logs/{alloc_id}"
        with requests.get(url, params={"task": "main", "type": "stdout", "follow": "true", "plain": "true"},
                          stream=True, timeout=(5, 1.5)) as resp:
            assert resp.status_code == 200
            got = b""
            with pytest.raises(requests.exceptions.ConnectionError):  # the read times out: still open
                for chunk in resp.iter_content(chunk_size=None):
                    got += chunk
            assert got == b"napping\n"
    finally:
        run.close()


def test_unknown_objects_answer_as_nomad_does(double: NomadDouble) -> None:
    """Texts and codes for what is not there (command/agent/*_endpoint.go, nomad/job_endpoint.go)."""
    import requests

    from compiler.backends.nomad_api import NomadAPI, NomadRejected, NomadSettings

    nobody = "00000000-0000-0000-0000-000000000000"
    assert _get(double, f"/v1/allocation/{nobody}") == (404, "alloc not found")
    assert _get(double, f"/v1/evaluation/{nobody}") == (404, "eval not found")
    assert _get(double, "/v1/service/nobody-registered-this") == (200, "[]")
    assert _get(double, "/v1/job/nothing/evaluations") == (200, "[]")
    r = requests.delete(f"{double.address}/v1/job/nothing", params={"purge": "true"}, timeout=10)
    assert r.status_code == 200 and r.json()["EvalID"] == ""  # Deregister: `if job == nil { return nil }`
    with NomadAPI(NomadSettings.from_env({}, address=double.address), backoff=0.01) as api:
        job = {"ID": "idx", "Name": "idx", "Type": "batch", "Datacenters": ["dc1"],
               "ParameterizedJob": {"Payload": "optional"},
               "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "raw_exec",
                                                       "Config": {"command": "true"}}]}]}
        with pytest.raises(NomadRejected, match="Enforcing job modify index 7: job does not exist"):
            api.register({"Job": job, "EnforceIndex": True, "JobModifyIndex": 7})
        api.register(job)
        api.deregister("idx")

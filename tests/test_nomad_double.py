"""Tests of the Nomad TEST DOUBLE (tests/nomad_double) and of compiler/backends/nomad_api.py.

Everything goes over real HTTP to the double on 127.0.0.1; the double runs
allocations as local processes. No Nomad cluster is involved.
"""

from __future__ import annotations

import base64
import os
import sys
import time
from typing import Any

import pytest
import requests

from compiler.backends.nomad_api import NomadAPI, NomadConflict, NomadError, NomadNotFound, NomadSettings
from compiler.errors import UserError
from tests.nomad_double import NomadDouble
from tests.nomad_double.fixtures import nomad_double

__all__ = ["nomad_double"]

TASK_CODE = r"""
import os, sys
data = open(os.path.join(os.environ["NOMAD_TASK_DIR"], "input.bin"), "rb").read()
with open(os.path.join(os.environ["NOMAD_ALLOC_DIR"], "data", "out.bin"), "wb") as f:
    f.write(bytes(reversed(data)) + b"\xff\x00")
print("job", os.environ["NOMAD_JOB_ID"], "parent", os.environ["NOMAD_JOB_PARENT_ID"])
print("meta", os.environ["NOMAD_META_call_id"], os.environ["NOMAD_META_CALL_ID"], os.environ["NOMAD_META_opt"] == "")
print("alloc", os.environ["NOMAD_ALLOC_NAME"], os.environ["NOMAD_ALLOC_INDEX"], os.environ["NOMAD_SHORT_ALLOC_ID"])
print("env", os.environ["GREETING"])
print("oops", file=sys.stderr)
"""


def param_job(job_id: str = "fn", code: str = TASK_CODE) -> dict[str, Any]:
    return {
        "ID": job_id, "Name": job_id, "Type": "batch", "Datacenters": ["dc1"],
        "ParameterizedJob": {"Payload": "required", "MetaRequired": ["call_id"], "MetaOptional": ["opt"]},
        "Meta": {"app": "demo"},
        "TaskGroups": [{"Name": "main", "Count": 1, "Tasks": [{
            "Name": "run", "Driver": "raw_exec",
            "Config": {"command": sys.executable, "args": ["-c", code]},
            "Env": {"GREETING": "hi from ${NOMAD_TASK_NAME}"},
            "DispatchPayload": {"File": "input.bin"},
            "Resources": {"CPU": 100, "MemoryMB": 64},
        }]}],
    }


def batch_job(job_id: str, code: str, **task_extra: Any) -> dict[str, Any]:
    task = {"Name": "run", "Driver": "raw_exec", "Config": {"command": sys.executable, "args": ["-c", code]},
            "Resources": {"CPU": 100, "MemoryMB": 64}}
    task.update(task_extra)
    return {"ID": job_id, "Type": "batch", "Datacenters": ["dc1"],
            "TaskGroups": [{"Name": "main", "Count": 1, "Tasks": [task]}]}


def api_for(double: NomadDouble, **kw: Any) -> NomadAPI:
    settings = NomadSettings.from_env({}, address=double.address, token=kw.pop("token", None))
    return NomadAPI(settings, backoff=0.01, **kw)


def wait_done(api: NomadAPI, job_id: str) -> dict[str, Any]:
    index = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        allocs, index = api.job_allocations(job_id, index=index, wait="5s")
        if allocs and allocs[0]["ClientStatus"] not in ("pending", "running"):
            return allocs[0]
    raise AssertionError(f"{job_id} did not finish")


def test_dispatch_roundtrip_over_raw_http(nomad_double: NomadDouble) -> None:
    base = nomad_double.address
    with requests.Session() as s:
        r = s.put(f"{base}/v1/jobs", json={"Job": param_job()})
        assert r.status_code == 200, r.text
        assert r.json()["EvalID"] == ""  # parameterized parent: no eval
        assert r.headers["X-Nomad-KnownLeader"] == "true" and "X-Nomad-LastContact" in r.headers
        payload = bytes(range(256))
        r = s.post(f"{base}/v1/job/fn/dispatch",
                   json={"Payload": base64.b64encode(payload).decode(), "Meta": {"call_id": "c1"}})
        assert r.status_code == 200, r.text
        child = r.json()["DispatchedJobID"]
        assert child.startswith("fn/dispatch-") and len(child.rsplit("-", 1)[1]) == 8
        index = 0
        for _ in range(50):
            r = s.get(f"{base}/v1/job/{child}/allocations", params={"index": index, "wait": "5s"})
            index = int(r.headers["X-Nomad-Index"])
            allocs = r.json()
            if allocs and allocs[0]["ClientStatus"] == "complete":
                break
        alloc = allocs[0]
        assert alloc["Name"] == f"{child}.main[0]"
        r = s.get(f"{base}/v1/client/fs/cat/{alloc['ID']}", params={"path": "alloc/data/out.bin"})
        assert r.content == bytes(reversed(payload)) + b"\xff\x00"
        r = s.get(f"{base}/v1/client/fs/readat/{alloc['ID']}",
                  params={"path": "alloc/data/out.bin", "offset": 1, "limit": 3})
        assert r.content == bytes([254, 253, 252])
        r = s.get(f"{base}/v1/client/fs/logs/{alloc['ID']}",
                  params={"task": "run", "type": "stdout", "plain": "true"})
        out = r.text
        assert f"job {child} parent fn" in out
        assert "meta c1 c1 True" in out
        assert f"alloc {child}.main[0] 0 {alloc['ID'][:8]}" in out
        assert "env hi from run" in out
        r = s.get(f"{base}/v1/client/fs/ls/{alloc['ID']}", params={"path": "run"})
        assert {e["Name"] for e in r.json()} == {"local", "secrets", "tmp", "private"}
        r = s.get(f"{base}/v1/client/fs/cat/{alloc['ID']}", params={"path": "run/secrets/x"})
        assert r.status_code == 403
        full = s.get(f"{base}/v1/allocation/{alloc['ID']}").json()
        events = [e["Type"] for e in full["TaskStates"]["run"]["Events"]]
        assert events == ["Received", "Task Setup", "Started", "Terminated"]
        assert full["TaskStates"]["run"]["State"] == "dead" and full["Job"]["ID"] == child
        summary = s.get(f"{base}/v1/job/fn/summary").json()
        assert summary["Children"]["Dead"] == 1
        stub = s.get(f"{base}/v1/jobs", params={"prefix": "fn"}).json()
        assert {j["ID"] for j in stub} == {"fn", child}
        assert s.get(f"{base}/v1/jobs", params={"filter": 'ParentID == "fn"'}).json()[0]["ID"] == child
        assert s.get(f"{base}/v1/jobs", params={"filter": 'Meta.app == "demo"'}).status_code == 200


def test_nomad_api_dispatch_read_logs_and_idempotency(nomad_double: NomadDouble) -> None:
    with api_for(nomad_double) as api:
        api.register(param_job())
        res = api.dispatch("fn", b"\x00\x80abc", {"call_id": "c2"}, idempotency_token="tok-1")
        again = api.dispatch("fn", b"\x00\x80abc", {"call_id": "c2"}, idempotency_token="tok-1")
        assert again["DispatchedJobID"] == res["DispatchedJobID"]
        alloc = wait_done(api, res["DispatchedJobID"])
        assert alloc["ClientStatus"] == "complete"
        assert api.read_file(alloc["ID"], "alloc/data/out.bin") == b"cba\x80\x00\xff\x00"
        assert b"meta c2 c2" in api.logs(alloc["ID"], "run")
        assert api.logs(alloc["ID"], "run", "stderr") == b"oops\n"
        assert api.logs(alloc["ID"], "run", "stderr", offset=2, origin="end") == b"s\n"
        assert api.allocation(alloc["ID"])["ID"] == alloc["ID"]
        assert api.evaluation(res["EvalID"])["Status"] == "complete"
        child_jobs = [j for j in api.jobs("fn/") if j["ParentID"] == "fn"]
        assert len(child_jobs) == 1
        # the token travelled as a query parameter, not in the body
        dispatches = [r for r in nomad_double.requests if r.path.endswith("/dispatch")]
        assert all(r.query.get("idempotency_token") == ["tok-1"] for r in dispatches)
        # a dispatch without token creates a new child
        assert api.dispatch("fn", b"x", {"call_id": "c3"})["DispatchedJobID"] != res["DispatchedJobID"]


def test_payload_limit(nomad_double: NomadDouble) -> None:
    base = nomad_double.address
    with requests.Session() as s:
        assert s.post(f"{base}/v1/jobs", json={"Job": param_job()}).status_code == 200
        big = base64.b64encode(b"a" * 16385).decode()
        r = s.post(f"{base}/v1/job/fn/dispatch", json={"Payload": big, "Meta": {"call_id": "x"}})
        # nomad/job_endpoint.go validateDispatchRequest returns a plain error: Nomad answers 500 with its text
        assert r.status_code == 500 and r.text == "Payload exceeds maximum size; 16385 > 16384"
        ok = base64.b64encode(b"a" * 16384).decode()
        assert s.post(f"{base}/v1/job/fn/dispatch", json={"Payload": ok, "Meta": {"call_id": "x"}}).status_code == 200
        r = s.post(f"{base}/v1/job/fn/dispatch", json={"Payload": ok, "Meta": {"bogus": "x"}})
        assert r.status_code == 500 and "call_id" in r.text
    with api_for(nomad_double) as api, pytest.raises(UserError, match="16385 bytes"):
        api.dispatch("fn", b"a" * 16385, {"call_id": "x"})


def test_acl_token(tmp_path: Any) -> None:
    with NomadDouble(token="s3cret-token", root_dir=tmp_path) as double:
        r = requests.get(f"{double.address}/v1/jobs")
        assert r.status_code == 403 and r.text == "Permission denied"
        r = requests.get(f"{double.address}/v1/jobs", headers={"Authorization": "Bearer s3cret-token"})
        assert r.status_code == 200
        with api_for(double, token="wrong-token") as api, pytest.raises(UserError) as err:
            api.jobs()
        assert "Nomad refused list jobs (403 ACL token not found)" in str(err.value), str(err.value)
        assert "does not know the token" in str(err.value)
        assert "NOMAD_TOKEN" in str(err.value) and "wrong-token" not in str(err.value)
        with api_for(double, token="") as anonymous, pytest.raises(UserError, match="no token was sent") as err:
            anonymous.jobs()
        assert "(403 Permission denied)" in str(err.value)
        assert "wrong-token" not in repr(api.settings)
        with api_for(double, token="s3cret-token") as api:
            assert api.jobs() == []
            assert api.get_variable("nope") is None


def test_5xx_retried_for_safe_requests_only(nomad_double: NomadDouble) -> None:
    with api_for(nomad_double) as api:
        nomad_double.faults.fail_next(2, r"^/v1/jobs$", method="GET", status=503)
        assert api.jobs() == []
        assert nomad_double.count_requests("GET", r"^/v1/jobs$") == 3
        nomad_double.faults.fail_next(1, r"^/v1/jobs$", method="POST")
        with pytest.raises(NomadError, match="HTTP 500"):
            api.register(param_job())
        assert nomad_double.count_requests("POST", r"^/v1/jobs$") == 1  # register is never retried
        nomad_double.faults.fail_next(10, r"^/v1/jobs$", method="GET")
        with pytest.raises(NomadError, match="tried 5 times"):
            api.jobs()


def test_connection_drop_retried_for_gets_and_token_dispatch(nomad_double: NomadDouble) -> None:
    with api_for(nomad_double) as api:
        api.register(param_job())
        nomad_double.faults.drop_next(1, r"/dispatch$")
        with pytest.raises(NomadError):
            api.dispatch("fn", b"x", {"call_id": "a"})  # no token: not retried
        assert nomad_double.count_requests("POST", r"/dispatch$") == 1
        nomad_double.faults.drop_next(2, r"/dispatch$")
        child = api.dispatch("fn", b"x", {"call_id": "a"}, idempotency_token="t")["DispatchedJobID"]
        assert nomad_double.count_requests("POST", r"/dispatch$") == 4
        nomad_double.faults.drop_next(1, r"/allocations$")
        alloc = wait_done(api, child)
        nomad_double.faults.drop_next(1, r"/fs/cat/")
        assert api.read_file(alloc["ID"], "alloc/data/out.bin") == b"x\xff\x00"


def test_unplaceable_gpu_job_blocks(nomad_double: NomadDouble) -> None:
    job = batch_job("gpu", "print(1)")
    job["TaskGroups"][0]["Tasks"][0]["Resources"]["Devices"] = [{
        "Name": "nvidia/gpu", "Count": 1,
        "Constraints": [{"LTarget": "${device.model}", "Operand": "regexp", "RTarget": "A100"}]}]
    with api_for(nomad_double) as api:
        plan = api.plan("gpu", job)
        assert plan["FailedTGAllocs"]["main"]["ConstraintFiltered"] == {"${device.model} regexp A100": 1}
        assert plan["Diff"]["Type"] == "Added" and plan["Annotations"]["DesiredTGUpdates"]["main"]["Place"] == 1
        res = api.register(job)
        ev = api.evaluation(res["EvalID"])
        assert ev["Status"] == "complete" and ev["FailedTGAllocs"]["main"]["NodesFiltered"] == 1
        blocked = api.evaluation(ev["BlockedEval"])
        assert blocked["Status"] == "blocked" and blocked["PreviousEval"] == ev["ID"]
        allocs, _ = api.job_allocations("gpu")
        assert allocs == []
        assert api.job("gpu")["Status"] == "pending"


def test_failed_allocation_exit_code(nomad_double: NomadDouble) -> None:
    with api_for(nomad_double) as api:
        api.register(batch_job("bad", "import sys; print('boom', file=sys.stderr); sys.exit(3)"))
        alloc = wait_done(api, "bad")
        assert alloc["ClientStatus"] == "failed"
        state = alloc["TaskStates"]["run"]
        assert state["Failed"] is True and state["State"] == "dead" and state["FinishedAt"]
        term = next(e for e in state["Events"] if e["Type"] == "Terminated")
        assert term["Details"] == {"exit_code": "3", "signal": "0", "oom_killed": "false", "exit_message": ""}
        assert state["Events"][-1]["Type"] == "Not Restarting"
        assert api.logs(alloc["ID"], "run", "stderr") == b"boom\n"
        nomad_double.faults.fail_next_allocs(1, exit_code=7)
        api.register(batch_job("bad2", "print('fine')"))
        alloc = wait_done(api, "bad2")
        term = next(e for e in alloc["TaskStates"]["run"]["Events"] if e["Type"] == "Terminated")
        assert term["Details"]["exit_code"] == "7"


def test_lost_and_gced_allocations(nomad_double: NomadDouble) -> None:
    with api_for(nomad_double) as api:
        api.register(batch_job("sleepy", "import time; print('up', flush=True); time.sleep(60)"))
        allocs: list[dict[str, Any]] = []
        index = 0
        while not allocs or allocs[0]["ClientStatus"] != "running":
            allocs, index = api.job_allocations("sleepy", index=index, wait="5s")
        nomad_double.lose_allocation(allocs[0]["ID"])
        alloc = api.allocation(allocs[0]["ID"])
        assert alloc["ClientStatus"] == "lost" and alloc["DesiredStatus"] == "stop"

        api.register(batch_job("quick", "open('/dev/null')"))
        done = wait_done(api, "quick")
        nomad_double.gc_allocation(done["ID"])
        with pytest.raises(NomadNotFound):
            api.read_file(done["ID"], "alloc/logs/run.stdout.0")
        r = requests.get(f"{nomad_double.address}/v1/client/fs/cat/{done['ID']}", params={"path": "alloc"})
        assert r.status_code == 404 and "Unknown allocation" in r.text
        r = requests.get(f"{nomad_double.address}/v1/client/fs/cat/nope", params={"path": "alloc"})
        assert r.status_code == 404 and r.text == 'unknown alloc ID "nope"'  # nomad/client_fs_endpoint.go


def test_variables_cas(nomad_double: NomadDouble) -> None:
    with api_for(nomad_double) as api:
        v = api.put_variable("nomad/jobs/fn", {"A": "1"}, cas=0)
        with pytest.raises(NomadConflict) as err:
            api.put_variable("nomad/jobs/fn", {"A": "2"}, cas=0)
        assert err.value.current is not None and err.value.current["Items"] == {"A": "1"}
        v2 = api.put_variable("nomad/jobs/fn", {"A": "2"}, cas=v["ModifyIndex"])
        assert v2["ModifyIndex"] > v["ModifyIndex"]
        assert api.get_variable("nomad/jobs/fn")["Items"] == {"A": "2"}
        assert [x["Path"] for x in api.list_variables("nomad/")] == ["nomad/jobs/fn"]
        assert "Items" not in api.list_variables("nomad/")[0]
        with pytest.raises(UserError, match=r"only paths at .nomad/jobs. or .nomad/job-templates. and below"):
            api.put_variable("nomad/other", {"A": "1"})  # nomad/structs/variables.go validatePath: a 500
        api.delete_variable("nomad/jobs/fn")
        assert api.get_variable("nomad/jobs/fn") is None


def test_template_env_from_variable_and_docker_substitution(nomad_double: NomadDouble) -> None:
    code = "import os; print(os.environ['SECRET_A'], os.environ['NOMAD_META_APP'], open('local/lit.txt').read())"
    tmpl = '{{ with nomadVar "nomad/jobs/dock" }}{{ range .Tuples }}{{ .K }}={{ .V | toJSON }}\n{{ end }}{{ end }}'
    job = batch_job("dock", code, Driver="docker",
                    Config={"image": "python:3.11-slim", "command": "python", "args": ["-c", code]},
                    Templates=[{"EmbeddedTmpl": tmpl, "DestPath": "secrets/env.txt", "Envvars": True},
                               {"EmbeddedTmpl": "{{ not rendered }}", "DestPath": "local/lit.txt",
                                "LeftDelim": "[[", "RightDelim": "]]"}])
    job["Meta"] = {"app": "x"}
    with api_for(nomad_double) as api:
        api.put_variable("nomad/jobs/dock", {"SECRET_A": 'va"l ue'})
        api.register(job)
        alloc = wait_done(api, "dock")
        assert alloc["ClientStatus"] == "complete", api.logs(alloc["ID"], "run", "stderr")
        assert api.logs(alloc["ID"], "run") == b'va"l ue x {{ not rendered }}\n'


def test_blocking_query_and_validation(nomad_double: NomadDouble) -> None:
    with requests.Session() as s:
        r = s.get(f"{nomad_double.address}/v1/jobs")
        index = int(r.headers["X-Nomad-Index"])
        t0 = time.monotonic()
        r = s.get(f"{nomad_double.address}/v1/jobs", params={"index": index, "wait": "300ms"})
        assert time.monotonic() - t0 >= 0.25 and int(r.headers["X-Nomad-Index"]) == index
        bad = param_job()
        bad["TaskGroups"][0]["Tasks"][0]["Resources"] = {"memory_mb": 64}
        r = s.post(f"{nomad_double.address}/v1/jobs", json={"Job": bad})
        assert r.status_code == 500 and r.text.startswith("1 error occurred:") and "memory_mb" in r.text
    with api_for(nomad_double) as api, pytest.raises(UserError, match="memory_mb"):
        api.register(bad)


def test_stop_purge_and_versions(nomad_double: NomadDouble) -> None:
    with api_for(nomad_double) as api:
        api.register(param_job())
        job = param_job()
        job["Meta"] = {"app": "v2"}
        api.register(job)
        assert api.job("fn")["Version"] == 1
        api.register(batch_job("long", "import time; time.sleep(60)"))
        allocs: list[dict[str, Any]] = []
        index = 0
        while not allocs or allocs[0]["ClientStatus"] != "running":
            allocs, index = api.job_allocations("long", index=index, wait="5s")
        api.deregister("long", purge=True)
        alloc = nomad_double.wait_alloc_terminal(allocs[0]["ID"])
        assert alloc["ClientStatus"] == "complete" and alloc["DesiredStatus"] == "stop"
        api.deregister("fn")
        assert api.job("fn") is None and api.job("long") is None
        assert api.jobs() == []


def test_settings_from_env() -> None:
    env = {"NOMAD_ADDR": "https://nomad.example:4646/", "NOMAD_TOKEN": "tok-123", "NOMAD_NAMESPACE": "ml",
           "NOMAD_REGION": "eu", "NOMAD_CACERT": "/ca.pem"}
    s = NomadSettings.from_env(env)
    assert (s.address, s.namespace, s.region, s.verify) == ("https://nomad.example:4646", "ml", "eu", "/ca.pem")
    assert "tok-123" not in repr(s) and "tok-123" not in str(s)
    assert NomadSettings.from_env({}).verify is True
    assert NomadSettings.from_env({"NOMAD_SKIP_VERIFY": "true"}).verify is False
    assert NomadSettings.from_env(env, namespace="other", token=None).namespace == "other"
    with pytest.raises(UserError):
        NomadSettings.from_env({"NOMAD_SKIP_VERIFY": "maybe"})
    with pytest.raises(UserError):
        NomadSettings.from_env({"NOMAD_CLIENT_CERT": "/c.pem"})
    api = NomadAPI(s)
    try:
        assert api._n.job.verify == "/ca.pem" and api._n.job.timeout == (10.0, 330.0)
        assert "tok-123" not in repr(api)
    finally:
        api.close()


def test_stop_kills_processes(tmp_path: Any) -> None:
    marker = tmp_path / "pid"
    code = f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    with NomadDouble(root_dir=tmp_path / "root") as double, api_for(double) as api:
        api.register(batch_job("sleeper", code))
        deadline = time.monotonic() + 10
        while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_lost_answer_to_token_dispatch_makes_one_child(nomad_double: NomadDouble) -> None:
    with api_for(nomad_double) as api:
        api.register(param_job())
        nomad_double.faults.drop_next(1, r"/dispatch$", after=True)
        child = api.dispatch("fn", b"x", {"call_id": "a"}, idempotency_token="once")["DispatchedJobID"]
        assert nomad_double.count_requests("POST", r"/dispatch$") == 2
        assert [j["ID"] for j in api.jobs("fn/")] == [child]


def test_periodic_force_and_followed_logs(nomad_double: NomadDouble) -> None:
    job = batch_job("cron", "import time\nfor i in range(3):\n    print(i, flush=True); time.sleep(0.1)")
    job["Periodic"] = {"Enabled": True, "SpecType": "cron", "Spec": "*/5 * * * *", "ProhibitOverlap": True}
    with api_for(nomad_double) as api, requests.Session() as s:
        assert api.register(job)["EvalID"] == ""
        r = s.post(f"{nomad_double.address}/v1/job/cron/periodic/force")
        assert r.status_code == 200, r.text
        child = next(j["ID"] for j in api.jobs("cron/"))
        assert child.startswith("cron/periodic-")
        allocs: list[dict[str, Any]] = []
        index = 0
        while not allocs:
            allocs, index = api.job_allocations(child, index=index, wait="5s")
        got = b""
        with s.get(f"{nomad_double.address}/v1/client/fs/logs/{allocs[0]['ID']}", stream=True,
                   params={"task": "run", "type": "stdout", "plain": "true", "follow": "true"}, timeout=20) as r:
            for chunk in r.iter_content(chunk_size=None):  # as Nomad's, the stream outlives the task
                got += chunk
                if got == b"0\n1\n2\n":
                    break
        assert got == b"0\n1\n2\n"


def test_misc_endpoints_and_namespaces(nomad_double: NomadDouble) -> None:
    base = nomad_double.address
    with requests.Session() as s:
        job = batch_job("ns-job", "import time; time.sleep(60)")
        assert s.put(f"{base}/v1/jobs", params={"namespace": "ml"}, json={"Job": job}).status_code == 200
        assert s.get(f"{base}/v1/job/ns-job").status_code == 404  # other namespace
        assert [j["ID"] for j in s.get(f"{base}/v1/jobs", params={"namespace": "*"}).json()] == ["ns-job"]
        allocs = s.get(f"{base}/v1/allocations", params={"namespace": "ml"}).json()
        assert len(allocs) == 1 and "Job" not in allocs[0]
        aid = allocs[0]["ID"]
        stat = s.get(f"{base}/v1/client/fs/stat/{aid}", params={"path": "alloc/logs"}).json()
        assert stat["IsDir"] is True and stat["Name"] == "logs"
        assert s.post(f"{base}/v1/allocation/{aid}/stop").status_code == 200
        alloc = nomad_double.wait_alloc_terminal(aid)
        assert alloc["DesiredStatus"] == "stop" and alloc["ClientStatus"] == "complete"
        evals = s.get(f"{base}/v1/job/ns-job/evaluations", params={"namespace": "ml"}).json()
        assert evals[0]["TriggeredBy"] == "job-register"
        versions = s.get(f"{base}/v1/job/ns-job/versions", params={"namespace": "ml"}).json()
        assert [v["Version"] for v in versions["Versions"]] == [0]
        assert s.get(f"{base}/v1/nope").status_code == 404

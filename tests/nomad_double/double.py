"""NomadDouble: a TEST DOUBLE of Nomad's HTTP API that runs allocations as local processes.

Stdlib only (``http.server.ThreadingHTTPServer`` on 127.0.0.1, port 0). This is
not Nomad: no scheduler, no Raft, no real client. It follows the paths, JSON
shapes, status codes (plain-text error bodies), headers and blocking-query
semantics documented in ``/work/shared/nomad-reference.md`` section 1c, validates
every registered job with ``nomad_schema.validate_api_job`` and runs placed
allocations as local processes (see :mod:`tests.nomad_double.runner`).

Double-only simplifications (deliberate, documented):

* one node (``double-node``, datacenter ``dc1``, region ``global``) with the
  ``raw_exec`` and (substituted, see runner) ``docker`` drivers; it has a GPU only
  when ``nodes_have_gpu`` is true, so any task with ``Resources.Devices`` is
  unplaceable by default (FailedTGAllocs + a blocked eval);
* blocking queries block on one global state index (Nomad uses per-table indexes);
* no restarts, reschedules or deployments; a lost allocation is not replaced;
* ``nomadVar`` templates read with the task's identity (ACL policies when ACLs are on); a denied read
  fails the task's setup (Nomad's template runner would keep retrying), a missing Variable renders empty;
* ``filter=`` supports only ``Sel == "v"``, ``Sel != "v"``, ``"v" in Sel`` and
  ``Sel contains "v"`` joined with ``and``.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import secrets
import select
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import acl
from .faults import Faults
from .runner import (
    TaskSetupError,
    interpolate,
    make_alloc_dir,
    parse_env_file,
    render_template,
    resolve_command,
    task_env,
)
from .services import alloc_checks, allocate_ports, port_env, registrations, services_list
from .volumes import Volumes

_SCHEMA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "nomad"
if str(_SCHEMA_DIR) not in sys.path:
    sys.path.insert(0, str(_SCHEMA_DIR))
import nomad_schema  # noqa: E402

PAYLOAD_LIMIT = 16384
JOB_SUFFIXES = ("/periodic/force", "/allocations", "/evaluations", "/summary", "/versions", "/dispatch", "/plan", "/evaluate",
                "/deployments", "/deployment", "/stable", "/revert", "/submission", "/scale", "/services")


class HTTPError(Exception):
    """An error answer: status code and plain-text body."""

    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status = status
        self.text = text


class RPCError(HTTPError):
    """An error of a server RPC that carries no HTTP code: Nomad answers **500** with the error's text.
    nomad/job_endpoint.go (Register's admission controllers, Dispatch, validateDispatchRequest) returns
    plain ``fmt.Errorf``/multierror values; command/agent/http.go ``errCodeFromHandler`` keeps 500 for
    anything that is neither an ``HTTPCodedError`` nor an RPC-coded error, except the ``Permission denied``
    and ``ACL token not found`` suffixes, which become 403. Only the HTTP layer's own checks
    (command/agent/job_endpoint.go: "Job must be specified", "Job ID does not match", JSON decoding) are 400."""

    def __init__(self, text: str):
        super().__init__(500, text)


@dataclass(frozen=True)
class RecordedRequest:
    """One request seen by the double (for counting HTTP requests in tests)."""

    method: str
    path: str
    query: dict[str, list[str]]


def _now_ns() -> int:
    return time.time_ns()


def _rfc3339() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _event(type_: str, message: str = "", details: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    ev = {"Type": type_, "Time": _now_ns(), "DisplayMessage": message, "Message": message,
          "Details": details or {}, "FailsTask": False, "ExitCode": 0, "Signal": 0}
    ev.update(extra)
    return ev


def _go_duration_s(text: str | None, default: float) -> float:
    if not text:
        return default
    try:
        return float(nomad_schema.parse_go_duration(text)) / 1e9
    except Exception:
        try:
            return float(text)
        except ValueError as exc:
            raise HTTPError(400, f"Invalid wait time: {text}") from exc


_VARIABLE_PATH = re.compile(r"^[a-zA-Z0-9-_~/]{1,128}$")


def _variable_problem(path: str, items: dict[str, str]) -> str:
    """Nomad's own texts for an invalid variable (nomad/structs/variables.go ``Validate``, ``validatePath``)."""
    if sum(len(k) + len(v) for k, v in items.items()) > 65536:
        return "variables are limited to 64KiB in total size"
    if not _VARIABLE_PATH.match(path):
        return f'invalid path "{path}"'
    parts = path.split("/")
    if parts[0] != "nomad":
        return ""
    if len(parts) == 1:
        return ('"nomad" is a reserved top-level directory path, but you may write variables to "nomad/jobs", '
                '"nomad/job-templates", or below')
    if parts[1] == "jobs" or (parts[1] == "job-templates" and len(parts) == 3):
        return ""
    if parts[1] == "job-templates":
        return ('"nomad/job-templates" is a reserved directory path, but you may write variables at the level '
                'below it, for example, "nomad/job-templates/template-name"')
    return ('only paths at "nomad/jobs" or "nomad/job-templates" and below are valid paths under the top-level '
            '"nomad" directory')


def _problems_text(problems: list[str]) -> str:
    head = "1 error occurred:" if len(problems) == 1 else f"{len(problems)} errors occurred:"
    return head + "\n" + "".join(f"\t* {p}\n" for p in problems)


def _select(obj: Any, selector: str) -> Any:
    for part in selector.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


_FILTER_TERM = re.compile(r'^\s*(?:(?P<sel>[A-Za-z_][\w.]*)\s*(?P<op>==|!=|contains)\s*"(?P<v>[^"]*)"'
                          r'|"(?P<v2>[^"]*)"\s+in\s+(?P<sel2>[A-Za-z_][\w.]*))\s*$')


def _filter_fn(expr: str | None) -> Callable[[dict[str, Any]], bool]:
    if not expr:
        return lambda _obj: True
    terms = []
    for raw in re.split(r"\s+and\s+", expr):
        m = _FILTER_TERM.match(raw)
        if not m:
            raise HTTPError(400, f"failed to read filter expression: {expr!r} (the test double supports only "
                                 '==, !=, contains and "in" joined by and)')
        terms.append(m)

    def ok(obj: dict[str, Any]) -> bool:
        for m in terms:
            if m.group("sel2"):
                val, op, want = _select(obj, m.group("sel2")), "contains", m.group("v2")
            else:
                val, op, want = _select(obj, m.group("sel")), m.group("op"), m.group("v")
            if op == "==" and str(val) != want and not (val is None and want == ""):
                return False
            if op == "!=" and str(val) == want:
                return False
            if op == "contains" and (val is None or want not in val):
                return False
        return True
    return ok


class NomadDouble:
    """A test double of Nomad's HTTP API. ``start()``/``stop()`` or use as a context manager.

    Knobs: ``faults`` (:class:`~tests.nomad_double.faults.Faults`), ``nodes_have_gpu``,
    ``extra_env`` (env passed to docker-substituted tasks, and on top of the host env
    for raw_exec), ``lose_allocation(id)``, ``gc_allocation(id)``; every request is
    appended to ``requests``.
    """

    def __init__(self, token: str | None = None, root_dir: str | os.PathLike[str] | None = None,
                 extra_env: dict[str, str] | None = None, nodes_have_gpu: bool = False):
        if root_dir is None:
            import tempfile
            self._tmp: tempfile.TemporaryDirectory[str] | None = tempfile.TemporaryDirectory(prefix="nomad-double-")
            root_dir = self._tmp.name
        else:
            self._tmp = None
        self.root_dir = Path(root_dir)
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.faults = Faults()
        self.nodes_have_gpu = nodes_have_gpu
        self.task_start_delay = 0.0  # seconds between "Received" and "Started" (an image pull, simulated)
        if extra_env is None:
            extra_env = {k: os.environ[k] for k in ("PATH", "PYTHONPATH") if k in os.environ}
        self.extra_env = extra_env
        self.requests: list[RecordedRequest] = []
        self.node_id = str(uuid.uuid4())
        self._cond = threading.Condition(threading.RLock())
        self.index = 10
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.versions: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.evals: dict[str, dict[str, Any]] = {}
        self.allocs: dict[str, dict[str, Any]] = {}
        self.variables: dict[tuple[str, str], dict[str, Any]] = {}
        self.volumes = Volumes(self._cond, self._bump, self.node_id, HTTPError)
        self._procs: dict[str, list[subprocess.Popen[bytes]]] = {}
        self._threads: list[threading.Thread] = []
        self._lost: set[str] = set()
        self._stopping_allocs: set[str] = set()
        self._gced: set[str] = set()
        self._server: ThreadingHTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._closed = False
        self.identities: dict[str, dict[str, str]] = {}  # workload identity secret -> claims
        self.policies: dict[str, dict[str, Any]] = {}  # ACL policies by name
        self._sockets: dict[tuple[str, str], socketserver.BaseServer] = {}  # (alloc, task) -> Task API

    # ------------------------------------------------------------------ lifecycle
    @property
    def address(self) -> str:
        assert self._server is not None, "NomadDouble not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> NomadDouble:
        double = self

        class Handler(_Handler):
            pass
        Handler.double = double
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._serve_thread = threading.Thread(target=self._server.serve_forever, name="nomad-double",
                                              kwargs={"poll_interval": 0.05}, daemon=True)
        self._serve_thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, kill every allocation process and wait for them."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            alloc_ids = list(self._procs)
        for aid in alloc_ids:
            self._kill(aid, grace=0.5)
        for t in list(self._threads):
            t.join(timeout=10)
        for key in list(self._sockets):
            self._close_task_api(*key)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._serve_thread is not None:
            self._serve_thread.join(timeout=5)
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> NomadDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ state helpers
    def _bump(self) -> int:
        with self._cond:
            self.index += 1
            self._cond.notify_all()
            return self.index

    def wait_index(self, index: int, wait_s: float) -> None:
        """Block until the state index exceeds ``index`` or ``wait_s`` elapses (no polling)."""
        deadline = time.monotonic() + wait_s
        with self._cond:
            while self.index <= index and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)

    def count_requests(self, method: str | None = None, pattern: str = ".*") -> int:
        """How many recorded requests match ``method`` and the path regex."""
        rx = re.compile(pattern)
        return sum(1 for r in list(self.requests)
                   if (method is None or r.method == method.upper()) and rx.search(r.path))

    def job(self, job_id: str, namespace: str = "default") -> dict[str, Any] | None:
        """The stored job (a copy), or None."""
        with self._cond:
            j = self.jobs.get((namespace, job_id))
            return copy.deepcopy(j) if j else None

    # ------------------------------------------------------------------ jobs
    def _job_status(self, job: dict[str, Any]) -> str:
        if job.get("Stop"):
            return "dead"
        if job.get("ParameterizedJob") and not job.get("Dispatched"):
            return "running"
        if (job.get("Periodic") or {}).get("Enabled", True) and job.get("Periodic") and not job.get("ParentID"):
            return "running"
        allocs = [a for a in self.allocs.values() if a["JobID"] == job["ID"] and a["Namespace"] == job["Namespace"]]
        evals = [e for e in self.evals.values() if e["JobID"] == job["ID"] and e["Namespace"] == job["Namespace"]]
        if any(a["ClientStatus"] in ("pending", "running") for a in allocs):
            return "running"
        if any(e["Status"] in ("pending", "blocked") for e in evals) or not allocs:
            return "pending"
        return "dead"

    def _refresh_job(self, ns: str, job_id: str) -> None:
        job = self.jobs.get((ns, job_id))
        if job is None:
            return
        status = self._job_status(job)
        if status != job.get("Status"):
            job["Status"] = status
            job["ModifyIndex"] = self.index

    def _summary(self, job: dict[str, Any]) -> dict[str, Any]:
        summary = {}
        for tg in job.get("TaskGroups") or []:
            counts = dict.fromkeys(("Queued", "Complete", "Failed", "Running", "Starting", "Lost", "Unknown"), 0)
            for a in self.allocs.values():
                if a["JobID"] == job["ID"] and a["Namespace"] == job["Namespace"] and a["TaskGroup"] == tg["Name"]:
                    key = {"pending": "Starting", "running": "Running", "complete": "Complete",
                           "failed": "Failed", "lost": "Lost"}.get(a["ClientStatus"], "Unknown")
                    counts[key] += 1
            for e in self.evals.values():
                if e["JobID"] == job["ID"] and e["Status"] == "blocked":
                    counts["Queued"] += (e.get("QueuedAllocations") or {}).get(tg["Name"], 0)
            summary[tg["Name"]] = counts
        children = {"Pending": 0, "Running": 0, "Dead": 0}
        for child in self.jobs.values():
            if child.get("ParentID") == job["ID"] and child["Namespace"] == job["Namespace"]:
                children[child["Status"].capitalize()] = children.get(child["Status"].capitalize(), 0) + 1
        return {"JobID": job["ID"], "Namespace": job["Namespace"], "Summary": summary, "Children": children,
                "CreateIndex": job["CreateIndex"], "ModifyIndex": self.index}

    def _stub(self, job: dict[str, Any]) -> dict[str, Any]:
        return {
            "ID": job["ID"], "ParentID": job.get("ParentID") or "", "Name": job.get("Name") or job["ID"],
            "Namespace": job["Namespace"], "Datacenters": job.get("Datacenters"), "Multiregion": None,
            "Type": job.get("Type") or "service", "Priority": job.get("Priority") or 50,
            "Periodic": bool(job.get("Periodic")), "ParameterizedJob": bool(job.get("ParameterizedJob")),
            "Stop": bool(job.get("Stop")), "Status": job["Status"], "StatusDescription": "",
            "JobSummary": self._summary(job), "CreateIndex": job["CreateIndex"], "ModifyIndex": job["ModifyIndex"],
            "JobModifyIndex": job["JobModifyIndex"], "SubmitTime": job["SubmitTime"], "Meta": job.get("Meta"),
        }

    def _canonical(self, job: dict[str, Any], ns: str) -> dict[str, Any]:
        job = copy.deepcopy(job)
        job["Namespace"] = ns
        job.setdefault("Name", job["ID"])
        job.setdefault("Type", "service")
        job.setdefault("Priority", 50)
        job.setdefault("Region", "global")
        job.setdefault("Datacenters", ["*"])
        job.setdefault("Meta", None)
        job.setdefault("ParentID", "")
        job.setdefault("Dispatched", False)
        job.setdefault("Payload", None)
        job.setdefault("Stop", False)
        for tg in job.get("TaskGroups") or []:
            tg.setdefault("Count", 1)
        return job

    @staticmethod
    def _spec(job: dict[str, Any]) -> dict[str, Any]:
        skip = {"Status", "Version", "CreateIndex", "ModifyIndex", "JobModifyIndex", "SubmitTime", "Stable",
                "StatusDescription"}
        return {k: v for k, v in job.items() if k not in skip}

    def _runnable(self, job: dict[str, Any]) -> bool:
        if job.get("Stop"):
            return False
        if job.get("ParameterizedJob") and not job.get("Dispatched"):
            return False
        return not (job.get("Periodic") and not job.get("ParentID"))

    def _register(self, ns: str, body: dict[str, Any], url_id: str | None) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("Job"), dict):
            raise HTTPError(400, "Job must be specified")
        job_in = body["Job"]
        if url_id is not None and job_in.get("ID") != url_id:
            raise HTTPError(400, "Job ID does not match name")
        problems = nomad_schema.validate_api_job(body)
        if problems:
            raise RPCError(_problems_text(problems))
        ns = job_in.get("Namespace") or ns
        key = (ns, job_in["ID"])
        with self._cond:
            old = self.jobs.get(key)
            if body.get("EnforceIndex"):
                want = body.get("JobModifyIndex") or 0
                have = old["JobModifyIndex"] if old else 0
                if want != have:
                    raise RPCError(f"Enforcing job modify index {want}: job "
                                         + ("does not exist" if not old else f"exists with conflicting job modify "
                                                                              f"index: {have}"))
            job = self._canonical(job_in, ns)
            changed = old is None or self._spec(old) != self._spec(job) or old.get("Stop")
            idx = self._bump()
            if old is not None and not changed:
                job = old
            else:
                job["Version"] = 0 if old is None else old["Version"] + 1
                job["CreateIndex"] = old["CreateIndex"] if old else idx
                job["JobModifyIndex"] = idx
                job["ModifyIndex"] = idx
                job["SubmitTime"] = _now_ns()
                job["Stable"] = False
                job["Status"] = "pending"
                self.jobs[key] = job
                self.versions.setdefault(key, []).insert(0, copy.deepcopy(job))
                if old is not None:
                    for a in list(self.allocs.values()):
                        if a["JobID"] == job["ID"] and a["Namespace"] == ns and a["ClientStatus"] in (
                                "pending", "running"):
                            self._stop_alloc(a["ID"], "alloc is being updated due to job update")
            eval_id = ""
            eval_idx = 0
            if self._runnable(job):
                ev = self._evaluate(job, "job-register", place=bool(changed))
                eval_id, eval_idx = ev["ID"], ev["CreateIndex"]
            self._refresh_job(ns, job["ID"])
            return {"EvalID": eval_id, "EvalCreateIndex": eval_idx, "JobModifyIndex": job["JobModifyIndex"],
                    "Warnings": "", "Index": self.index, "LastContact": 0, "KnownLeader": True, "NextToken": ""}

    def _failed_tg(self, job: dict[str, Any]) -> dict[str, Any]:
        failed: dict[str, Any] = {}
        if self.nodes_have_gpu:
            return failed
        for tg in job.get("TaskGroups") or []:
            filtered: dict[str, int] = {}
            for task in tg.get("Tasks") or []:
                for dev in (task.get("Resources") or {}).get("Devices") or []:
                    cons = dev.get("Constraints") or []
                    if cons:
                        for c in cons:
                            k = f"{c.get('LTarget', '')} {c.get('Operand', '=')} {c.get('RTarget', '')}".strip()
                            filtered[k] = 1
                    else:
                        filtered["missing devices"] = 1
            if filtered:
                failed[tg["Name"]] = {
                    "NodesEvaluated": 1, "NodesFiltered": 1, "NodesInPool": 1, "NodePool": "default",
                    "NodesAvailable": {"dc1": 1}, "ClassFiltered": None, "ConstraintFiltered": filtered,
                    "NodesExhausted": 0, "ClassExhausted": None, "DimensionExhausted": None,
                    "QuotaExhausted": None, "ResourcesExhausted": None, "Scores": None, "AllocationTime": 12000,
                    "CoalescedFailures": tg.get("Count", 1) - 1, "ScoreMetaData": None,
                }
        return failed

    def _new_eval(self, job: dict[str, Any], triggered_by: str, status: str) -> dict[str, Any]:
        idx = self._bump()
        ev = {
            "ID": str(uuid.uuid4()), "Namespace": job["Namespace"], "Priority": job.get("Priority") or 50,
            "Type": job.get("Type") or "service", "TriggeredBy": triggered_by, "JobID": job["ID"],
            "JobModifyIndex": job["JobModifyIndex"], "NodeID": "", "DeploymentID": "", "Status": status,
            "StatusDescription": "", "Wait": 0, "WaitUntil": None, "NextEval": "", "PreviousEval": "",
            "BlockedEval": "", "RelatedEvals": None, "FailedTGAllocs": None, "ClassEligibility": None,
            "QuotaLimitReached": "", "QueuedAllocations": None, "SnapshotIndex": idx, "CreateIndex": idx,
            "ModifyIndex": idx, "CreateTime": _now_ns(), "ModifyTime": _now_ns(),
        }
        self.evals[ev["ID"]] = ev
        return ev

    def _evaluate(self, job: dict[str, Any], triggered_by: str, place: bool = True) -> dict[str, Any]:
        """Create an eval for ``job`` and "schedule" it synchronously (caller holds the lock)."""
        ev = self._new_eval(job, triggered_by, "pending")
        failed = self._failed_tg(job)
        queued = {tg["Name"]: 0 for tg in job.get("TaskGroups") or []}
        if failed:
            blocked = self._new_eval(job, "queued-allocs", "blocked")
            blocked["PreviousEval"] = ev["ID"]
            blocked["StatusDescription"] = "created to place remaining allocations"
            for name in failed:
                queued[name] = next(tg.get("Count", 1) for tg in job["TaskGroups"] if tg["Name"] == name)
            blocked["QueuedAllocations"] = dict(queued)
            ev["BlockedEval"] = blocked["ID"]
            ev["FailedTGAllocs"] = failed
        if place:
            for tg in job.get("TaskGroups") or []:
                if tg["Name"] in failed:
                    continue
                for i in range(tg.get("Count", 1)):
                    self._place(job, tg, i, ev["ID"])
        ev["Status"] = "complete"
        ev["QueuedAllocations"] = queued
        ev["ModifyIndex"] = self._bump()
        ev["ModifyTime"] = _now_ns()
        return ev

    # ------------------------------------------------------------------ allocations
    def _place(self, job: dict[str, Any], tg: dict[str, Any], index: int, eval_id: str) -> dict[str, Any]:
        idx = self._bump()
        aid = str(uuid.uuid4())
        alloc = {
            "ID": aid, "EvalID": eval_id, "Name": f"{job['ID']}.{tg['Name']}[{index}]", "Namespace": job["Namespace"],
            "NodeID": self.node_id, "NodeName": "double-node", "JobID": job["ID"], "JobType": job.get("Type"),
            "JobVersion": job["Version"], "TaskGroup": tg["Name"], "AllocatedResources": None,
            "DesiredStatus": "run", "DesiredDescription": "", "ClientStatus": "pending", "ClientDescription": "",
            "DesiredTransition": {}, "DeploymentStatus": None, "FollowupEvalID": "", "NextAllocation": "",
            "RescheduleTracker": None, "PreemptedAllocations": None, "PreemptedByAllocation": "",
            "TaskStates": {t["Name"]: {"State": "pending", "Failed": False, "Restarts": 0, "LastRestart": None,
                                       "StartedAt": None, "FinishedAt": None,
                                       "Events": [_event("Received", "Task received by client")]}
                           for t in tg.get("Tasks") or []},
            "CreateIndex": idx, "ModifyIndex": idx, "AllocModifyIndex": idx,
            "CreateTime": _now_ns(), "ModifyTime": _now_ns(),
            "Job": copy.deepcopy(job), "Metrics": {"NodesEvaluated": 1, "NodesFiltered": 0},
            "DeploymentID": "", "PreviousAllocation": "", "NetworkStatus": None,
            "_index": index,
            "_ports": allocate_ports(tg),
        }
        if alloc["_ports"]:
            alloc["AllocatedResources"] = {"Shared": {"Ports": [
                dict(p) for p in alloc["_ports"]]}}
        self.allocs[aid] = alloc
        failure = self.faults.take_alloc_failure()
        t = threading.Thread(target=self._run_alloc, args=(aid, failure), name=f"alloc-{aid[:8]}", daemon=True)
        self._threads.append(t)
        t.start()
        return alloc

    def _touch(self, alloc: dict[str, Any]) -> None:
        idx = self._bump()
        alloc["ModifyIndex"] = idx
        alloc["ModifyTime"] = _now_ns()
        self._refresh_job(alloc["Namespace"], alloc["JobID"])

    def _task_event(self, aid: str, task: str, ev: dict[str, Any], **state: Any) -> None:
        with self._cond:
            alloc = self.allocs.get(aid)
            if alloc is None:
                return
            ts = alloc["TaskStates"][task]
            ts["Events"].append(ev)
            ts.update(state)
            self._touch(alloc)

    def _read_var(self, ns: str, claims: dict[str, str]) -> Callable[[str], dict[str, str] | None]:
        """A template's ``nomadVar`` reads with the task's workload identity: with ACLs on, only what its
        job's policies (or the implicit ``nomad/jobs/<job>`` paths) allow; else a template failure."""
        def read(path: str) -> dict[str, str] | None:
            with self._cond:
                if self.token is not None:
                    pols = [acl.parse_rules(p["Rules"]) for p in self.policies.values()
                            if acl.policy_applies(p, claims)]
                    if not acl.variable_allowed(pols, claims, ns, path, "read"):
                        raise TaskSetupError("Template failure",
                                             f"nomad.var.block({path}@{ns}): Permission denied")
                var = self.variables.get((ns, path))
                return dict(var["Items"]) if var else None
        return read

    def _run_alloc(self, aid: str, failure: int | None) -> None:
        with self._cond:
            alloc = self.allocs[aid]
            job = alloc["Job"]
            tg = next(g for g in job["TaskGroups"] if g["Name"] == alloc["TaskGroup"])
            if self._closed or alloc["DesiredStatus"] != "run":
                return
        tasks = tg.get("Tasks") or []
        adir = make_alloc_dir(self.root_dir, aid, [t["Name"] for t in tasks])
        started: list[tuple[str, subprocess.Popen[bytes], list[Any]]] = []
        setup_failed = False
        for task in tasks:
            name = task["Name"]
            self._task_event(aid, name, _event("Task Setup", "Building Task Directory"))
            try:
                argv, env = self._prepare_task(alloc, job, tg, task, adir)
                if failure is not None:
                    argv = [sys.executable, "-c",
                            f"import sys; sys.stderr.write('injected failure (Nomad test double)\\n'); "
                            f"sys.exit({failure})"]
            except TaskSetupError as exc:
                setup_failed = True
                self._task_event(aid, name, _event(exc.event, exc.message, {"message": exc.message},
                                                   FailsTask=True, SetupError=exc.message),
                                 State="dead", Failed=True, FinishedAt=_rfc3339())
                continue
            if self.task_start_delay:  # a docker image pull or a busy node: the task starts late
                self._task_event(aid, name, _event("Driver", "Downloading image"))
                time.sleep(self.task_start_delay)
            files = [open(adir / "alloc" / "logs" / f"{name}.stdout.0", "ab"),  # noqa: SIM115
                     open(adir / "alloc" / "logs" / f"{name}.stderr.0", "ab")]  # noqa: SIM115
            with self._cond:
                if self._closed or alloc["DesiredStatus"] != "run":
                    for f in files:
                        f.close()
                    break
                try:
                    proc = subprocess.Popen(argv, cwd=adir / name, env=env, stdin=subprocess.DEVNULL,
                                            stdout=files[0], stderr=files[1], start_new_session=True)
                except OSError as exc:
                    for f in files:
                        f.close()
                    setup_failed = True
                    self._task_event(aid, name, _event("Driver Failure", str(exc), FailsTask=True,
                                                       DriverError=str(exc)),
                                     State="dead", Failed=True, FinishedAt=_rfc3339())
                    continue
                self._procs.setdefault(aid, []).append(proc)
                started.append((name, proc, files))
                alloc["ClientStatus"] = "running"
                self._task_event(aid, name, _event("Started", "Task started by client"),
                                 State="running", StartedAt=_rfc3339())
        for name, proc, files in started:
            code = proc.wait()
            self._close_task_api(aid, name)
            for f in files:
                f.close()
            sig = -code if code < 0 else 0
            exit_code = 0 if code < 0 else code
            details = {"exit_code": str(exit_code), "signal": str(sig), "oom_killed": "false",
                       "exit_message": ""}
            with self._cond:
                if aid in self._lost:
                    continue  # the "node" is gone: nobody reports task states any more
                stopping = aid in self._stopping_allocs
                failed = (code != 0) and not stopping
                msg = f"Exit Code: {exit_code}" + (f", Signal: {sig}" if sig else "")
                self._task_event(aid, name, _event("Terminated", msg, details, ExitCode=exit_code, Signal=sig))
                if stopping:
                    self._task_event(aid, name, _event("Killed", "Task successfully killed"))
                elif failed:
                    self._task_event(aid, name, _event("Not Restarting",
                                                       "Policy allows no restarts (the test double does not "
                                                       "restart tasks)", FailsTask=True))
                alloc["TaskStates"][name].update(State="dead", Failed=failed, FinishedAt=_rfc3339())
        with self._cond:
            self._procs.pop(aid, None)
            if aid in self._lost:
                return
            states = alloc["TaskStates"].values()
            if aid in self._stopping_allocs:
                alloc["ClientStatus"] = "complete"
            elif setup_failed or any(s["Failed"] for s in states):
                alloc["ClientStatus"] = "failed"
                alloc["ClientDescription"] = "Failed tasks"
            else:
                alloc["ClientStatus"] = "complete"
                alloc["ClientDescription"] = "All tasks have completed"
            self._touch(alloc)

    def _prepare_task(self, alloc: dict[str, Any], job: dict[str, Any], tg: dict[str, Any], task: dict[str, Any],
                      adir: Path) -> tuple[list[str], dict[str, str]]:
        name = task["Name"]
        tdir = adir / name
        env = task_env(alloc=alloc, job=job, group=tg, task=task, alloc_dir=adir, index=alloc["_index"])
        env.update(port_env(alloc.get("_ports") or []))
        claims = {"alloc_id": alloc["ID"], "namespace": job.get("Namespace") or "default",
                  "job_id": job.get("ParentID") or job["ID"], "group": tg["Name"], "task": name}
        ident = task.get("Identity") or {}
        if ident.get("File") or ident.get("Env"):
            # workload-identity.mdx: file = true writes secrets/nomad_token, env = true sets NOMAD_TOKEN;
            # nomad/structs/workload_id.go: the job ID claim is the parent's for dispatched/periodic children.
            secret = str(uuid.uuid4())
            with self._cond:
                self.identities[secret] = claims
            if ident.get("File"):
                (tdir / "secrets" / "nomad_token").write_text(secret)
            if ident.get("Env"):
                env["NOMAD_TOKEN"] = secret
        self._open_task_api(alloc["ID"], name, tdir / "secrets")
        payload_cfg = task.get("DispatchPayload") or {}
        if payload_cfg.get("File"):
            target = tdir / "local" / payload_cfg["File"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(job.get("Payload") or ""))
        for key, value in (task.get("Env") or {}).items():
            env[key] = interpolate(str(value), env)
        for tmpl in task.get("Templates") or []:
            text = render_template(tmpl, self._read_var(job["Namespace"], claims), env)
            dest = tdir / interpolate(tmpl.get("DestPath") or "local/template.out", env)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text)
            if tmpl.get("Envvars"):
                env.update(parse_env_file(text))
        driver = task.get("Driver") or ""
        base = dict(os.environ) if driver in ("raw_exec", "exec") else {}
        base.update(self.extra_env)
        base.update(env)
        argv = resolve_command(driver, task.get("Config") or {}, base)
        return argv, base

    def _kill(self, aid: str, grace: float = 2.0) -> None:
        with self._cond:
            procs = list(self._procs.get(aid, []))
        for proc in procs:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
                if proc.poll() is not None:
                    break
                try:
                    os.killpg(proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    proc.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    continue

    def _stop_alloc(self, aid: str, why: str) -> None:
        """Mark an allocation stopped and kill its processes in the background (lock held)."""
        alloc = self.allocs[aid]
        alloc["DesiredStatus"] = "stop"
        alloc["DesiredDescription"] = why
        if alloc["ClientStatus"] in ("pending", "running"):
            self._stopping_allocs.add(aid)
            for ts in alloc["TaskStates"].values():
                if ts["State"] == "running":
                    ts["Events"].append(_event("Killing", "Sent interrupt"))
                elif ts["State"] == "pending":
                    ts.update(State="dead", FinishedAt=_rfc3339())
            if not self._procs.get(aid):
                alloc["ClientStatus"] = "complete"
        self._touch(alloc)
        t = threading.Thread(target=self._kill, args=(aid,), daemon=True)
        self._threads.append(t)
        t.start()

    def provide_gpus(self) -> None:
        """Capacity appears (a GPU node joins): blocked evaluations are unblocked and place what they hold,
        as Nomad's blocked-evals tracker does when a node's capacity changes (nomad/blocked_evals.go)."""
        with self._cond:
            self.nodes_have_gpu = True
            for ev in list(self.evals.values()):
                if ev["Status"] != "blocked":
                    continue
                job = self.jobs.get((ev["Namespace"], ev["JobID"]))
                if job is not None:
                    for name, count in (ev.get("QueuedAllocations") or {}).items():
                        tg = next(g for g in job["TaskGroups"] if g["Name"] == name)
                        for i in range(count):
                            self._place(job, tg, i, ev["ID"])
                ev["Status"] = "complete"
                ev["ModifyIndex"] = self._bump()
            self._cond.notify_all()

    def lose_allocation(self, alloc_id: str) -> None:
        """Simulate the node going down: ClientStatus "lost", its processes killed, no replacement."""
        with self._cond:
            alloc = self.allocs[alloc_id]
            self._lost.add(alloc_id)
            alloc["ClientStatus"] = "lost"
            alloc["DesiredStatus"] = "stop"
            alloc["DesiredDescription"] = "alloc is lost since its node is down"
            alloc["ClientDescription"] = "alloc is lost since its node is down"
            self._touch(alloc)
        self._kill(alloc_id, grace=0.2)

    def gc_allocation(self, alloc_id: str) -> None:
        """Simulate client GC: kill the processes and delete the alloc dir; fs endpoints then 404."""
        import shutil
        self._kill(alloc_id, grace=0.2)
        with self._cond:
            self._gced.add(alloc_id)
            for secret in [s for s, c in self.identities.items() if c["alloc_id"] == alloc_id]:
                del self.identities[secret]  # workload-identity.mdx: tokens die with the allocation
            self._bump()
        shutil.rmtree(self.root_dir / alloc_id, ignore_errors=True)

    def wait_alloc_terminal(self, alloc_id: str, timeout: float = 20.0) -> dict[str, Any]:
        """Test helper: block until the allocation is complete/failed/lost; a copy of it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.allocs[alloc_id]["ClientStatus"] in ("pending", "running"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"allocation {alloc_id} still {self.allocs[alloc_id]['ClientStatus']}")
                self._cond.wait(remaining)
            return self._alloc_view(self.allocs[alloc_id], full=True)

    def _alloc_view(self, alloc: dict[str, Any], full: bool) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in alloc.items() if not k.startswith("_")}
        if not full:
            for k in ("Job", "Metrics", "DeploymentID", "PreviousAllocation", "NetworkStatus", "AllocModifyIndex"):
                out.pop(k, None)
            out["JobVersion"] = alloc["JobVersion"]
        return out

    # ------------------------------------------------------------------ HTTP routing
    def handle(self, method: str, path: str, query: dict[str, list[str]], body: bytes,
               headers: Any, via_socket: bool = False) -> tuple[int, Any, dict[str, str]]:
        """Route one request; returns (status, payload, extra headers). Payload: bytes/str/JSON-able."""
        given = headers.get("X-Nomad-Token") or ""
        auth_h = headers.get("Authorization") or ""
        if auth_h.startswith("Bearer "):
            given = given or auth_h[7:]
        claims = self.identities.get(given)
        if claims is not None or via_socket:
            if claims is None and not (self.token is not None and given == self.token):
                # task-api.mdx: the Task API always requires authentication; no anonymous policy there.
                raise HTTPError(403, "Permission denied")
            if claims is not None:
                self._authorize(claims, method, path, query)
            return self._route(method, path, query, body, headers, True)
        return self._route(method, path, query, body, headers, False)

    def _authorize(self, claims: dict[str, str], method: str, path: str, query: dict[str, list[str]]) -> None:
        """With ACLs on, an identity has the rights of the policies attached to its job (auth.go)."""
        if self.token is None:
            return  # ACLs disabled: an identity is only needed to pass the Task API's authentication
        ns = (query.get("namespace") or ["default"])[0]
        with self._cond:
            pols = [acl.parse_rules(p["Rules"]) for p in self.policies.values() if acl.policy_applies(p, claims)]
        if path.startswith("/v1/var/") or path == "/v1/vars":
            vpath = unquote(path[len("/v1/var/"):]) if path.startswith("/v1/var/") else (query.get("prefix") or [""])[0]
            cap = {"GET": "read", "PUT": "write", "POST": "write", "DELETE": "destroy"}.get(method, "read")
            if path == "/v1/vars":
                cap = "list"
            if not acl.variable_allowed(pols, claims, ns, vpath, cap):
                raise HTTPError(403, "Permission denied")
            return
        need = acl.required_capability(method, path)
        if need == "":
            return
        if need is None or not acl.allowed(pols, ns, need):
            raise HTTPError(403, "Permission denied")

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes,
               headers: Any, authenticated: bool) -> tuple[int, Any, dict[str, str]]:
        def q(name: str, default: str | None = None) -> str | None:
            vals = query.get(name)
            return vals[0] if vals else default

        if self.token is not None and not authenticated:
            given = headers.get("X-Nomad-Token") or ""
            auth = headers.get("Authorization") or ""
            if auth.startswith("Bearer "):
                given = given or auth[7:]
            if given != self.token:
                # nomad/structs/errors.go via command/agent/http.go errCodeFromHandler: a secret the cluster
                # does not know is "ACL token not found"; no token is the anonymous policy: "Permission denied".
                raise HTTPError(403, "ACL token not found" if given else "Permission denied")
        ns = q("namespace") or "default"
        if method == "GET" and q("index") is not None:
            try:
                min_index = int(q("index") or "0")
            except ValueError as exc:
                raise HTTPError(400, "Invalid index") from exc
            self.wait_index(min_index, min(_go_duration_s(q("wait"), 300.0), 600.0))

        def data() -> Any:
            if not body:
                return {}
            try:
                return json.loads(body)
            except ValueError as exc:
                raise HTTPError(400, f"Failed to decode JSON: {exc}") from exc

        p = path
        if p.startswith("/v1/acl/polic"):
            return self._acl_route(method, p, data, headers)
        if p in ("/v1/jobs", "/v1/jobs/"):
            if method in ("PUT", "POST"):
                return 200, self._register(ns, data(), None), {}
            if method == "GET":
                prefix = q("prefix") or ""
                keep = _filter_fn(q("filter"))
                with self._cond:
                    stubs = [self._stub(j) for (jns, _), j in sorted(self.jobs.items())
                             if (ns == "*" or jns == ns) and j["ID"].startswith(prefix)]
                return 200, [s for s in stubs if keep(s)], {}
        if p == "/v1/status/leader":
            return 200, "127.0.0.1:4647", {}
        if p.startswith("/v1/job/"):
            return self._job_route(method, p[len("/v1/job/"):], ns, q, data)
        if p.startswith("/v1/evaluation/"):
            rest = p[len("/v1/evaluation/"):]
            with self._cond:
                if rest.endswith("/allocations"):
                    eid = rest[: -len("/allocations")]
                    return 200, [self._alloc_view(a, False) for a in self.allocs.values() if a["EvalID"] == eid], {}
                ev = self.evals.get(rest)
                if ev is None:
                    raise HTTPError(404, "eval not found")
                return 200, copy.deepcopy(ev), {}
        if p == "/v1/evaluations":
            with self._cond:
                prefix = q("prefix") or ""
                return 200, [copy.deepcopy(e) for e in self.evals.values() if e["ID"].startswith(prefix)], {}
        if p == "/v1/allocations":
            with self._cond:
                prefix = q("prefix") or ""
                keep = _filter_fn(q("filter"))
                out = [self._alloc_view(a, False) for a in self.allocs.values()
                       if a["ID"].startswith(prefix) and (ns == "*" or a["Namespace"] == ns)]
                return 200, [a for a in out if keep(a)], {}
        if p.startswith("/v1/allocation/"):
            rest = p[len("/v1/allocation/"):]
            stop = rest.endswith("/stop")
            aid = rest[: -len("/stop")] if stop else rest
            with self._cond:
                alloc = self.allocs.get(aid)
                if alloc is None:
                    raise HTTPError(404, "alloc not found")
                if stop:
                    if method not in ("POST", "PUT"):
                        raise HTTPError(405, "Invalid method")
                    self._stop_alloc(aid, "alloc was stopped via the API")
                    ev = self._new_eval(alloc["Job"], "alloc-stop", "complete")
                    return 200, {"EvalID": ev["ID"], "Index": self.index}, {}
                return 200, self._alloc_view(alloc, True), {}
        if p.startswith("/v1/client/allocation/") and p.endswith("/checks"):
            with self._cond:
                alloc = self.allocs.get(p[len("/v1/client/allocation/"):-len("/checks")])
                if alloc is None or alloc["ID"] in self._gced:
                    raise HTTPError(404, "Unknown allocation")
                alloc = dict(alloc)
            return 200, alloc_checks(alloc), {}
        if p == "/v1/services" or p.startswith("/v1/service/"):
            with self._cond:
                regs = registrations(self.allocs.values(), ns, self._lost)
            if p == "/v1/services":
                return 200, services_list(regs), {}
            name = p[len("/v1/service/"):]
            return 200, [r for r in regs if r["ServiceName"] == name], {}
        if p.startswith("/v1/client/fs/"):
            return self._fs_route(p[len("/v1/client/fs/"):], q)
        if p.startswith("/v1/var/"):
            return self._var_route(method, p[len("/v1/var/"):], ns, q, data)
        routed = self.volumes.route(method, p, ns, q, data)
        if routed is not None:
            return routed
        if p == "/v1/vars":
            prefix = q("prefix") or ""
            with self._cond:
                out = [{k: v for k, v in var.items() if k != "Items"}
                       for (vns, vpath), var in sorted(self.variables.items())
                       if (ns == "*" or vns == ns) and vpath.startswith(prefix)]
            return 200, out, {}
        raise HTTPError(404, "Invalid URL or not implemented by the Nomad test double")

    def _acl_route(self, method: str, p: str, data: Callable[[], Any], headers: Any) -> tuple[int, Any, dict[str, str]]:
        """command/agent/acl_endpoint.go ACLPolicies/ACLPolicySpecificRequest; management token only
        (nomad/acl_endpoint.go UpsertPolicies/ListPolicies: ``!acl.IsManagement()`` → ErrPermissionDenied)."""
        if self.token is None:
            raise HTTPError(400, "ACL support disabled")  # nomad/acl_endpoint.go aclDisabled
        if (headers.get("X-Nomad-Token") or "") != self.token:
            raise HTTPError(403, "Permission denied")
        with self._cond:
            if p == "/v1/acl/policies" and method == "GET":
                return 200, [{k: v for k, v in pol.items() if k != "Rules"}
                             for _, pol in sorted(self.policies.items())], {}
            if not p.startswith("/v1/acl/policy/"):
                raise HTTPError(404, "Invalid URL or not implemented by the Nomad test double")
            name = p[len("/v1/acl/policy/"):]
            if method == "GET":
                pol = self.policies.get(name)
                if pol is None:
                    raise HTTPError(404, "ACL policy not found")
                return 200, copy.deepcopy(pol), {}
            if method == "DELETE":
                self.policies.pop(name, None)
                self._bump()
                return 200, None, {}
            if method in ("PUT", "POST"):
                body = data() or {}
                if body.get("Name") != name:
                    raise HTTPError(400, "Policy name does not match request path")
                try:
                    acl.parse_rules(body.get("Rules") or "")
                except ValueError as exc:
                    raise HTTPError(500, f"policy {name} has invalid rules: {exc}") from exc
                idx = self._bump()
                old = self.policies.get(name)
                self.policies[name] = {"Name": name, "Description": body.get("Description") or "",
                                       "Rules": body.get("Rules") or "", "JobACL": body.get("JobACL"),
                                       "CreateIndex": old["CreateIndex"] if old else idx, "ModifyIndex": idx}
                return 200, None, {}
        raise HTTPError(405, "Invalid method")

    def _open_task_api(self, aid: str, task: str, secrets_dir: Path) -> None:
        """task-api.mdx: a Unix socket at secrets/api.sock serving the HTTP API. sun_path is 108 bytes,
        so bind through a short symlink to the secrets dir; the socket file lands at the real path."""
        class Handler(_Handler):
            via_socket = True
        Handler.double = self
        link_dir = tempfile.mkdtemp(prefix="nd-")
        link = os.path.join(link_dir, "s")
        os.symlink(secrets_dir, link)
        try:
            srv = _UnixServer(os.path.join(link, "api.sock"), Handler)
        finally:
            os.unlink(link)
            os.rmdir(link_dir)
        srv.sock_path = secrets_dir / "api.sock"
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                         name=f"task-api-{aid[:8]}-{task}").start()
        with self._cond:
            self._sockets[(aid, task)] = srv

    def _close_task_api(self, aid: str, task: str) -> None:
        with self._cond:
            srv = self._sockets.pop((aid, task), None)
        if srv is None:
            return
        srv.shutdown()
        srv.server_close()
        try:
            os.unlink(srv.sock_path)
        except OSError:
            pass

    def _job_route(self, method: str, rest: str, ns: str, q: Callable[..., str | None],
                   data: Callable[[], Any]) -> tuple[int, Any, dict[str, str]]:
        suffix = next((s for s in JOB_SUFFIXES if rest.endswith(s)), "")
        job_id = rest[: len(rest) - len(suffix)] if suffix else rest
        if not suffix and method in ("PUT", "POST"):
            return 200, self._register(ns, data(), job_id), {}
        if suffix == "/plan":
            return 200, self._plan(ns, job_id, data()), {}
        with self._cond:
            job = self.jobs.get((ns, job_id))
            if job is None:
                return self._no_job(method, suffix)
            if not suffix and method == "GET":
                return 200, copy.deepcopy(job), {}
            if not suffix and method == "DELETE":
                return 200, self._deregister(ns, job, q("purge") in ("true", "True", "1")), {}
            if suffix == "/dispatch" and method in ("PUT", "POST"):
                return 200, self._dispatch(ns, job, data(), q("idempotency_token")), {}
            if suffix == "/periodic/force" and method in ("PUT", "POST"):
                return 200, self._force_periodic(ns, job), {}
            if suffix == "/allocations":
                allv = q("all") in ("true", "True", "1")
                return 200, [self._alloc_view(a, False) for a in self.allocs.values()
                             if a["JobID"] == job_id and a["Namespace"] == ns
                             and (allv or a["JobVersion"] == job["Version"])], {}
            if suffix == "/evaluations":
                return 200, [copy.deepcopy(e) for e in self.evals.values()
                             if e["JobID"] == job_id and e["Namespace"] == ns], {}
            if suffix == "/summary":
                return 200, self._summary(job), {}
            if suffix == "/versions":
                return 200, {"Versions": copy.deepcopy(self.versions.get((ns, job_id), [])), "Diffs": None,
                             "Index": self.index}, {}
        raise HTTPError(405, "Invalid method or endpoint not implemented by the Nomad test double")

    @staticmethod
    def _no_job(method: str, suffix: str) -> tuple[int, Any, dict[str, str]]:
        """What Nomad answers for a job that does not exist, per endpoint."""
        if suffix == "/dispatch":  # nomad/job_endpoint.go Dispatch: fmt.Errorf, so 500
            raise RPCError("parameterized job not found")
        if suffix == "/versions":  # command/agent/job_endpoint.go jobVersions: len(out.Versions) == 0
            raise HTTPError(404, "job versions not found")
        if suffix in ("/allocations", "/evaluations"):
            # command/agent/job_endpoint.go jobAllocations/jobEvaluations: a nil list becomes [], never a 404
            return 200, [], {}
        if not suffix and method == "DELETE":  # nomad/job_endpoint.go Deregister: `if job == nil { return nil }`
            return 200, {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": 0, "VolumeEvalID": "",
                         "VolumeEvalIndex": 0, "Index": 0}, {}
        raise HTTPError(404, "job not found")  # command/agent/job_endpoint.go jobQuery: out.Job == nil

    def _deregister(self, ns: str, job: dict[str, Any], purge: bool) -> dict[str, Any]:
        job["Stop"] = True
        for a in list(self.allocs.values()):
            if a["JobID"] == job["ID"] and a["Namespace"] == ns and a["DesiredStatus"] == "run":
                self._stop_alloc(a["ID"], "alloc not needed due to job update")
        ev = self._new_eval(job, "job-deregister", "complete")
        if purge:
            del self.jobs[(ns, job["ID"])]
            self.versions.pop((ns, job["ID"]), None)
        else:
            job["JobModifyIndex"] = job["ModifyIndex"] = self._bump()
            self._refresh_job(ns, job["ID"])
        return {"EvalID": ev["ID"], "EvalCreateIndex": ev["CreateIndex"], "JobModifyIndex": self.index,
                "VolumeEvalID": "", "VolumeEvalIndex": 0, "Index": self.index}

    def _dispatch(self, ns: str, parent: dict[str, Any], body: Any, token: str | None) -> dict[str, Any]:
        param = parent.get("ParameterizedJob")
        if not isinstance(body, dict):
            raise HTTPError(400, "dispatch body must be a JSON object")
        if body.get("JobID") and body["JobID"] != parent["ID"]:
            raise HTTPError(400, "Job ID does not match")
        # nomad/job_endpoint.go Dispatch: plain errors, so 500 (RPCError).
        if not param:
            raise RPCError(f'Specified job "{parent["ID"]}" is not a parameterized job')
        if parent.get("Stop"):
            raise RPCError(f'Specified job "{parent["ID"]}" is stopped')
        token = token or body.get("IdempotencyToken") or ""
        try:
            raw = base64.b64decode(body.get("Payload") or "", validate=True)
        except (ValueError, TypeError) as exc:
            raise HTTPError(400, f"Failed to decode JSON: illegal base64 data: {exc}") from exc
        if len(raw) > PAYLOAD_LIMIT:
            raise RPCError(f"Payload exceeds maximum size; {len(raw)} > {PAYLOAD_LIMIT}")
        problems = nomad_schema.validate_dispatch_request(body, param)
        if problems:
            raise RPCError("; ".join(problems))
        if token:
            for child in self.jobs.values():
                if child.get("ParentID") == parent["ID"] and child.get("DispatchIdempotencyToken") == token \
                        and child["Namespace"] == ns:
                    return {"DispatchedJobID": child["ID"], "EvalID": "", "EvalCreateIndex": 0,
                            "JobCreateIndex": child["CreateIndex"], "Index": child["ModifyIndex"]}
        prefix = body.get("IdPrefixTemplate") or ""
        child_id = f"{parent['ID']}/dispatch-{prefix + '-' if prefix else ''}{int(time.time())}-{secrets.token_hex(4)}"
        child = copy.deepcopy(parent)
        idx = self._bump()
        meta = dict(parent.get("Meta") or {})
        meta.update(body.get("Meta") or {})
        child.update(ID=child_id, Name=child_id, ParentID=parent["ID"], Dispatched=True, Status="pending",
                     Meta=meta or None, Payload=base64.b64encode(raw).decode() if raw else None,
                     DispatchIdempotencyToken=token, Version=0, CreateIndex=idx, ModifyIndex=idx,
                     JobModifyIndex=idx, SubmitTime=_now_ns(), Stop=False)
        if body.get("Priority"):
            child["Priority"] = body["Priority"]
        self.jobs[(ns, child_id)] = child
        self.versions[(ns, child_id)] = [copy.deepcopy(child)]
        ev = self._evaluate(child, "job-register")
        self._refresh_job(ns, child_id)
        self._refresh_job(ns, parent["ID"])
        return {"DispatchedJobID": child_id, "EvalID": ev["ID"], "EvalCreateIndex": ev["CreateIndex"],
                "JobCreateIndex": idx, "Index": self.index}

    def _force_periodic(self, ns: str, parent: dict[str, Any]) -> dict[str, Any]:
        if not parent.get("Periodic"):
            raise RPCError("can't force launch non-periodic job")
        child_id = f"{parent['ID']}/periodic-{int(time.time())}"
        while (ns, child_id) in self.jobs:
            child_id += "0"
        child = copy.deepcopy(parent)
        idx = self._bump()
        child.update(ID=child_id, Name=child_id, ParentID=parent["ID"], Periodic=None, Status="pending", Version=0,
                     CreateIndex=idx, ModifyIndex=idx, JobModifyIndex=idx, SubmitTime=_now_ns(), Stop=False)
        self.jobs[(ns, child_id)] = child
        self.versions[(ns, child_id)] = [copy.deepcopy(child)]
        ev = self._evaluate(child, "periodic-job")
        self._refresh_job(ns, child_id)
        return {"EvalID": ev["ID"], "EvalCreateIndex": ev["CreateIndex"], "Index": self.index}

    def _plan(self, ns: str, job_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("Job"), dict):
            raise HTTPError(400, "Job must be specified")
        if body["Job"].get("ID") != job_id:
            raise HTTPError(400, "Job ID does not match")
        problems = nomad_schema.validate_api_job({"Job": body["Job"]})
        if problems:
            raise RPCError(_problems_text(problems))
        with self._cond:
            old = self.jobs.get((ns, job_id))
            job = self._canonical(body["Job"], ns)
            job.setdefault("JobModifyIndex", 0)
            same = old is not None and self._spec(old) == self._spec(job)
            runnable = self._runnable(job)
            failed = self._failed_tg(job) if runnable else {}
            updates = {}
            for tg in job.get("TaskGroups") or []:
                n = tg.get("Count", 1) if runnable else 0
                u = dict.fromkeys(("Ignore", "Place", "Migrate", "Stop", "InPlaceUpdate", "DestructiveUpdate",
                                   "Canary", "Preemptions", "Reconnect", "Disconnect", "RescheduleNow",
                                   "RescheduleLater"), 0)
                if same:
                    u["Ignore"] = n
                elif old is not None and n:
                    u["DestructiveUpdate"] = n
                else:
                    u["Place"] = n
                updates[tg["Name"]] = u
            out: dict[str, Any] = {
                "Annotations": {"DesiredTGUpdates": updates, "PreemptedAllocs": None},
                "FailedTGAllocs": failed or None, "JobModifyIndex": old["JobModifyIndex"] if old else 0,
                "CreatedEvals": None, "Diff": None, "NextPeriodicLaunch": None, "Warnings": "", "Index": self.index,
            }
            if body.get("Diff"):
                kind = "Added" if old is None else ("None" if same else "Edited")
                out["Diff"] = {"Type": kind, "ID": job_id, "Fields": None, "Objects": None,
                               "TaskGroups": [{"Type": kind, "Name": tg["Name"], "Fields": None, "Objects": None,
                                               "Tasks": [{"Type": kind, "Name": t["Name"], "Annotations": None,
                                                          "Fields": None, "Objects": None}
                                                         for t in tg.get("Tasks") or []],
                                               "Updates": {k.lower(): v for k, v in updates[tg["Name"]].items()
                                                           if v}}
                                              for tg in job.get("TaskGroups") or []]}
            return out

    # ------------------------------------------------------------------ client fs
    def _alloc_dir(self, aid: str) -> Path:
        with self._cond:
            if aid not in self.allocs:  # the server's answer (nomad/client_fs_endpoint.go)
                raise HTTPError(404, f'unknown alloc ID "{aid}"')
            if aid in self._gced or not (self.root_dir / aid).exists():
                raise HTTPError(404, f'Unknown allocation "{aid}"')
        return self.root_dir / aid

    def _fs_path(self, aid: str, rel: str) -> Path:
        base = self._alloc_dir(aid).resolve()
        target = (base / rel.lstrip("/")).resolve()
        if target != base and base not in target.parents:
            raise HTTPError(400, "Path escapes the allocation directory")
        parts = target.relative_to(base).parts
        if len(parts) >= 2 and parts[1] in ("secrets", "private"):
            raise HTTPError(403, "Reading secret file prohibited")
        return target

    @staticmethod
    def _stat(path: Path) -> dict[str, Any]:
        st = path.stat()
        mode = ("d" if path.is_dir() else "-") + "rwxr-xr-x"
        return {"Name": path.name, "IsDir": path.is_dir(), "Size": st.st_size, "FileMode": mode,
                "ModTime": datetime.fromtimestamp(st.st_mtime, UTC).isoformat().replace("+00:00", "Z"),
                "ContentType": "" if path.is_dir() else "application/octet-stream"}

    def _fs_route(self, rest: str, q: Callable[..., str | None]) -> tuple[int, Any, dict[str, str]]:
        op, _, aid = rest.partition("/")
        if op == "logs":
            return self._logs(aid, q)
        if op not in ("cat", "readat", "ls", "stat"):
            raise HTTPError(404, "Invalid URL or not implemented by the Nomad test double")
        target = self._fs_path(aid, q("path", "/") or "/")
        if not target.exists():  # client/fs_endpoint.go stream: an fs.Stat error is http.StatusBadRequest
            raise HTTPError(400, f"stat {target}: no such file or directory")
        if op == "ls":
            if not target.is_dir():
                raise HTTPError(400, f"{q('path')} is not a directory")
            return 200, [self._stat(c) for c in sorted(target.iterdir())], {}
        if op == "stat":
            return 200, self._stat(target), {}
        if target.is_dir():
            raise HTTPError(400, f"file {q('path')!r} is a directory")
        data = target.read_bytes()
        if op == "readat":
            try:
                offset = int(q("offset") or "0")
                limit = int(q("limit") or "-1")
            except ValueError as exc:
                raise HTTPError(400, "invalid offset or limit") from exc
            data = data[offset:] if limit < 0 else data[offset:offset + limit]
        return 200, data, {"Content-Type": "application/octet-stream"}

    def _logs(self, aid: str, q: Callable[..., str | None]) -> tuple[int, Any, dict[str, str]]:
        task = q("task")
        type_ = q("type")
        if not task:
            raise HTTPError(400, "must include task name")
        if type_ not in ("stdout", "stderr"):
            raise HTTPError(400, "must include type as 'stdout' or 'stderr'")
        adir = self._alloc_dir(aid)
        with self._cond:
            if task not in self.allocs[aid]["TaskStates"]:
                raise HTTPError(400, f'unknown task name "{task}"')
            if not self.allocs[aid]["TaskStates"][task].get("StartedAt"):  # client/fs_endpoint.go logs
                raise HTTPError(404, f'task "{task}" not started yet. No logs available')
        path = adir / "alloc" / "logs" / f"{task}.{type_}.0"
        try:
            offset = int(q("offset") or "0")
        except ValueError as exc:
            raise HTTPError(400, "invalid offset") from exc
        origin = q("origin") or "start"
        if origin not in ("start", "end"):
            raise HTTPError(400, "origin must be start or end")
        plain = q("plain") in ("true", "True", "1")
        follow = q("follow") in ("true", "True", "1")

        def read_from(pos: int | None) -> tuple[bytes, int]:
            data = path.read_bytes() if path.exists() else b""
            if pos is None:
                pos = max(0, len(data) - offset) if origin == "end" else min(offset, len(data))
            return data[pos:], len(data)

        def frame(chunk: bytes, pos: int) -> bytes:
            return json.dumps({"Offset": pos, "Data": base64.b64encode(chunk).decode(),
                               "File": f"alloc/logs/{task}.{type_}.0", "FileEvent": ""}).encode()

        if not follow:
            chunk, end = read_from(None)
            if plain:
                return 200, chunk, {"Content-Type": "text/plain; charset=utf-8"}
            return 200, frame(chunk, end) if chunk else b"", {"Content-Type": "application/json"}

        def stream() -> Any:
            # As Nomad's: the stream stays open after the task ended. client/fs_endpoint.go logsImpl, when
            # following, returns only when the request is cancelled, on an error, or when the log file is
            # deleted, i.e. the allocation collected (hashicorp/nomad#18369). Heartbeat frames carry no
            # data, so in plain mode nothing is written while the log is quiet.
            chunk, end = read_from(None)
            yield chunk if plain else (frame(chunk, end) if chunk else b"{}")
            while True:
                with self._cond:
                    done = self._closed or aid in self._gced or not adir.exists()
                    if not done:
                        self._cond.wait(0.2)
                if done:
                    return
                more, new_end = read_from(end)
                if more:
                    yield more if plain else frame(more, new_end)
                    end = new_end
                else:
                    yield b""  # idle: lets the handler notice a client that went away (as Nomad's conn.Read)
        return 200, stream(), {"Content-Type": "text/plain; charset=utf-8" if plain else "application/json"}

    # ------------------------------------------------------------------ variables
    def _var_route(self, method: str, path: str, ns: str, q: Callable[..., str | None],
                   data: Callable[[], Any]) -> tuple[int, Any, dict[str, str]]:
        path = unquote(path)
        key = (ns, path)
        cas = q("cas")
        with self._cond:
            cur = self.variables.get(key)
            if method == "GET":
                if cur is None:
                    raise HTTPError(404, "variable not found")
                return 200, copy.deepcopy(cur), {}
            if cas is not None:
                want = int(cas)
                have = cur["ModifyIndex"] if cur else 0
                if want != have:
                    return 409, copy.deepcopy(cur) if cur else {"Namespace": ns, "Path": path, "Items": None,
                                                                  "ModifyIndex": 0}, {}
            if method == "DELETE":
                if cur is not None:
                    del self.variables[key]
                    self._bump()
                return 204, b"", {}
            if method in ("PUT", "POST"):
                body = data()
                items = body.get("Items") if isinstance(body, dict) else None
                # command/agent/variable_endpoint.go variableUpsert: these two are the HTTP layer's own 400s
                if not items:
                    raise HTTPError(400, "variable missing required Items object")
                if not isinstance(items, dict) or not all(isinstance(v, str) for v in items.values()):
                    raise HTTPError(400, "json: cannot unmarshal Items into Go struct field of type string")
                problem = _variable_problem(path, items)
                if problem:  # nomad/variables_endpoint.go Apply: validation errors are plain, so 500
                    raise RPCError(problem)
                idx = self._bump()
                now = _now_ns()
                var = {"Namespace": ns, "Path": path, "Items": dict(items),
                       "CreateIndex": cur["CreateIndex"] if cur else idx,
                       "CreateTime": cur["CreateTime"] if cur else now, "ModifyIndex": idx, "ModifyTime": now}
                self.variables[key] = var
                return 200, copy.deepcopy(var), {}
        raise HTTPError(400, "Invalid method")  # command/agent/variable_endpoint.go: 400, not 405


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    sock_path: Path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    double: NomadDouble
    via_socket = False

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _go(self) -> None:
        d = self.double
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        d.requests.append(RecordedRequest(self.command, parts.path, query))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        drop_after = False
        for rule in d.faults.match(self.command, parts.path):
            if rule.kind == "delay":
                time.sleep(rule.seconds)
            elif rule.kind == "drop" and rule.after:
                drop_after = True
            elif rule.kind == "drop":
                self._drop()
                return
            elif rule.kind == "status":
                self._send(rule.status, rule.body.encode(), {"Content-Type": "text/plain; charset=utf-8"})
                return
        try:
            # Go's net/http hands handlers the decoded path (r.URL.Path): %2F in a job ID is a slash.
            status, payload, extra = d.handle(self.command, unquote(parts.path), query, body, self.headers,
                                              self.via_socket)
        except HTTPError as exc:
            status, payload, extra = exc.status, exc.text.encode(), {"Content-Type": "text/plain; charset=utf-8"}
        except Exception as exc:  # the double's own bug: report it like Nomad's 500
            status, payload = 500, f"Nomad test double internal error: {exc!r}".encode()
            extra = {"Content-Type": "text/plain; charset=utf-8"}
        if drop_after:
            self._drop()
            return
        if isinstance(payload, bytes | str):
            raw = payload.encode() if isinstance(payload, str) else payload
            if isinstance(payload, str):
                raw = json.dumps(payload).encode()
                extra.setdefault("Content-Type", "application/json")
            self._send(status, raw, extra)
        elif hasattr(payload, "__next__"):
            self._stream(status, payload, extra)
        else:
            self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **extra})

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _headers(self, status: int, extra: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("X-Nomad-Index", str(self.double.index))
        self.send_header("X-Nomad-KnownLeader", "true")
        self.send_header("X-Nomad-LastContact", "0")
        for k, v in extra.items():
            self.send_header(k, v)

    def _send(self, status: int, raw: bytes, extra: dict[str, str]) -> None:
        self._headers(status, extra)
        if status != 204:
            self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if status != 204:
            self.wfile.write(raw)

    def _stream(self, status: int, chunks: Any, extra: dict[str, str]) -> None:
        """A streamed body as Go's net/http sends one (a flushed handler, no Content-Length): chunked."""
        self._headers(status, extra)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for chunk in chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                elif self._peer_closed():  # client/fs_endpoint.go: a goroutine reads conn to see it close
                    return
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _peer_closed(self) -> bool:
        try:
            ready, _, _ = select.select([self.connection], [], [], 0)
            return bool(ready) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    do_GET = do_PUT = do_POST = do_DELETE = _go

"""The Nomad backend: an app run's jobs registered on a Nomad cluster, each call one dispatch.

Runs on the client. ``start`` registers every compiled job under a run-unique
ID (``<app>-<run>-<function>``, meta ``modalc_ephemeral = "true"`` and
``modalc_run = <run id>``). Each call, or each chunk of a ``.map``, is one
dispatch carrying an idempotency token (``<run id>-<call id>``), so a retried
request never runs a call twice.

HTTP requests per call (the happy path, about eight):

1. ``POST /v1/job/<parent>/dispatch`` (idempotency token, retried on 5xx);
2. ``GET /v1/job/<child>/allocations`` - then, while nothing is placed, blocking
   queries (``?index=&wait=``) on the same path, with the evaluation read to
   explain a placement failure (``FailedTGAllocs``, blocked evaluation);
3. ``GET /v1/client/fs/logs/<alloc>?follow=true&plain=true&type=stdout`` - one
   streaming request that prints stdout live, ``[function]``-prefixed. Nomad keeps
   it open after the task ended (hashicorp/nomad#18369), so beside it blocking
   queries on ``GET /v1/allocation/<id>?index=`` (usually two: running, then
   complete) tell the end, the stream is shut down and the rest of the log read
   once without following (compiler/backends/nomad_logs.py): no polling;
4. ``GET /v1/client/fs/logs/<alloc>?type=stderr`` once, after the task ended;
   a task still running after ``STDERR_LIVE_AFTER_S`` gets its stderr followed
   live instead (one more streaming request, only for calls that long);
5. ``GET /v1/client/fs/cat/<alloc>?path=alloc/data/result.pkl`` (raw bytes).

Only when the result is missing is the allocation read (a blocking query until
it is terminal) to explain why: exit code, OOM kill, driver or template
failure (task events), lost allocation, rescheduled allocation (followed to
its replacement), or garbage-collected before its result was read.

``stop`` deregisters and purges every child the run dispatched (including any
whose dispatch answer was lost: children are listed by ID prefix) and then the
parents; with ``detach`` it prints how to follow and stop them instead.
Children of *deployed* jobs (``Function.from_name``) are left to Nomad's
garbage collector so ``FunctionCall.from_id`` can read them from elsewhere.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agent_runtime import exitcodes
from agent_runtime.protocol import RESULT_FILE, STREAM_FILE

from ..blob_store import (
    BLOB_META,
    DEPLOYED_SCOPE,
    BlobConfig,
    BlobStore,
    RunBlobs,
    config_from,
    config_from_meta,
    expiry_s,
)
from ..emit_json import job_dict
from ..errors import ModalcError, UserError
from ..ir import TASK_NAME, CompiledApp, FunctionJob, Job, JobType, Warm
from ..lower.job import job_id as make_job_id
from ..lower.warm import CALL_PREFIX as WARM_CALL_PREFIX
from ..lower.warm import TOKEN_VAR_FORMAT, warm_from_meta
from .base import AllocResult, Backend, Dispatch
from .local import LogSink
from .nomad_api import PAYLOAD_LIMIT, NomadAPI, NomadNotFound, NomadRejected, NomadSettings, NomadTaskNotStarted
from .nomad_logs import TaskEnd, follow_log

DEFAULT_PLACEMENT_TIMEOUT = 300.0
PLACEMENT_CHECK_S = 2  # while a call is unplaced, its evaluation is read this often
STDERR_LIVE_AFTER_S = 1.0  # a call running longer gets its stderr followed live (one more request)
# A generator's values are read with fs/readat; with nothing new, a blocking query on the allocation
# waits for news: briefly while values flow, doubling up to a second while the generator is quiet.
STREAM_WAIT_MIN_S = 0.1
STREAM_WAIT_MAX_S = 1.0
CALL_PREFIX = "fc-"
_T = TypeVar("_T")

_EXIT_MEANING = {
    exitcodes.USER_ERROR: "the function raised or its process crashed",
    exitcodes.INFRA_ERROR: "bad call envelope, missing call file, or the module failed to import",
    exitcodes.TIMEOUT: "an input ran past the function's timeout",
    137: "killed (SIGKILL)",
}


def placement_timeout_from_env() -> float:
    raw = os.environ.get("MODALC_PLACEMENT_TIMEOUT", "")
    try:
        return float(raw) if raw else DEFAULT_PLACEMENT_TIMEOUT
    except ValueError:
        raise UserError(f"MODALC_PLACEMENT_TIMEOUT={raw!r} is not a number of seconds") from None


def deployed_stub(app_name: str, tag: str, job_id: str, namespace: str | None = None, *,
                  warm: Warm | None = None) -> FunctionJob:
    """A FunctionJob standing for a deployed job (only its tag, job ID and warm settings are used to call it)."""
    job = Job(id=job_id, type=JobType.BATCH, datacenters=("*",), namespace=namespace, region=None, node_pool=None,
              meta=(("modalc_app", app_name), ("modalc_function", tag)), periodic=None, parameterized=None,
              groups=())
    return FunctionJob(tag=f"{app_name}.{tag}", job=job, module="", qualname="", image=None, is_generator=False,
                       warm=warm)


@dataclass
class _Call:
    """What the backend knows about one dispatch."""

    child: str
    parent: str
    tag: str
    eval_id: str = ""
    started: float = field(default_factory=time.monotonic)
    alloc: dict[str, Any] | None = None
    index: int = 0
    status: str = ""
    stream_wait_s: float = STREAM_WAIT_MIN_S  # how long a generator read waits for news (adaptive)
    blob: str = ""  # the key of the call's input in the blob store, released once its result was read
    blobs: RunBlobs | None = None  # the store holding it


class NomadBackend(Backend):
    """Runs an app's calls as dispatches of parameterized jobs on Nomad."""

    name = "nomad"
    max_payload_bytes: int | None = PAYLOAD_LIMIT  # per function: payload_limit (a blob store lifts it)
    supports_warm = True
    # The Invoker cuts a .map into chunks of at least this many inputs: a dispatch costs ~5 HTTP requests,
    # so this keeps a map at <= 0.1 request per input however many CPUs the client has.
    min_chunk = 64
    durable_calls = True

    def __init__(self, settings: NomadSettings, *, sink: LogSink | None = None, quiet: bool = False,
                 placement_timeout: float | None = None, api: NomadAPI | None = None,
                 blob: BlobConfig | None = None):
        self.settings = settings
        self.api = api or NomadAPI(settings)
        self.sink = sink or LogSink()
        self.quiet = quiet
        self.placement_timeout = placement_timeout_from_env() if placement_timeout is None else placement_timeout
        self.run_id = ""
        self.app: CompiledApp | None = None
        self.parents: dict[str, str] = {}  # function tag -> registered (or deployed) parent job ID
        self.registered: list[str] = []  # ephemeral parent job IDs, in registration order
        self._calls: dict[str, _Call] = {}
        self._deployed: set[str] = set()  # parent IDs of deployed jobs (not ours to purge)
        self._lock = threading.Lock()
        self._stopped = False
        self._job_vars: list[str] = []  # Variables written for the run (warm workers' token), deleted by stop
        self._policies: list[str] = []  # ACL policies written for the run's jobs, deleted by stop
        self._service_index: dict[str, int] = {}  # dispatch ID -> the service's index seen (blocking queries)
        # Large inputs through the blob store (compiler/blob_store.py): with one, a call has no size limit.
        self.blob_config = blob
        self.blobs: RunBlobs | None = None
        # A deployed function's inputs go to the store its jobs record (modalc deploy --blob-url), else to ours.
        self._parent_stores: dict[str, BlobConfig] = {}  # deployed parent ID -> its recorded store
        self._other_blobs: dict[BlobConfig, RunBlobs] = {}

    @classmethod
    def from_env(cls, *, quiet: bool = False, **overrides: Any) -> NomadBackend:
        return cls(NomadSettings.from_env(**overrides), quiet=quiet, blob=config_from())

    # -- lifecycle --------------------------------------------------------------
    def start(self, app: CompiledApp, *, run_id: str) -> None:
        self.app = app
        self.run_id = run_id
        if self.blob_config is not None:
            self.blobs = RunBlobs(BlobStore(self.blob_config), run_id)
        for fn in app.functions:
            self.add_function(fn)
        if self.settings.token:  # with ACLs, the jobs' identities need their policy to call and read secrets
            from ..acl_policy import attach

            self._policies = attach(self.api, list(self.registered), self.settings.namespace,
                                    self.policy_secrets, _stderr_line, self.policy_variables)

    def add_function(self, fn: FunctionJob) -> None:
        """Register ``fn``'s job under this run's ID (purged with the run)."""
        job = job_dict(fn.job)
        job_id = make_job_id(self.run_id, fn.tag)
        job["ID"] = job["Name"] = job_id
        job["Meta"] = {**(job.get("Meta") or {}), "modalc_ephemeral": "true", "modalc_run": self.run_id}
        if self.blob_config is not None:  # app stop --run finds the run's store here
            job["Meta"][BLOB_META] = self.blob_config.url
        with self._lock:
            self.registered.append(job_id)  # before the request: a lost answer still gets cleaned up
            self.parents[fn.tag] = job_id
        self.api.register(job)

    def stop(self, *, detach: bool = False) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            if detach:
                self._print_detached()
                return
            self._purge_run()
            self._delete_job_vars()
            for blobs in (b for b in (self.blobs, *self._other_blobs.values()) if b is not None):
                for warning in blobs.close():
                    sys.stderr.write(f"warning: {warning}\n")
            if self._policies:
                from ..acl_policy import detach as detach_policies

                detach_policies(self.api, self._policies, _stderr_line)
        finally:
            self.api.close()

    def _print_detached(self) -> None:
        if not self.registered:
            return
        app = self.app.app_name if self.app else self.run_id
        lines = [f"Detached: the run's jobs keep running on Nomad ({self.settings.address}):",
                 *(f"  {job_id}" for job_id in self.registered),
                 f"Follow their logs:  modalc app logs {app} -f",
                 f"Stop and purge them: modalc app stop {app} --run {self.run_id}"]
        if self.blobs is not None and self.blobs.used:
            lines.append(f"  (that deletes the run's blobs in {self.blobs.store.config.url} too)")
        sys.stderr.write("\n".join(lines) + "\n")

    def _purge_run(self) -> None:
        with self._lock:
            children = {c.child for c in self._calls.values() if c.parent not in self._deployed}
            parents = list(self.registered)
        # Children whose dispatch answer was lost are found by ID prefix.
        for parent in parents:
            try:
                children.update(j["ID"] for j in self.api.jobs(prefix=f"{parent}/")
                                if j.get("ParentID") == parent)
            except ModalcError as exc:
                sys.stderr.write(f"warning: could not list the dispatched jobs of {parent}: {exc}\n")
        failed = purge_jobs(self.api, sorted(children)) + purge_jobs(self.api, parents)
        for job_id, error in failed:
            sys.stderr.write(f"warning: could not stop job {job_id}: {error}\n"
                             f"  stop it with: nomad job stop -purge {job_id}\n")

    def _delete_job_vars(self) -> None:
        for path in self._job_vars:
            try:
                self.api.delete_variable(path)
            except ModalcError as exc:
                sys.stderr.write(f"warning: could not delete Variable {path}: {exc}\n"
                                 f"  delete it with: nomad var purge {path}\n")

    # -- warm workers (compiler/warm_pool.py) ----------------------------------------
    def put_job_variable(self, fn: FunctionJob, items: dict[str, str]) -> None:
        """``nomad/jobs/<parent>``: what a dispatched child reads through its workload identity, no ACLs needed."""
        path = f"nomad/jobs/{self._parent(fn)}"
        with self._lock:
            self._job_vars.append(path)  # before the request: a lost answer still gets cleaned up
        self.api.put_variable(path, items)

    def job_variable(self, fn: FunctionJob) -> dict[str, str] | None:
        """The items of ``nomad/jobs/<parent>`` (a deployed warm function's token), None if absent."""
        var = self.api.get_variable(TOKEN_VAR_FORMAT % self._parent(fn))
        return None if var is None else dict(var.get("Items") or {})

    def warm_workers(self, fn: FunctionJob, key: str) -> list[tuple[str, tuple[str, int], bool]]:
        """The running workers of a deployed function serving instance ``key``: (child job ID, address,
        whether it is a minimum worker), from ``GET /v1/service/<name>`` and the job's children (their
        dispatch meta ``modalc_call = warm-<key>-...``)."""
        assert fn.warm is not None
        parent = self._parent(fn)
        try:
            registrations, _ = self.api.service(fn.warm.service)
        except NomadNotFound:
            return []
        if not registrations:
            return []
        prefix = f"{WARM_CALL_PREFIX}{key}-"
        children = {j["ID"]: str((j.get("Meta") or {}).get("modalc_call") or "")
                    for j in self.api.jobs(prefix=f"{parent}/")
                    if j.get("ParentID") == parent and j.get("Status") in ("pending", "running")}
        out = []
        for reg in registrations:
            call = children.get(reg.get("JobID") or "", "")
            if call.startswith(prefix) and reg.get("Port"):
                out.append((str(reg["JobID"]), (str(reg["Address"]), int(reg["Port"])),
                            call.startswith(f"{prefix}min-")))
        return out

    def endpoint(self, dispatch: Dispatch, service: str) -> tuple[str, int] | None:
        """The address the dispatched child registered for ``service`` (``GET /v1/service/<name>``); after
        the first look, a blocking query (up to a second) that returns when the registrations change."""
        with self._lock:
            index = self._service_index.get(dispatch.dispatch_id)
        try:
            registrations, new_index = self.api.service(service, index=index, wait="1s")
        except NomadNotFound:  # nothing registered under that name yet
            return None
        for reg in registrations:
            if reg.get("JobID") == dispatch.dispatch_id and reg.get("Port"):
                with self._lock:
                    self._service_index.pop(dispatch.dispatch_id, None)
                return str(reg["Address"]), int(reg["Port"])
        with self._lock:
            self._service_index[dispatch.dispatch_id] = new_index
        return None

    # -- calls ------------------------------------------------------------------
    def _deployed_job(self, app_name: str, tag: str) -> tuple[str, dict[str, Any]]:
        """The ID and the job of deployed function ``tag`` of app ``app_name`` (job ``<app>-<tag>``)."""
        job_id = make_job_id(app_name, tag)
        job = self.api.job(job_id)
        if job is None or (job.get("Meta") or {}).get("modalc_app") != app_name:
            raise UserError(f"no deployed function {tag!r} of app {app_name!r} on Nomad (job {job_id} not found "
                            f"in namespace {self.settings.namespace!r})", hint=f"deploy it: modalc deploy <script>"
                            f" --name {app_name}")
        return job_id, job

    def lookup(self, app_name: str, tag: str) -> FunctionJob:
        """The deployed function ``tag`` of app ``app_name`` (job ``<app>-<tag>``), for Function.from_name."""
        job_id, job = self._deployed_job(app_name, tag)
        if not job.get("ParameterizedJob") or job.get("Stop"):
            raise UserError(f"{app_name}.{tag} (job {job_id}) cannot be called: it is "
                            + ("stopped" if job.get("Stop") else "not a dispatchable (parameterized) job"))
        warm = warm_from_meta(job.get("Meta") or {}, job_id, os.cpu_count() or 1)
        fn = deployed_stub(app_name, tag, job_id, warm=warm)
        store = config_from_meta(job.get("Meta"))
        with self._lock:
            self.parents[fn.tag] = job_id
            self._deployed.add(job_id)
            if store is not None:
                self._parent_stores[job_id] = store
        return fn

    def _parent(self, fn: FunctionJob) -> str:
        """The Nomad ID of the parameterized job a call of ``fn`` dispatches: this run's, or the deployed one."""
        return self.parents.get(fn.tag) or fn.job.id

    def payload_limit(self, fn: FunctionJob) -> int | None:
        return None if self._blobs_for(self._parent(fn)) is not None else PAYLOAD_LIMIT

    def _blobs_for(self, parent: str) -> RunBlobs | None:
        """Where a call to ``parent`` puts a large input: the store the deployed job records, else the run's."""
        return self._blobs_in(self._parent_stores.get(parent))

    def _blobs_in(self, store: BlobConfig | None) -> RunBlobs | None:
        if store is None or store == self.blob_config:
            return self.blobs
        with self._lock:
            if store not in self._other_blobs:
                self._other_blobs[store] = RunBlobs(BlobStore(store), self.run_id)
            return self._other_blobs[store]

    def web_url(self, fn: FunctionJob) -> str:
        """The address Nomad registered for the endpoint's service (``GET /v1/service/<name>``), waiting for
        an allocation of this run's job to register it (at most the placement timeout)."""
        from .listening import registered_url

        job_id = self._parent(fn)
        return registered_url(self.api, fn, job_id, timeout_s=self.placement_timeout)

    def deployed_web_url(self, app_name: str, tag: str) -> str | None:
        """The address of deployed web function ``tag`` of ``app_name`` (its service job ``<app>-<tag>``,
        as ``modalc deploy`` registered it); None for a deployed function without a web endpoint."""
        from .listening import service_url

        job_id, job = self._deployed_job(app_name, tag)
        if job.get("Type") != "service":
            return None
        services = [s for g in job.get("TaskGroups") or () for s in g.get("Services") or ()]
        if not services:
            return None
        if job.get("Stop"):
            raise UserError(f"{app_name}.{tag} (job {job_id}) is stopped: it serves no requests",
                            hint=f"deploy it again: modalc deploy <script> --name {app_name}")
        service = services[0]
        return service_url(self.api, str(service["Name"]), job_id, label=f"{app_name}.{tag}",
                           expect_checks=bool(service.get("Checks")), timeout_s=self.placement_timeout)

    def dispatch(self, fn: FunctionJob, payload: bytes, *, call_id: str) -> Dispatch:
        if self._stopped:
            raise UserError("the app run has ended; no more calls can be made")
        parent = self._parent(fn)
        token = f"{self.run_id or 'modalc'}-{call_id}"
        key = ""
        blobs = self._blobs_for(parent)
        if len(payload) > PAYLOAD_LIMIT and blobs is not None:
            scope = f"{DEPLOYED_SCOPE}/{fn.tag.split('.')[0]}" if parent in self._deployed else None
            payload, key = blobs.reference(payload, scope=scope, expires_s=expiry_s(self.placement_timeout))
        try:
            answer = self.api.dispatch(parent, payload, meta={"modalc_call": call_id}, idempotency_token=token)
        except NomadRejected as exc:
            _release(blobs, key)
            raise self._undispatchable(fn, parent, exc) from None
        except BaseException:
            _release(blobs, key)
            raise
        child = answer["DispatchedJobID"]
        with self._lock:
            self._calls[child] = _Call(child=child, parent=parent, tag=fn.tag, eval_id=answer.get("EvalID") or "",
                                       blob=key, blobs=blobs)
        return Dispatch(function=fn.tag, dispatch_id=child, call_id=call_id)

    def _undispatchable(self, fn: FunctionJob, parent: str, exc: NomadRejected) -> UserError:
        """A dispatch Nomad refused: the job was stopped or purged meanwhile (500 ``Specified job "<id>" is
        stopped`` / ``parameterized job not found``, nomad/job_endpoint.go Dispatch), or something else."""
        if "is stopped" in exc.text or "parameterized job not found" in exc.text:
            state = "stopped" if "is stopped" in exc.text else "no longer registered"
            if parent in self._deployed:
                return UserError(f"{fn.tag} (job {parent}) cannot be called: it is {state}",
                                 hint="deploy the app again: modalc deploy <script>")
            return UserError(f"{fn.tag} cannot be called: its job {parent} is {state} (the run was stopped "
                             "from outside, e.g. with `modalc app stop` or `nomad job stop`)")
        return exc

    def attach(self, child: str) -> Dispatch:
        """A Dispatch for a child job dispatched elsewhere (FunctionCall.from_id)."""
        job = self.api.job(child)
        if job is None or not job.get("ParentID"):
            raise UserError(f"no function call {CALL_PREFIX}{child} on Nomad (dispatched job {child!r} not found; "
                            "it may have been garbage-collected)")
        tag = (job.get("Meta") or {}).get("modalc_function") or job["ParentID"]
        # The child's input, read from its payload, is in the store the child's meta (its parent's) records,
        # else in ours: reading the call's result releases it.
        blobs = self._blobs_in(config_from_meta(job.get("Meta")))
        key = _blob_key(job, blobs.store.config if blobs else None)
        with self._lock:
            self._calls.setdefault(child, _Call(child=child, parent=job["ParentID"], tag=tag, blob=key, blobs=blobs))
            self._deployed.add(job["ParentID"])
        return Dispatch(function=tag, dispatch_id=child, call_id=child)

    def _call(self, dispatch: Dispatch) -> _Call:
        with self._lock:
            return self._calls[dispatch.dispatch_id]

    def cancel(self, dispatch: Dispatch) -> None:
        try:
            self.api.deregister(dispatch.dispatch_id, purge=True)
        except NomadNotFound:
            pass

    # -- waiting ----------------------------------------------------------------
    def _placed(self, call: _Call) -> tuple[dict[str, Any] | None, str]:
        """Block until the child has an allocation; (alloc stub, "") or (None, why it could not be placed)."""
        if call.alloc is not None:
            return call.alloc, ""
        allocs, index = self.api.job_allocations(call.child)
        why = told = ""
        waited = False
        while not allocs:
            remaining = call.started + self.placement_timeout - time.monotonic()
            why = self._placement_problem(call) or why
            if waited and self.api.job(call.child) is None:
                # Nomad lists no allocations for a job it does not have (command/agent/job_endpoint.go
                # jobAllocations: never a 404), so a child purged from outside is noticed here.
                return None, f"job {call.child} was stopped and purged before an allocation was placed"
            if why and why != told:  # as `nomad job run` does: say at once why it waits, and when that changes
                self.sink.line(call.tag, f"waiting for placement: {why}", sys.stderr)
                told = why
            if remaining <= 0:
                return None, why or "no allocation was placed"
            # Short blocking queries, so the evaluation's verdict is read within seconds of being known.
            wait = max(1, min(int(remaining), PLACEMENT_CHECK_S))
            allocs, index = self.api.job_allocations(call.child, index=index, wait=f"{wait}s")
            waited = True
        call.alloc = max(allocs, key=lambda a: a.get("CreateIndex", 0))
        call.index = index
        call.status = call.alloc.get("ClientStatus", "")
        return call.alloc, ""

    def _placement_problem(self, call: _Call) -> str:
        if not call.eval_id:
            evals = []
        else:
            try:
                evals = [self.api.evaluation(call.eval_id)]
            except NomadNotFound:
                evals = []
        for ev in evals:
            failed = ev.get("FailedTGAllocs") or {}
            if failed:
                return explain_placement(failed, self._job_devices(call))
            if ev.get("Status") in ("failed", "canceled"):
                return f"evaluation {ev['ID'][:8]} {ev['Status']}: {ev.get('StatusDescription') or ''}".strip()
        return ""

    def _job_devices(self, call: _Call) -> list[tuple[str, str]]:
        """(device name, model regexp) of the function's job, to name GPU constraints in messages."""
        fn = next((f for f in (self.app.functions if self.app else ()) if f.tag == call.tag), None)
        out = []
        for group in fn.job.groups if fn else ():
            for task in group.tasks:
                for dev in task.resources.devices:
                    for c in dev.constraints or ():
                        out.append((dev.name, getattr(c, "value", "") or ""))
                    if not dev.constraints:
                        out.append((dev.name, ""))
        return out

    def wait(self, dispatch: Dispatch, timeout: float | None = None) -> AllocResult | None:
        call = self._call(dispatch)
        try:
            return self._wait(call)
        finally:
            key, call.blob = call.blob, ""
            _release(call.blobs, key)  # the call's input is read once its allocation has ended

    def _wait(self, call: _Call) -> AllocResult | None:
        alloc, why = self._placed(call)
        if alloc is None:
            return AllocResult(exit_code=None, result=None,
                               failure=f"could not be placed within {self.placement_timeout:g} s: {why} "
                               f"(job {call.child})")
        notes: list[str] = []
        while True:
            alloc_id = alloc["ID"]
            gone = self._print_logs(call, alloc_id)
            result = None
            if not gone:
                try:
                    result = self.api.read_file(alloc_id, f"alloc/data/{RESULT_FILE}")
                except NomadNotFound:
                    result = None
            if result is not None:
                return AllocResult(exit_code=0, result=result)
            full = self._terminal(call, alloc_id)
            nxt = full.get("NextAllocation") or ""
            if nxt:
                notes.append(f"allocation {alloc_id[:8]} was {full.get('ClientStatus')} and rescheduled as "
                             f"{nxt[:8]}")
                sys.stderr.write(f"[{call.tag}] {notes[-1]}\n")
                alloc = {"ID": nxt}
                continue
            failure = explain_failure(full, gone=gone or self._gone(alloc_id))
            return AllocResult(exit_code=task_exit_code(full), result=None,
                               failure="; ".join([*notes, failure]))

    def _gone(self, alloc_id: str) -> bool:
        try:
            self.api.logs(alloc_id, TASK_NAME, "stderr", offset=0)
            return False
        except NomadTaskNotStarted:  # the task never started (e.g. a driver failure): there, not collected
            return False
        except NomadNotFound:
            return True

    def _await_start(self, alloc_id: str) -> bool:
        """After a log read answered "not started yet": block (queries on the allocation) until the task
        has started (True) or the allocation ended without starting it (False)."""
        index = None
        while True:
            full = self.api.allocation(alloc_id, index=index, wait="60s")
            state = (full.get("TaskStates") or {}).get(TASK_NAME) or {}
            if state.get("StartedAt") and not str(state["StartedAt"]).startswith("0001-"):
                return True
            if full.get("ClientStatus") not in ("pending", "running"):
                return False
            index = int(full.get("ModifyIndex") or 0)

    def _terminal(self, call: _Call, alloc_id: str) -> dict[str, Any]:
        """The full allocation, once it is terminal (blocking queries)."""
        index = None
        while True:
            full = self.api.allocation(alloc_id, index=index, wait="60s")
            if full.get("ClientStatus") not in ("pending", "running"):
                return full
            index = int(full.get("ModifyIndex") or 0)

    def _print_logs(self, call: _Call, alloc_id: str) -> bool:
        """Stream stdout until the task has ended, and stderr: read once at the end of a short task,
        followed live once the task has run ``STDERR_LIVE_AFTER_S``. True if the allocation was
        garbage-collected. The end is the allocation's (``TaskEnd``): Nomad keeps a followed stream open."""
        err = _Lines(call.tag, self.sink, sys.stderr)
        out = _Lines(call.tag, self.sink, sys.stdout)
        end = TaskEnd(self.api, alloc_id, index=call.index if call.alloc and call.alloc["ID"] == alloc_id else 0)
        lock = threading.Lock()
        state = {"ended": False, "live": False, "gone": False}

        def live() -> None:
            with lock:
                if state["ended"]:
                    return
                state["live"] = True
            try:
                state["gone"] = follow_log(self.api, alloc_id, TASK_NAME, "stderr", err.feed, end,
                                           await_start=lambda: self._await_start(alloc_id))
            except ModalcError as exc:  # the result is read all the same; only the log is cut short
                self.sink.note(f"{call.tag}: stopped following stderr: {exc}")
            finally:
                err.close()

        timer = threading.Timer(STDERR_LIVE_AFTER_S, live)
        timer.daemon = True
        timer.start()
        try:
            gone = follow_log(self.api, alloc_id, TASK_NAME, "stdout", out.feed, end,
                              await_start=lambda: self._await_start(alloc_id))
        except BaseException:
            end.cancel()
            raise
        finally:
            out.close()
            with lock:
                state["ended"] = True
            timer.cancel()
        try:
            if state["live"]:
                timer.join()  # the stderr stream ends with the task too
                return gone or state["gone"]
        finally:
            end.cancel()
        if gone:
            return True
        try:
            err.feed(self.api.logs(alloc_id, TASK_NAME, "stderr"))
        except NomadTaskNotStarted:
            return False  # it never started: no stderr
        except NomadNotFound:
            return True
        err.close()
        return False

    def read_stream(self, dispatch: Dispatch, offset: int) -> tuple[bytes, bool]:
        call = self._call(dispatch)
        alloc, _ = self._placed(call)
        if alloc is None:
            return b"", True
        try:
            data = self.api.read_at(alloc["ID"], f"alloc/data/{STREAM_FILE}", offset, 1 << 20)
        except NomadNotFound:
            data = b""
        if data:
            call.stream_wait_s = STREAM_WAIT_MIN_S
            return data, False
        if call.status not in ("pending", "running", ""):
            return b"", True
        # Nothing new: a blocking query on the child's allocations (returns when Nomad's state changes,
        # else after the wait: frames written meanwhile are read then) instead of a polling loop.
        wait = f"{int(call.stream_wait_s * 1000)}ms"
        call.stream_wait_s = min(call.stream_wait_s * 2, STREAM_WAIT_MAX_S)
        allocs, call.index = self.api.job_allocations(call.child, index=call.index or None, wait=wait)
        mine = next((a for a in allocs if a["ID"] == alloc["ID"]), None)
        call.status = mine.get("ClientStatus", "") if mine else "gone"
        return b"", call.status not in ("pending", "running")


def _release(blobs: RunBlobs | None, key: str) -> None:
    if key and blobs is not None:
        blobs.release(key)


def _blob_key(job: dict[str, Any], config: BlobConfig | None) -> str:
    """The blob-store key of a dispatched child's input (read from its "blob" reference payload), or ""."""
    raw = job.get("Payload")
    if config is None or not raw:
        return ""
    import base64

    from agent_runtime.protocol import ProtocolError, read_header

    try:
        header, _ = read_header(base64.b64decode(raw))
    except (ProtocolError, ValueError):
        return ""
    key = header.get("key")
    prefix = config.scope_prefix("x")[:-2]  # "<prefix>/modalc/"
    return key if header.get("kind") == "blob" and isinstance(key, str) and key.startswith(prefix) else ""


def _stderr_line(line: str) -> None:
    sys.stderr.write(line + "\n")


class _Lines:
    """Cuts a byte stream into lines for the LogSink."""

    def __init__(self, tag: str, sink: LogSink, stream: Any):
        self.tag, self.sink, self.stream, self.buf = tag, sink, stream, b""

    def feed(self, data: bytes) -> None:
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            self.sink.line(self.tag, line.decode("utf-8", "replace") + "\n", self.stream)

    def close(self) -> None:
        if self.buf:
            self.sink.line(self.tag, self.buf.decode("utf-8", "replace"), self.stream)
            self.buf = b""


def purge_jobs(api: NomadAPI, job_ids: list[str]) -> list[tuple[str, Exception]]:
    """Deregister and purge jobs concurrently; the ones that failed (a missing job is not a failure)."""
    def one(job_id: str) -> tuple[str, Exception] | None:
        try:
            api.deregister(job_id, purge=True)
        except NomadNotFound:
            pass
        except ModalcError as exc:
            return job_id, exc
        return None

    return [r for r in _pmap(one, job_ids) if r is not None]


def _pmap(f: Callable[[str], _T], items: list[str]) -> list[_T]:
    if len(items) <= 1:
        return [f(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(8, len(items))) as pool:
        return list(pool.map(f, items))


def explain_placement(failed: dict[str, Any], devices: list[tuple[str, str]]) -> str:
    """Why Nomad could not place a task group, from an evaluation's FailedTGAllocs."""
    parts = []
    for group, m in sorted(failed.items()):
        reasons = []
        for dev, model in devices:
            reasons.append(f"no node offers an {dev} matching {model}" if model else f"no node offers an {dev}")
        filtered = m.get("ConstraintFiltered") or {}
        other = [k for k in filtered if not any(model and model in k for _, model in devices)]
        if other:
            reasons.append("constraint not met: " + ", ".join(sorted(other)))
        for key in ("DimensionExhausted", "ResourcesExhausted", "QuotaExhausted"):
            if m.get(key):
                reasons.append(f"{key}: {m[key]}")
        evaluated = m.get("NodesEvaluated", 0)
        text = "; ".join(dict.fromkeys(reasons)) or "no node could run it"
        parts.append(f"group {group!r}: {text} ({evaluated} node(s) evaluated, "
                     f"{m.get('NodesFiltered', 0)} filtered, {m.get('NodesExhausted', 0)} exhausted)")
    return "; ".join(parts)


def task_exit_code(alloc: dict[str, Any]) -> int | None:
    state = (alloc.get("TaskStates") or {}).get(TASK_NAME) or {}
    for ev in reversed(state.get("Events") or []):
        if ev.get("Type") == "Terminated":
            return int(ev.get("ExitCode") or 0)
    return None


def explain_failure(alloc: dict[str, Any], *, gone: bool) -> str:
    """Why an allocation ended without a result, from its status and task events."""
    aid = alloc.get("ID", "")[:8]
    status = alloc.get("ClientStatus")
    if status == "lost":
        return (f"allocation {aid} was lost ({alloc.get('ClientDescription') or 'its node went down'}) and was "
                "not rescheduled")
    state = (alloc.get("TaskStates") or {}).get(TASK_NAME) or {}
    events = state.get("Events") or []
    if gone and status == "complete":
        return (f"allocation {aid} was garbage-collected by its Nomad client before its result was read (the "
                f"task had exited with code {task_exit_code(alloc)}; raise the client's gc_interval/gc_max_allocs, "
                "or read results sooner)")
    for ev in reversed(events):
        kind = ev.get("Type")
        details = ev.get("Details") or {}
        if kind in ("Driver Failure", "Template failure", "Setup Failure", "Failed Artifact Download") or \
                ev.get("DriverError") or ev.get("SetupError"):
            msg = ev.get("DriverError") or ev.get("SetupError") or ev.get("DisplayMessage") or details.get(
                "message") or ""
            return f"task {TASK_NAME} of allocation {aid} failed to start: {kind}: {msg}"
        if kind == "OOM Killed" or details.get("oom_killed") == "true":
            mem = ((alloc.get("Job") or {}).get("TaskGroups") or [{}])[0].get("Tasks", [{}])[0].get(
                "Resources", {}).get("MemoryMB")
            limit = f" of {mem} MiB" if mem else ""
            return (f"task {TASK_NAME} of allocation {aid} was OOM-killed: it used more than its memory "
                    f"limit{limit} (raise memory= on the function)")
        if kind == "Terminated":
            code = int(ev.get("ExitCode") or 0)
            sig = int(ev.get("Signal") or 0)
            meaning = _EXIT_MEANING.get(code, "")
            text = f"task {TASK_NAME} of allocation {aid} exited with code {code}"
            if sig:
                text += f" (signal {sig})"
            if meaning:
                text += f" ({meaning})"
            text += " without writing a result"
            if gone:
                text += "; the allocation was garbage-collected before its result was read"
            return text
    if gone:
        return (f"allocation {aid} was garbage-collected by its Nomad client before its result was read "
                "(raise the client's gc_interval/gc_max_allocs, or read results sooner)")
    return f"allocation {aid} ended ({status}: {alloc.get('ClientDescription') or 'no description'}) without a result"

"""The nested-call channel on Nomad: dispatches of the app's parameterized jobs through the Task API.

Runs inside allocations (on Nomad); standard library only. A call made by user code in an allocation is a
dispatch of the target function's job, exactly as the client makes it: the job of function ``f`` is
``<run>-f`` in an ephemeral run (``NOMAD_META_modalc_run``, inherited by every dispatched child from its
parent job) and ``<app>-f`` in a deployed app, ``<other app>-f`` for ``Function.from_name``
(``agent_runtime.jobnames``). The allocation then waits for the child's allocation with blocking queries
(``index``/``wait``), reads the child's result file, and relays the child's output to its own, each line
prefixed ``[function]`` (the client prefixes it again with the caller's name).

Requests go to ``${NOMAD_SECRETS_DIR}/api.sock`` with the task's workload identity (``taskapi.TaskAPI``),
never with a user's token. The rights come from the ACL policy attached to the calling job
(compiler/acl_policy.py); a refusal says which policy is missing and the command that attaches it.
Children dispatched here are children of the run's parent jobs, so the client's cleanup (which purges
every child of every parent of the run) stops and purges them too.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid

from ..jobnames import job_id
from ..protocol import RESULT_FILE, STREAM_FILE
from ..sdk.exception import ExecutionError
from .invoker import Channel, Ended
from .taskapi import TaskAPI, TaskAPIError, TaskAPIForbidden, TaskAPINotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..sdk.functions import Target

TASK = "main"
PAYLOAD_LIMIT = 16384  # bytes of dispatch payload (nomad/job_endpoint.go DispatchPayloadSizeLimit)
PLACEMENT_TIMEOUT_S = float(os.environ.get("MODALC_PLACEMENT_TIMEOUT") or 300)
WAIT = "30s"
LIVE = ("pending", "running")


class NomadChannel(Channel):
    name = "nomad"
    max_payload = PAYLOAD_LIMIT

    def __init__(self, api: TaskAPI, app_name: str, run_id: str, caller_job: str) -> None:
        self.api = api
        self.app_name = app_name
        self.prefix = run_id or app_name  # an ephemeral run's jobs, else the deployed app's
        self.caller_job = caller_job  # the job the policy is attached to (a dispatched child's parent)
        self._children: dict[str, str] = {}  # child job ID -> function tag
        self._lock = threading.Lock()
        self._out_lock = threading.Lock()

    # -- errors -------------------------------------------------------------------
    def _refused(self, exc: TaskAPIForbidden) -> ExecutionError:
        policy = f"modalc-{self.caller_job}"[:128]
        ns = self.api.namespace
        return ExecutionError(
            f"{exc} — this allocation's workload identity lacks the rights of ACL policy {policy!r}, which lets the "
            f"jobs of app {self.app_name!r} call its functions. `modalc run`/`modalc deploy` attach it when their "
            f"token may; otherwise attach it with: modalc build --acl-policy <script> -o <dir>, then "
            f"nomad acl policy apply -namespace {ns} -job {self.caller_job} {policy} <dir>/{self.app_name}.policy.hcl")

    def _guard(self, what: str, fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except TaskAPIForbidden as exc:
            raise self._refused(exc) from None
        except TaskAPIError as exc:
            raise ExecutionError(f"{what}: {exc}") from None

    # -- the Channel interface --------------------------------------------------------
    def _job(self, target: Target) -> str:
        if target.app_name and target.app_name != self.app_name:
            return job_id(target.app_name, target.tag)  # Function.from_name of a deployed app
        return job_id(self.prefix, target.tag)

    def dispatch(self, target: Target, payload: bytes, *, keep: bool = False) -> str:
        parent = self._job(target)
        call_id = uuid.uuid4().hex[:16]
        try:
            answer = self.api.dispatch(parent, payload, meta={"modalc_call": call_id},
                                       idempotency_token=f"{self.prefix}-{call_id}")
        except TaskAPIForbidden as exc:
            raise self._refused(exc) from None
        except TaskAPIError as exc:
            text = str(exc)
            if "parameterized job not found" in text or "is stopped" in text:
                state = "stopped" if "is stopped" in text else "not registered"
                raise ExecutionError(f"{target.tag} cannot be called: its job {parent} is {state} on Nomad") from None
            raise ExecutionError(f"calling {target.tag}: {exc}") from None
        child = str(answer["DispatchedJobID"])
        with self._lock:
            self._children[child] = target.tag
        return child

    def _tag(self, child: str) -> str:
        with self._lock:
            return self._children.get(child) or child.split("/dispatch-")[0].rsplit("-", 1)[-1]

    def _placed(self, child: str, deadline: float | None) -> dict[str, Any] | None:
        """The child's newest allocation, waiting (blocking queries) until there is one."""
        placed_by = time.monotonic() + PLACEMENT_TIMEOUT_S
        index = None
        while True:
            allocs, index = self._guard(f"waiting for {child}", self.api.job_allocations, child, index=index,
                                        wait=WAIT)
            if allocs:
                newest: dict[str, Any] = max(allocs, key=lambda a: int(a.get("CreateIndex") or 0))
                return newest
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return None
            if now >= placed_by:
                raise ExecutionError(f"{self._tag(child)} could not be placed within {PLACEMENT_TIMEOUT_S:g} s "
                                     f"(job {child})")
            if index and self.api.job(child) is None:
                raise ExecutionError(f"{self._tag(child)}: its job {child} was stopped and purged")

    def _terminal(self, alloc_id: str, deadline: float | None) -> dict[str, Any] | None:
        index = None
        while True:
            wait = WAIT
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                wait = f"{max(1, min(30, int(left)))}s"
            full: dict[str, Any] = self._guard("waiting for a call", self.api.allocation, alloc_id, index=index,
                                               wait=wait)
            if full.get("ClientStatus") not in LIVE:
                return full
            index = int(full.get("ModifyIndex") or 0)

    def wait(self, handle: str, timeout: float | None) -> Ended | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        alloc = self._placed(handle, deadline)
        if alloc is None:
            return None
        while True:
            full = self._terminal(alloc["ID"], deadline)
            if full is None:
                return None
            self._relay(handle, full["ID"])
            try:
                result: bytes | None = self.api.read_file(full["ID"], f"alloc/data/{RESULT_FILE}")
            except TaskAPINotFound:
                result = None
            except TaskAPIError as exc:
                if "no such file" not in str(exc):
                    raise ExecutionError(f"reading the result of {self._tag(handle)}: {exc}") from None
                result = None
            if result is not None:
                return Ended(result)
            nxt = full.get("NextAllocation") or ""
            if nxt:
                alloc = {"ID": nxt}
                continue
            return Ended(None, _failure(full))

    def _relay(self, child: str, alloc_id: str) -> None:
        """Print the child's stdout and stderr here, ``[function]``-prefixed."""
        tag = self._tag(child)
        for kind, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
            try:
                data = self.api.logs(alloc_id, TASK, kind)
            except TaskAPIError:  # not started, collected, or not readable: the result says what matters
                continue
            text = data.decode("utf-8", "replace")
            if not text:
                continue
            with self._out_lock:
                for line in text.splitlines():
                    stream.write(f"[{tag}] {line}\n")
                stream.flush()

    def read_stream(self, handle: str, offset: int) -> tuple[bytes, bool]:
        alloc = self._placed(handle, None)
        assert alloc is not None
        try:
            data = self.api.read_at(alloc["ID"], f"alloc/data/{STREAM_FILE}", offset, 1 << 20)
        except TaskAPINotFound:
            data = b""
        except TaskAPIForbidden as exc:
            raise self._refused(exc) from None
        except TaskAPIError as exc:
            if "no such file" not in str(exc):
                raise ExecutionError(f"reading the stream of {self._tag(handle)}: {exc}") from None
            data = b""
        if data:
            return data, False
        full = self._guard("waiting for a call", self.api.allocation, alloc["ID"],
                           index=int(alloc.get("ModifyIndex") or 0), wait="1s")
        return b"", full.get("ClientStatus") not in LIVE

    def cancel(self, handle: str) -> None:
        try:
            allocs, _ = self.api.job_allocations(handle)
            for a in allocs:
                if a.get("ClientStatus") in LIVE:
                    self.api.stop_allocation(a["ID"])
        except TaskAPIForbidden as exc:
            raise self._refused(exc) from None
        except TaskAPIError:
            pass

    def web_url(self, app_name: str, tag: str) -> str | None:
        job = self._guard(f"finding {tag}", self.api.job,
                          job_id(self.prefix if app_name == self.app_name else app_name, tag))
        services = [s for g in (job or {}).get("TaskGroups") or () for s in g.get("Services") or ()]
        if not services:
            return None
        regs, _ = self._guard(f"finding {tag}", self.api.service, str(services[0]["Name"]))
        for reg in regs:
            if reg.get("Address") and reg.get("Port"):
                return f"http://{reg['Address']}:{reg['Port']}"
        return None


def _failure(alloc: dict[str, Any]) -> str:
    """Why an allocation ended without a result, from its task's state and last events."""
    state = (alloc.get("TaskStates") or {}).get(TASK) or {}
    events = state.get("Events") or []
    exit_code = next((e.get("ExitCode") for e in reversed(events) if e.get("Type") == "Terminated"), None)
    last = next((e.get("DisplayMessage") or e.get("Message") or e.get("Type") for e in reversed(events)
                 if e.get("Type") not in ("Received", "Task Setup", "Started")), "")
    parts = [f"allocation {alloc['ID'][:8]} {alloc.get('ClientStatus')}"]
    if exit_code is not None:
        parts.append(f"exited with code {exit_code}")
    if last:
        parts.append(str(last))
    return ": ".join(parts[:1]) + (" (" + "; ".join(parts[1:]) + ")" if parts[1:] else "")


def from_environment(app_name: str) -> NomadChannel | None:
    """The channel of this allocation when it runs on Nomad with a Task API socket, else None."""
    from . import TASK_API_SOCKET

    secrets = os.environ.get("NOMAD_SECRETS_DIR") or ""
    if not secrets or not os.path.exists(os.path.join(secrets, TASK_API_SOCKET)):
        return None
    api = TaskAPI(secrets, os.environ.get("NOMAD_NAMESPACE") or "default")
    run_id = os.environ.get("NOMAD_META_MODALC_RUN") or ""  # Nomad sets the upper-cased key too
    caller = os.environ.get("NOMAD_JOB_PARENT_ID") or os.environ.get("NOMAD_JOB_ID") or ""
    return NomadChannel(api, app_name, run_id, caller)

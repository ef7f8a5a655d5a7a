"""What ``modalc deploy``, ``plan`` and ``app ...`` do on Nomad (click-free; cli.py wires them).

Runs on the client. ``deploy`` registers the app's jobs under stable IDs
(``<app>-<function>``) and updates them in place: each job is planned first
(``POST /v1/job/<id>/plan``) and only registered when the plan shows a change,
so an unchanged job keeps its Nomad version. ``plan`` prints the same plan and
exits like ``nomad job plan`` (0 no change, 1 changes, 255 error). The ``app``
commands find an app's jobs by their ``modalc_app`` meta.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .backends.local import LogSink
from .backends.nomad import explain_placement, purge_jobs
from .backends.nomad_api import NomadAPI, NomadNotFound
from .backends.nomad_logs import TaskEnd, follow_log
from .blob_store import BlobConfig
from .emit_json import job_dict
from .errors import UserError
from .ir import TASK_NAME, CompiledApp

Echo = Callable[[str], None]


@dataclass(frozen=True)
class PlannedJob:
    job_id: str
    change: str  # "create" | "update" | "unchanged"
    warnings: tuple[str, ...]
    job: dict[str, Any]


def plan_app(api: NomadAPI, compiled: CompiledApp) -> list[PlannedJob]:
    out = []
    for fn in compiled.functions:
        job = job_dict(fn.job)
        answer = api.plan(job["ID"], job, diff=True)
        kind = ((answer.get("Diff") or {}).get("Type") or "").lower()
        change = {"added": "create", "edited": "update", "deleted": "update"}.get(kind, "unchanged")
        warnings = []
        if answer.get("FailedTGAllocs"):
            warnings.append("cannot be placed now: " + explain_placement(answer["FailedTGAllocs"], []))
        if answer.get("Warnings"):
            warnings.append(str(answer["Warnings"]).strip())
        out.append(PlannedJob(job["ID"], change, tuple(warnings), job))
    return out


def stale_jobs(api: NomadAPI, app_name: str, keep: set[str]) -> list[str]:
    """Deployed jobs of the app that the script no longer has."""
    return sorted(j["ID"] for j in app_jobs(api, app_name) if not _ephemeral(j) and j["ID"] not in keep)


def show_plan(planned: list[PlannedJob], stale: list[str], echo: Echo) -> bool:
    """Print the plan; True when deploy would change something."""
    sign = {"create": "+", "update": "~", "unchanged": " "}
    for p in planned:
        label = {"create": "create", "update": "update in place (new version)", "unchanged": "no change"}[p.change]
        echo(f"{sign[p.change]} job {p.job_id!r}: {label}")
        for w in p.warnings:
            echo(f"    warning: {w}")
    for job_id in stale:
        echo(f"! job {job_id!r}: no longer in the app (left running; stop it with: nomad job stop -purge {job_id})")
    return any(p.change != "unchanged" for p in planned)


def deploy_app(api: NomadAPI, compiled: CompiledApp, echo: Echo, *, rotate_token: bool = False,
               secrets: tuple[str, ...] = (), variables: tuple[str, ...] = ()) -> list[PlannedJob]:
    from .warm_deploy import deploy_warm

    planned = plan_app(api, compiled)
    for fn, p in zip(compiled.functions, planned, strict=True):
        if p.change == "unchanged":
            echo(f"unchanged  {p.job_id}")
        else:
            api.register(p.job)
            current = api.job(p.job_id) or {}
            echo(f"{'created' if p.change == 'create' else 'updated'}    {p.job_id} "
                 f"(version {current.get('Version', '?')})")
            for w in p.warnings:
                echo(f"  warning: {w}")
        deploy_warm(api, fn, p.change, rotate_token=rotate_token, echo=echo)  # warm functions only
    if api.settings.token:  # with ACLs, the jobs' identities need their policy to call and read secrets
        from .acl_policy import attach

        for name in attach(api, [p.job_id for p in planned], api.settings.namespace, secrets, echo, variables):
            echo(f"policy     {name} (attached to its job)")
    keep = {p.job_id for p in planned}
    for job_id in stale_jobs(api, compiled.app_name, keep):
        echo(f"stale      {job_id} (no longer in the app; stop it with: nomad job stop -purge {job_id})")
    return planned


def show_endpoints(api: NomadAPI, compiled: CompiledApp, echo: Echo, timeout_s: float | None = None) -> None:
    """Print each web endpoint's URL, read from Nomad's service registrations once an allocation of its job
    runs and registered it (at most ``timeout_s``, default the placement timeout, per endpoint)."""
    from .backends.listening import is_listening, registered_url
    from .backends.nomad import placement_timeout_from_env

    timeout = placement_timeout_from_env() if timeout_s is None else timeout_s
    for fn in compiled.functions:
        if not is_listening(fn):
            continue
        try:
            echo(f"endpoint   {fn.tag}: {registered_url(api, fn, fn.job.id, timeout_s=timeout)}")
        except UserError as exc:
            echo(f"endpoint   {fn.tag}: not registered yet ({exc.message})")


# -- app commands ------------------------------------------------------------------
def _meta(job: dict[str, Any]) -> dict[str, str]:
    return job.get("Meta") or {}


def _ephemeral(job: dict[str, Any]) -> bool:
    return _meta(job).get("modalc_ephemeral") == "true"


def app_jobs(api: NomadAPI, app_name: str | None = None, *, children: bool = False,
             jobs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Job stubs with ``modalc_app`` meta (parents; dispatched children too with ``children``)."""
    jobs = api.jobs() if jobs is None else jobs
    parents = {j["ID"]: j for j in jobs if not j.get("ParentID") and _meta(j).get("modalc_app")
               and (app_name is None or _meta(j)["modalc_app"] == app_name)}
    out = list(parents.values())
    if children:
        out += [j for j in jobs if j.get("ParentID") in parents]
    return out


def app_list(api: NomadAPI, echo: Echo) -> None:
    apps: dict[tuple[str, str], list[dict[str, Any]]] = {}
    listed = api.jobs()
    for job in app_jobs(api, jobs=listed):
        meta = _meta(job)
        kind = f"run {meta.get('modalc_run', '?')}" if _ephemeral(job) else "deployed"
        apps.setdefault((meta["modalc_app"], kind), []).append(job)
    if not apps:
        echo("no modalc apps on Nomad")
        return
    from .warm_deploy import pool_size

    children: dict[str, list[dict[str, Any]]] = {}
    for job in listed:
        if job.get("ParentID"):
            children.setdefault(job["ParentID"], []).append(job)
    echo(f"{'APP':<24} {'KIND':<28} {'JOBS':>4}  {'CALLS (running/dead)':<20} STATUS")
    for (app, kind), jobs in sorted(apps.items()):
        running = sum((j.get("JobSummary") or {}).get("Children", {}).get("Running", 0) +
                      (j.get("JobSummary") or {}).get("Children", {}).get("Pending", 0) for j in jobs)
        dead = sum((j.get("JobSummary") or {}).get("Children", {}).get("Dead", 0) for j in jobs)
        status = "stopped" if all(j.get("Stop") for j in jobs) else "running"
        warm = sum(pool_size(children.get(j["ID"], [])) for j in jobs)
        if warm:
            status += f" ({warm} warm worker(s))"
        echo(f"{app:<24} {kind:<28} {len(jobs):>4}  {f'{running}/{dead}':<20} {status}")


def app_stop(api: NomadAPI, app_name: str, echo: Echo, run_id: str | None = None,
             blob: BlobConfig | None = None) -> int:
    jobs = app_jobs(api, app_name, children=True)
    if run_id:
        parents = {j["ID"] for j in jobs if _meta(j).get("modalc_run") == run_id}
        jobs = [j for j in jobs if j["ID"] in parents or j.get("ParentID") in parents]
    if not jobs:
        raise UserError(f"no jobs of app {app_name!r} on Nomad" + (f" for run {run_id}" if run_id else ""),
                        hint="modalc app list shows the apps")
    children = sorted(j["ID"] for j in jobs if j.get("ParentID"))
    parents_ = sorted(j["ID"] for j in jobs if not j.get("ParentID"))
    failed = purge_jobs(api, children) + purge_jobs(api, parents_)
    for job_id in parents_:
        if job_id not in {f for f, _ in failed}:
            echo(f"stopped and purged {job_id}")
    if children:
        echo(f"stopped and purged {len(children)} dispatched job(s)")
    if run_id:  # a detached run's secret and token Variables (compiler/run_secrets.py)
        from .run_secrets import delete_run_variables

        delete_run_variables(api, run_id, parents_, echo)
    if not run_id:  # the warm workers' token Variables (compiler/warm_deploy.py)
        from .warm_deploy import delete_tokens

        delete_tokens(api, parents_, echo)
        if not failed:  # the app's from_dict secrets (compiler/deploy_secrets.py), once no job of it is left
            from .deploy_secrets import delete_app_variables

            delete_app_variables(api, app_name, echo)
    _delete_blobs(jobs, app_name, run_id, blob, echo)
    for job_id, exc in failed:
        echo(f"could not stop {job_id}: {exc}")
    return 1 if failed else 0


def _delete_blobs(jobs: list[dict[str, Any]], app_name: str, run_id: str | None, blob: BlobConfig | None,
                  echo: Echo) -> None:
    """Delete the inputs of the stopped jobs' calls (compiler/blob_store.py): the runs' scopes and, unless only
    one run was stopped, the deployed app's, in the store given (``--blob-url``) and in those the jobs record."""
    from .blob_store import DEPLOYED_SCOPE, BlobStore, config_from_meta

    stores = {blob} if blob is not None else set()
    stores.update(c for c in (config_from_meta(_meta(j)) for j in jobs) if c is not None)
    runs = {run_id} if run_id else {_meta(j).get("modalc_run") or "" for j in jobs} - {""}
    scopes = sorted(runs) + ([] if run_id or not any(not _ephemeral(j) for j in jobs)
                             else [f"{DEPLOYED_SCOPE}/{app_name}"])
    for config in sorted(stores, key=lambda c: c.url):
        store = BlobStore(config)
        removed = sum(store.delete_scope(scope) for scope in scopes)
        if removed:
            echo(f"deleted {removed} blob(s) from {config.url}")


def app_history(api: NomadAPI, app_name: str, echo: Echo) -> None:
    jobs = [j for j in app_jobs(api, app_name, children=True)]
    parents = [j for j in jobs if not j.get("ParentID")]
    if not parents:
        raise UserError(f"no jobs of app {app_name!r} on Nomad", hint="modalc app list shows the apps")
    for parent in sorted(parents, key=lambda j: j["ID"]):
        echo(f"job {parent['ID']}" + (" (ephemeral)" if _ephemeral(parent) else ""))
        for v in api.versions(parent["ID"]):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime((v.get("SubmitTime") or 0) / 1e9))
            echo(f"  version {v.get('Version')}  submitted {when} UTC  stable={str(v.get('Stable')).lower()}"
                 + ("  stopped" if v.get("Stop") else ""))
        kids = sorted((j for j in jobs if j.get("ParentID") == parent["ID"]), key=lambda j: j.get("SubmitTime", 0))
        for kid in kids:
            echo(f"  call {kid['ID']}  {kid.get('Status')}")


def app_logs(api: NomadAPI, app_name: str, echo: Echo, follow: bool = False) -> None:
    """Print the logs of every allocation of the app's jobs, ``[function]``-prefixed; ``follow`` streams."""
    seen: set[str] = set()
    sink = LogSink()
    threads: list[threading.Thread] = []
    index: int | None = None
    while True:
        listed, new_index = api.jobs_index(index=index, wait="5m")
        jobs = app_jobs(api, app_name, children=True, jobs=listed)
        if not jobs and not seen:
            raise UserError(f"no jobs of app {app_name!r} on Nomad", hint="modalc app list shows the apps")
        for job in sorted(jobs, key=lambda j: j.get("SubmitTime", 0)):
            if job.get("ParameterizedJob") and not job.get("ParentID"):
                continue
            tag = _meta(job).get("modalc_function") or job["ID"]
            try:
                allocs, _ = api.job_allocations(job["ID"])
            except NomadNotFound:
                continue
            for alloc in sorted(allocs, key=lambda a: a.get("CreateIndex", 0)):
                if alloc["ID"] in seen:
                    continue
                seen.add(alloc["ID"])
                running = alloc.get("ClientStatus") in ("pending", "running")
                if follow and running:
                    t = threading.Thread(target=_follow, args=(api, alloc["ID"], tag, sink), daemon=True)
                    t.start()
                    threads.append(t)
                    continue
                for kind, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
                    try:
                        data = api.logs(alloc["ID"], TASK_NAME, kind)
                    except NomadNotFound:
                        continue
                    for line in data.decode("utf-8", "replace").splitlines():
                        sink.line(tag, line, stream)
        if not follow:
            return
        # Follow: the next pass starts with a blocking query on the job list (a new dispatch wakes it).
        index = new_index


def _follow(api: NomadAPI, alloc_id: str, tag: str, sink: LogSink) -> None:
    """Print one allocation's stdout live until its task has ended, then its stderr."""
    buf = b""

    def feed(chunk: bytes) -> None:
        nonlocal buf
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            sink.line(tag, line.decode("utf-8", "replace"), sys.stdout)

    end = TaskEnd(api, alloc_id, wait_s=300)
    try:
        follow_log(api, alloc_id, TASK_NAME, "stdout", feed, end)
        if buf:
            sink.line(tag, buf.decode("utf-8", "replace"), sys.stdout)
        err = api.logs(alloc_id, TASK_NAME, "stderr")
        for text in err.decode("utf-8", "replace").splitlines():
            sink.line(tag, text, sys.stderr)
    except Exception as exc:  # a follower thread reports and ends
        sink.line(tag, f"(log stream ended: {exc})", sys.stderr)
    finally:
        end.cancel()

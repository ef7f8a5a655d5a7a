"""Warm pools of deployed apps: the deploy's channel token and the ``min_containers`` workers on Nomad.

Runs on the client (``modalc deploy``, ``modalc app stop/list``). A deployed
warm function's token lives in the Variable ``nomad/jobs/<job id>`` (what its
dispatched children render through their workload identity); a redeploy keeps
it, so workers already running stay reachable, unless ``rotate`` asks for a new
one. A minimum worker is a serve dispatch of the deployed job whose envelope
says "never scale down" (``scaledown_ms = 0``) and whose dispatch meta
``modalc_call`` is ``warm-default-min-<random>``; deploy counts the running
ones among the job's children and dispatches the missing ones. When the job
changed (a new version), the old minimum workers are replaced (new ones are
started first, then the old ones are purged), so they run the new code.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from typing import Any

from agent_runtime import protocol
from agent_runtime.protocol import Call

from .backends.nomad import purge_jobs
from .backends.nomad_api import NomadAPI, NomadNotFound
from .ir import FunctionJob
from .lower.warm import CALL_PREFIX, TOKEN_ENV, TOKEN_VAR_FORMAT, pool_key

Echo = Callable[[str], None]
MIN_PREFIX = f"{CALL_PREFIX}{pool_key(None)}-min-"


def token_path(job_id: str) -> str:
    return TOKEN_VAR_FORMAT % job_id


def ensure_token(api: NomadAPI, job_id: str, *, rotate: bool = False) -> bool:
    """Write a fresh token to the job's Variable unless it has one (or ``rotate``); True if written."""
    path = token_path(job_id)
    current = api.get_variable(path)
    if current is not None and (current.get("Items") or {}).get(TOKEN_ENV) and not rotate:
        return False
    api.put_variable(path, {TOKEN_ENV: secrets.token_urlsafe(32)})
    return True


def _call_meta(job: dict[str, Any]) -> str:
    return str((job.get("Meta") or {}).get("modalc_call") or "")


def is_worker(job: dict[str, Any]) -> bool:
    """A dispatched child that is (or was) a warm worker."""
    return _call_meta(job).startswith(CALL_PREFIX)


def is_live(job: dict[str, Any]) -> bool:
    return job.get("Status") in ("pending", "running") and not job.get("Stop")


def min_workers(api: NomadAPI, job_id: str) -> list[dict[str, Any]]:
    """The job's running (or pending) minimum workers: its children dispatched by deploy."""
    return [j for j in api.jobs(prefix=f"{job_id}/") if j.get("ParentID") == job_id and is_live(j)
            and _call_meta(j).startswith(MIN_PREFIX)]


def serve_envelope(fn: FunctionJob, *, pinned: bool) -> bytes:
    assert fn.warm is not None
    return protocol.encode("serve", Call(inputs=[], method=None, params={}),
                           scaledown_ms=0 if pinned else fn.warm.scaledown_window_s * 1000,
                           max_inputs=fn.warm.max_inputs)


def keep_min_workers(api: NomadAPI, fn: FunctionJob, *, replace: bool, echo: Echo) -> None:
    """Start the missing minimum workers of a deployed warm function (all of them again when ``replace``)."""
    assert fn.warm is not None
    job_id = fn.job.id
    running = min_workers(api, job_id)
    old = running if replace else []
    missing = fn.warm.min_containers - (0 if replace else len(running))
    for _ in range(max(0, missing)):
        call_id = f"{MIN_PREFIX}{uuid.uuid4().hex[:10]}"
        api.dispatch(job_id, serve_envelope(fn, pinned=True), meta={"modalc_call": call_id},
                     idempotency_token=f"{job_id}-{call_id}")
    extra = [] if replace else running[fn.warm.min_containers:]  # min_containers was lowered
    stale = sorted(j["ID"] for j in [*old, *extra])
    for child, exc in purge_jobs(api, stale):
        echo(f"  warning: could not stop the old worker {child}: {exc}")
    if fn.warm.min_containers or stale:
        echo(f"warm       {job_id}: {fn.warm.min_containers} minimum worker(s), {max(0, missing)} started, "
             f"{len(stale)} old one(s) stopped")


def deploy_warm(api: NomadAPI, fn: FunctionJob, change: str, *, rotate_token: bool, echo: Echo) -> None:
    """What deploy does for one warm function after its job is registered: token, then minimum workers."""
    if fn.warm is None:
        return
    rotated = ensure_token(api, fn.job.id, rotate=rotate_token)
    # A new token or a new job version: the old workers hold the old token or run the old code.
    keep_min_workers(api, fn, replace=change == "update" or (rotated and change != "create"), echo=echo)


def delete_tokens(api: NomadAPI, job_ids: list[str], echo: Echo) -> None:
    """``app stop``: delete the token Variables of the stopped jobs (absent ones are fine)."""
    for job_id in job_ids:
        try:
            if api.get_variable(token_path(job_id)) is not None:
                api.delete_variable(token_path(job_id))
        except NomadNotFound:
            pass
        except Exception as exc:  # reported, the rest is still stopped
            echo(f"could not delete Variable {token_path(job_id)}: {exc}")


def pool_size(children: list[dict[str, Any]]) -> int:
    """Running warm workers among dispatched children (``app list``)."""
    return sum(1 for j in children if is_worker(j) and is_live(j))

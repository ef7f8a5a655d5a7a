"""Warm workers: the run-mode additions that let a dispatched allocation serve calls over HTTP.

Runs on the client. A function or class with ``min_containers``,
``max_containers``, ``buffer_containers``, ``scaledown_window`` or
``@modal.concurrent`` stays one parameterized batch job (every call can still
be dispatched), and in run mode its group also gets a dynamic port ``rpc``, a
Nomad-native service ``<job id>-rpc`` with an HTTP check on ``/healthz`` (which
reads no request body and needs no token), and a template that renders the
run's channel token from the Variable ``nomad/jobs/<parent job id>`` into the
task's environment (``MODALC_WARM_TOKEN``; a dispatched child reads its
parent's path through its workload identity, without extra ACLs). No token is
ever in the spec. A dispatch whose envelope is a "serve" envelope then becomes
a worker (``agent_runtime/serve.py``); the client's pool is
``compiler/warm_pool.py``. Deploy mode emits the same blocks, plus the job meta
``modalc_warm`` (the pool's settings as JSON, without ``max_containers``,
which is ``modalc_max_containers`` when set and else the caller's CPU count),
from which a ``Function.from_name`` caller rebuilds the pool
(``warm_from_meta``); ``modalc deploy`` writes the deploy's token and starts
the ``min_containers`` workers (``compiler/warm_deploy.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from ..errors import UserError
from ..graph import FunctionNode
from ..ir import RPC_PORT, Check, Driver, FunctionJob, Port, Service, Template, Warm
from . import resources as res

TOKEN_ENV = "MODALC_WARM_TOKEN"
HEALTH_PATH = "/healthz"
DEFAULT_SCALEDOWN_S = 60  # Modal's default scaledown_window
CONTAINER_RPC_PORT = 8001  # docker: the port inside the container
WARM_OPTIONS = ("min_containers", "max_containers", "buffer_containers", "scaledown_window")
TOKEN_VAR_FORMAT = "nomad/jobs/%s"
WARM_META = "modalc_warm"  # deploy mode: the pool's settings (JSON), read back by warm_from_meta
CALL_PREFIX = "warm-"  # a worker's dispatch meta modalc_call: warm-<pool key>-[min-]<random>


def pool_key(params: dict[str, Any] | None) -> str:
    """Which instance a worker serves: ``default`` (no class parameters) or a digest of the parameters."""
    if not params:
        return "default"
    return hashlib.sha256(repr(sorted(params.items())).encode()).hexdigest()[:12]


def is_warm(node: FunctionNode) -> bool:
    """Whether the function gets warm workers: an autoscaling option or ``@modal.concurrent``."""
    return any(node.options.get(k) is not None for k in (*WARM_OPTIONS, "keep_warm")) \
        or bool(node.partial.get("concurrent"))


def token_template() -> Template:
    """The task's env file holding the channel token, read from the parent job's Variable."""
    path = f'(printf "{TOKEN_VAR_FORMAT}" (env "NOMAD_JOB_PARENT_ID"))'
    data = f"{{{{ with nomadVar {path} }}}}{{{{ range .Tuples }}}}{{{{ .K }}}}={{{{ .V | toJSON }}}}\n{{{{ end }}}}{{{{ end }}}}"
    return Template(destination="secrets/warm.env", data=data, left_delimiter=None, right_delimiter=None, env=True,
                    change_mode="noop", perms="0400")


def _count(node: FunctionNode, key: str, default: int, minimum: int) -> int:
    value = node.options.get(key)
    if value is None and key == "min_containers":
        value = node.options.get("keep_warm")
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{key}={value!r} must be an integer of at least {minimum}", location=node.location)
    return value


def warm_settings(node: FunctionNode, job_id: str, cpus: int) -> Warm:
    loc = node.location
    o: dict[str, Any] = node.options
    concurrent = node.partial.get("concurrent") or {}
    max_inputs = concurrent.get("max_inputs") or 1
    if isinstance(max_inputs, bool) or not isinstance(max_inputs, int) or max_inputs < 1:
        raise UserError(f"max_inputs={max_inputs!r} must be a positive integer", location=loc)
    window = o.get("scaledown_window")
    if window is None:
        window = DEFAULT_SCALEDOWN_S
    if isinstance(window, bool) or not isinstance(window, (int, float)) or window < 1:
        raise UserError(f"scaledown_window={window!r} must be a number of seconds (at least 1)", location=loc)
    minimum = _count(node, "min_containers", 0, 0)
    maximum = _count(node, "max_containers", max(cpus, minimum, 1), 1)
    if minimum > maximum:
        raise UserError(f"min_containers={minimum} is more than max_containers={maximum}", location=loc)
    retry = res.retry_policy(o.get("retries"), loc)
    return Warm(min_containers=minimum, max_containers=maximum, buffer_containers=_count(node, "buffer_containers", 0, 0),
                scaledown_window_s=int(window), max_inputs=max_inputs, service=f"{job_id}-rpc"[:63],
                timeout_s=res.timeout_s(o.get("timeout"), loc), retries=retry.max_retries,
                backoff=retry.backoff_coefficient, initial_delay_s=retry.initial_delay_s,
                max_delay_s=retry.max_delay_s)


def deploy_meta(warm: Warm) -> str:
    """The ``modalc_warm`` meta of a deployed job: every setting but ``max_containers`` (the build machine's
    CPU count must not leak into the spec)."""
    fields = {k: v for k, v in dataclasses.asdict(warm).items() if k not in ("max_containers", "service")}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def warm_from_meta(meta: dict[str, str], job_id: str, cpus: int) -> Warm | None:
    """The pool settings of a deployed job (its ``modalc_warm`` meta); None for a job without warm workers."""
    raw = meta.get(WARM_META)
    if not raw:
        return None
    try:
        fields = json.loads(raw)
        minimum = int(fields["min_containers"])
        explicit = meta.get("modalc_max_containers")
        maximum = int(explicit) if explicit else max(cpus, minimum, 1)
        return Warm(**{**fields, "max_containers": maximum, "service": f"{job_id}-rpc"[:63]})
    except (ValueError, TypeError, KeyError):
        return None  # written by another modalc version: calls are dispatched per call


def lower_warm(compiled: FunctionJob, node: FunctionNode, driver: Driver, cpus: int, *,
               deploy: bool = False) -> FunctionJob:
    """``compiled`` (a dispatchable batch job) with the port, service and token template of warm workers
    (and, when ``deploy``, the ``modalc_warm`` meta)."""
    job = compiled.job
    warm = warm_settings(node, job.id, cpus)
    if deploy:
        job = dataclasses.replace(job, meta=(*job.meta, (WARM_META, deploy_meta(warm))))
    group = job.groups[0]
    task = group.tasks[0]
    config = task.config
    if driver is Driver.DOCKER:  # Nomad maps the port into the container only when the task lists it
        config = dataclasses.replace(config, ports=(*config.ports, RPC_PORT))
    task = dataclasses.replace(task, config=config, templates=(*task.templates, token_template()))
    check = Check(type="http", path=HEALTH_PATH, interval_s=10, timeout_s=2)
    service = Service(name=warm.service, port=RPC_PORT, provider="nomad",
                      tags=("modalc", "modalc-warm", f"modalc-function={node.tag}"), checks=(check,))
    port = Port(label=RPC_PORT, to=CONTAINER_RPC_PORT if driver is Driver.DOCKER else None)
    group = dataclasses.replace(group, tasks=(task,), network_ports=(*group.network_ports, port),
                                services=(*group.services, service))
    return dataclasses.replace(compiled, job=dataclasses.replace(job, groups=(group,)), warm=warm)

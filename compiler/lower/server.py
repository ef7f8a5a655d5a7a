"""``@app.server`` classes (Modal 1.6) → Nomad service jobs, and the notes for their options.

Runs on the client. ``lower_web`` has already made the server's job what a ``@modal.web_server(port)``
endpoint becomes: a ``service`` job with ``count = max(min_containers, 1)``, a dynamic port ``http``
(docker: ``to = port``; raw_exec and local: relayed to ``port``), a Nomad-native ``service`` with a
TCP check, and a task that runs the class's ``@modal.enter()`` methods (which start the user's
server), waits ``startup_timeout`` for the port and stays up. ``lower_server`` adds Modal's server
settings: the check's ``check_restart`` (three failed checks in a row restart the task, never within
``startup_timeout`` of its start) and the task's ``shutdown_delay`` (``exit_grace_period``: Nomad
removes the service registration, waits, then sends the kill signal, so requests in flight finish).
``server_notes`` lists the options Nomad has no use for (docs/mapping.md, "@app.server").
"""

from __future__ import annotations

import dataclasses
import math

from ..errors import UserError
from ..graph import FunctionNode
from ..ir import CheckRestart, FunctionJob
from .features import NO_EFFECT

CHECK_RESTART_LIMIT = 3  # failed checks in a row (10 s apart) before Nomad restarts the task

_NO_AUTOSCALER = "Nomad runs count = max(min_containers, 1) allocations and does not autoscale " \
                 "(use `nomad job scale` or the Nomad Autoscaler)"
# option -> why it has no effect on Nomad (the note says "<option>= ignored: <why>").
SERVER_NO_EFFECT = {
    "target_concurrency": _NO_AUTOSCALER,
    "max_containers": _NO_AUTOSCALER,
    "buffer_containers": _NO_AUTOSCALER,
    "scaleup_window": _NO_AUTOSCALER,
    "scaledown_window": _NO_AUTOSCALER,
    "max_concurrency": "there is no Modal proxy in front of the server to answer 429 above the limit",
    "routing_region": NO_EFFECT["routing_region"],
    "compute_region": "Nomad places jobs by --datacenter/--node-pool (a Nomad region is a federated cluster, "
                      "--region); Modal regions do not apply",
    "h2_enabled": "the port is passed through as bytes, so the server speaks HTTP/2 (h2c) if it does; "
                  "there is no Modal proxy to terminate it",
    **{key: NO_EFFECT[key] for key in ("cloud", "nonpreemptible", "enable_memory_snapshot", "i6pn",
                                       "experimental_options", "serialized", "include_source")},
}
PROXY_AUTH_NOTE = ("proxy authentication (a Modal Server's default) is not enforced: the port is reachable as "
                   "the cluster's network allows; pass unauthenticated=True to acknowledge")


def lower_server(compiled: FunctionJob, node: FunctionNode) -> FunctionJob:
    """``compiled`` (the service job ``lower_web`` made of the server) with its check_restart and
    shutdown_delay; checks min_containers against max_containers."""
    o = node.options
    minimum, maximum = o.get("min_containers"), o.get("max_containers")
    if isinstance(minimum, int) and isinstance(maximum, int) and minimum > maximum:
        raise UserError(f"min_containers={minimum} is more than max_containers={maximum}", location=node.location)
    web = node.web or {}
    grace = max(1, math.ceil(float(web.get("startup_timeout") or 30)))
    exit_grace = int(web.get("exit_grace_period") or 0)
    job = compiled.job
    group = job.groups[0]
    services = tuple(dataclasses.replace(s, checks=tuple(
        dataclasses.replace(c, restart=CheckRestart(limit=CHECK_RESTART_LIMIT, grace_s=grace)) for c in s.checks))
        for s in group.services)
    tasks = tuple(dataclasses.replace(t, shutdown_delay_s=exit_grace or None) for t in group.tasks)
    group = dataclasses.replace(group, services=services, tasks=tasks)
    return dataclasses.replace(compiled, job=dataclasses.replace(job, groups=(group,)))


def server_notes(node: FunctionNode) -> list[str]:
    """One ``file:line: tag: option= ignored: why`` note per option set that has no effect on Nomad."""
    file, line = node.location
    notes = [f"{file}:{line}: {node.tag}: {key}= ignored: {why}" for key, why in SERVER_NO_EFFECT.items()
             if key in node.options]
    if not node.options.get("unauthenticated"):
        notes.append(f"{file}:{line}: {node.tag}: {PROXY_AUTH_NOTE}")
    return notes

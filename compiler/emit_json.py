"""IR → Nomad API JSON (``{"Job": {...}}``), the body of ``POST /v1/jobs``.

Runs on the client. Keys are Nomad's Go field names; durations are integer
nanoseconds. Parsing the emitted HCL gives the same job.
"""

from __future__ import annotations

import json
from typing import Any

from .ir import Check, Device, Group, Job, Service, Task, Template, VolumeRequest

NS = 1_000_000_000
TEMPLATE_SPLAY_S = 5


def _device(d: Device) -> dict[str, Any]:
    out: dict[str, Any] = {"Name": d.name, "Count": d.count}
    if d.constraints:
        out["Constraints"] = [{"LTarget": c.attribute, "RTarget": c.value, "Operand": c.operator}
                              for c in d.constraints]
    if d.affinities:
        out["Affinities"] = [{"LTarget": a.attribute, "RTarget": a.value, "Operand": a.operator,
                              "Weight": a.weight} for a in d.affinities]
    return out


def _template(t: Template) -> dict[str, Any]:
    out: dict[str, Any] = {"DestPath": t.destination, "EmbeddedTmpl": t.data, "ChangeMode": t.change_mode}
    if t.left_delimiter is not None:
        out["LeftDelim"] = t.left_delimiter
        out["RightDelim"] = t.right_delimiter
    if t.env:
        out["Envvars"] = True
    if t.perms is not None:
        out["Perms"] = t.perms
    # What jobspec2 fills in when it parses a template block: the JSON then equals
    # what `nomad job run` submits for the HCL file.
    out.setdefault("Perms", "0644")
    out["ErrMissingKey"] = False
    out["Splay"] = TEMPLATE_SPLAY_S * NS
    return out


def _task(t: Task) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if t.config.image is not None:
        config["image"] = t.config.image
    config["command"] = t.config.command
    config["args"] = list(t.config.args)
    if t.config.ports:
        config["ports"] = list(t.config.ports)
    if t.config.network_mode is not None:
        config["network_mode"] = t.config.network_mode
    resources: dict[str, Any] = {"CPU": t.resources.cpu_mhz, "MemoryMB": t.resources.memory_mib}
    if t.resources.memory_max_mib is not None:
        resources["MemoryMaxMB"] = t.resources.memory_max_mib
    if t.resources.devices:
        resources["Devices"] = [_device(d) for d in t.resources.devices]
    out: dict[str, Any] = {
        "Name": t.name,
        "Driver": t.driver.value,
        "KillTimeout": t.kill_timeout_s * NS,
        "Config": config,
        "Env": dict(t.env),
        "Resources": resources,
    }
    if t.shutdown_delay_s is not None:
        out["ShutdownDelay"] = t.shutdown_delay_s * NS
    if t.dispatch_payload_file is not None:
        out["DispatchPayload"] = {"File": t.dispatch_payload_file}
    if t.identity_file:
        out["Identity"] = {"File": True}
    if t.volume_mounts:
        out["VolumeMounts"] = [{"Volume": m.volume, "Destination": m.destination, "ReadOnly": m.read_only}
                               for m in t.volume_mounts]
    if t.templates:
        out["Templates"] = [_template(x) for x in t.templates]
    return out


def _volume(v: VolumeRequest) -> dict[str, Any]:
    out: dict[str, Any] = {"Name": v.name, "Type": v.type, "Source": v.source, "ReadOnly": v.read_only}
    if v.access_mode is not None:
        out["AccessMode"] = v.access_mode
    if v.attachment_mode is not None:
        out["AttachmentMode"] = v.attachment_mode
    if v.per_alloc is not None:
        out["PerAlloc"] = v.per_alloc
    return out


def _check(c: Check) -> dict[str, Any]:
    out: dict[str, Any] = {"Type": c.type, **({"Path": c.path} if c.path is not None else {}),
                           "Interval": c.interval_s * NS, "Timeout": c.timeout_s * NS}
    if c.restart is not None:
        out["CheckRestart"] = {"Limit": c.restart.limit, "Grace": c.restart.grace_s * NS}
    return out


def _service(s: Service) -> dict[str, Any]:
    out: dict[str, Any] = {"Name": s.name, "PortLabel": s.port, "Provider": s.provider}
    if s.tags:
        out["Tags"] = list(s.tags)
    if s.checks:
        out["Checks"] = [_check(c) for c in s.checks]
    return out


def _group(g: Group) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Name": g.name,
        "Count": g.count,
        "RestartPolicy": {"Attempts": g.restart.attempts, "Mode": g.restart.mode},
    }
    if g.reschedule is not None:
        out["ReschedulePolicy"] = {"Attempts": g.reschedule.attempts, "Unlimited": g.reschedule.unlimited}
    if g.ephemeral_disk_mib is not None:
        out["EphemeralDisk"] = {"SizeMB": g.ephemeral_disk_mib}
    if g.network_ports:
        # jobspec2 sets ReservedPorts (null without static ports) whenever a network has ports.
        out["Networks"] = [{"DynamicPorts": [
            {"Label": p.label, **({"To": p.to} if p.to is not None else {})} for p in g.network_ports],
            "ReservedPorts": None}]
    if g.services:
        out["Services"] = [_service(s) for s in g.services]
    if g.volumes:
        out["Volumes"] = {v.name: _volume(v) for v in g.volumes}
    out["Tasks"] = [_task(t) for t in g.tasks]
    return out


def job_dict(job: Job) -> dict[str, Any]:
    out: dict[str, Any] = {"ID": job.id, "Name": job.id}
    if job.region is not None:
        out["Region"] = job.region
    if job.namespace is not None:
        out["Namespace"] = job.namespace
    out["Type"] = job.type.value
    out["Datacenters"] = list(job.datacenters)
    if job.node_pool is not None:
        out["NodePool"] = job.node_pool
    out["Meta"] = dict(job.meta)
    if job.parameterized is not None:
        p: dict[str, Any] = {"Payload": job.parameterized.payload}
        if job.parameterized.meta_required:
            p["MetaRequired"] = list(job.parameterized.meta_required)
        if job.parameterized.meta_optional:
            p["MetaOptional"] = list(job.parameterized.meta_optional)
        out["ParameterizedJob"] = p
    if job.periodic is not None:
        out["Periodic"] = {"Specs": list(job.periodic.crons), "SpecType": "cron",
                           "TimeZone": job.periodic.time_zone, "ProhibitOverlap": job.periodic.prohibit_overlap}
    out["TaskGroups"] = [_group(g) for g in job.groups]
    return out


def emit_json(job: Job) -> str:
    return json.dumps({"Job": job_dict(job)}, indent=2, ensure_ascii=False) + "\n"

"""Ports and Nomad-native service registrations for the Nomad test double.

Stdlib only. What a Nomad client and server do for a group with a
``network`` block and ``service`` blocks (``provider = "nomad"``), closely
enough for modalc's service jobs, with these double-only behaviours:

* every dynamic port gets a free port of this machine; since docker tasks run as
  local processes, ``NOMAD_PORT_<label>`` (and ``NOMAD_ALLOC_PORT_<label>``) is that
  host port even when the port has ``To`` (real docker tasks would see ``To``);
* a service is registered while its allocation is running (``ClientStatus``
  ``running``, ``DesiredStatus`` ``run``), at ``127.0.0.1`` and the port's host
  value; checks are not run (registrations carry no health);
* registrations are derived from the allocations on every request, so their
  ``CreateIndex``/``ModifyIndex`` are the allocation's;
* ``GET /v1/client/allocation/<id>/checks`` runs the allocation's checks when asked
  (http: a 2xx from ``Path``; tcp: a connection) instead of on their interval.

Responses follow ``GET /v1/services`` (``[{"Namespace", "Services": [{"ServiceName",
"Tags"}]}]``) and ``GET /v1/service/<name>`` (a list of registrations: ``ID``,
``ServiceName``, ``Namespace``, ``NodeID``, ``Datacenter``, ``JobID``, ``AllocID``,
``Tags``, ``Address``, ``Port``, ``CreateIndex``, ``ModifyIndex``).
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def allocate_ports(tg: dict[str, Any]) -> list[dict[str, Any]]:
    """``AllocatedResources.Shared.Ports`` for the group's network: one free host port per dynamic port."""
    out = []
    for net in tg.get("Networks") or []:
        for port in net.get("DynamicPorts") or []:
            out.append({"Label": port["Label"], "Value": _free_port(), "To": port.get("To") or 0, "HostIP": HOST})
        for port in net.get("ReservedPorts") or []:
            out.append({"Label": port["Label"], "Value": port["Value"], "To": port.get("To") or 0, "HostIP": HOST})
    return out


def port_env(ports: Iterable[dict[str, Any]]) -> dict[str, str]:
    env = {}
    for p in ports:
        label, value = p["Label"], str(p["Value"])
        env.update({f"NOMAD_PORT_{label}": value, f"NOMAD_ALLOC_PORT_{label}": value,
                    f"NOMAD_HOST_PORT_{label}": value, f"NOMAD_IP_{label}": HOST, f"NOMAD_HOST_IP_{label}": HOST,
                    f"NOMAD_ADDR_{label}": f"{HOST}:{value}", f"NOMAD_HOST_ADDR_{label}": f"{HOST}:{value}"})
    return env


def registrations(allocs: Iterable[dict[str, Any]], ns: str, lost: set[str]) -> list[dict[str, Any]]:
    """Every registration of the running allocations of namespace ``ns`` (``*``: all)."""
    out = []
    for alloc in allocs:
        if alloc["ID"] in lost or alloc["ClientStatus"] != "running" or alloc["DesiredStatus"] != "run":
            continue
        if ns != "*" and alloc["Namespace"] != ns:
            continue
        tg = next((g for g in alloc["Job"].get("TaskGroups") or [] if g["Name"] == alloc["TaskGroup"]), {})
        ports = {p["Label"]: p["Value"] for p in alloc.get("_ports") or []}
        for svc in tg.get("Services") or []:
            if (svc.get("Provider") or "consul") != "nomad":
                continue
            out.append({
                "ID": f"_nomad-task-{alloc['ID']}-group-{tg['Name']}-{svc['Name']}-{svc.get('PortLabel', '')}",
                "ServiceName": svc["Name"], "Namespace": alloc["Namespace"], "NodeID": alloc["NodeID"],
                "Datacenter": "dc1", "JobID": alloc["JobID"], "AllocID": alloc["ID"],
                "Tags": list(svc.get("Tags") or []), "Address": HOST, "Port": ports.get(svc.get("PortLabel"), 0),
                "CreateIndex": alloc["CreateIndex"], "ModifyIndex": alloc["ModifyIndex"],
            })
    return out


def services_list(regs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_ns: dict[str, dict[str, set[str]]] = {}
    for r in regs:
        by_ns.setdefault(r["Namespace"], {}).setdefault(r["ServiceName"], set()).update(r["Tags"])
    return [{"Namespace": ns, "Services": [{"ServiceName": name, "Tags": sorted(tags)}
                                            for name, tags in sorted(services.items())]}
            for ns, services in sorted(by_ns.items())]


def alloc_checks(alloc: dict[str, Any]) -> dict[str, Any]:
    """``GET /v1/client/allocation/<id>/checks``: check ID -> its result, each check run now."""
    out: dict[str, Any] = {}
    if alloc["ClientStatus"] != "running":
        return out
    tg = next((g for g in alloc["Job"].get("TaskGroups") or [] if g["Name"] == alloc["TaskGroup"]), {})
    ports = {p["Label"]: p["Value"] for p in alloc.get("_ports") or []}
    for svc in tg.get("Services") or []:
        if (svc.get("Provider") or "consul") != "nomad":
            continue
        port = ports.get(svc.get("PortLabel"), 0)
        for i, check in enumerate(svc.get("Checks") or []):
            status, code, output = _run_check(check, port)
            cid = f"{alloc['ID'][:8]}-{svc['Name']}-{i}"
            out[cid] = {"ID": cid, "Check": check.get("Name") or f"service: {svc['Name']!r} check",
                        "Group": f"{alloc['JobID']}.{tg['Name']}[{alloc.get('_index', 0)}]", "Mode": "healthiness",
                        "Output": output, "Service": svc["Name"], "Status": status, "StatusCode": code, "Task": "",
                        "Timestamp": int(time.time())}
    return out


def _run_check(check: dict[str, Any], port: int) -> tuple[str, int, str]:
    timeout = max(0.5, (check.get("Timeout") or 2_000_000_000) / 1e9)
    if check.get("Type") == "http":
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}{check.get('Path') or '/'}", timeout=timeout) as r:
                return ("success" if 200 <= r.status < 300 else "failure"), r.status, "HTTP check"
        except urllib.error.HTTPError as exc:
            return "failure", exc.code, str(exc)
        except OSError as exc:
            return "failure", 0, str(exc)
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return "success", 0, "nomad: tcp ok"
    except OSError as exc:
        return "failure", 0, str(exc)

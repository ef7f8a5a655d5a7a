"""Client-side plumbing for allocations that listen on a port (web endpoints, warm workers).

Runs on the client. Shared by the local backend (which plays Nomad's part:
a free port, the ``NOMAD_*PORT*`` variables, waiting for the service's check
to pass) and the Nomad backend (which reads the address Nomad registered for
the service, ``GET /v1/service/<name>``).
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from ..errors import UserError
from ..ir import Check, FunctionJob, JobType, Service
from .nomad_api import NomadAPI, NomadNotFound

READY_TIMEOUT_S = 60.0


def is_listening(fn: FunctionJob) -> bool:
    return fn.job is not None and fn.job.type is JobType.SERVICE and any(g.services for g in fn.job.groups)


def service_of(fn: FunctionJob) -> Service:
    return next(s for g in fn.job.groups for s in g.services)


def free_port(host: str = "127.0.0.1", prefer: int | None = None) -> int:
    """A port nothing listens on: ``prefer`` when it is free, else one the OS picks."""
    for port in ((prefer, 0) if prefer else (0,)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError("no free port")


def port_env(label: str, port: int, host: str = "127.0.0.1") -> dict[str, str]:
    """What a Nomad client sets for a port without ``to`` (raw_exec): every variable is the host's port."""
    addr = f"{host}:{port}"
    return {f"NOMAD_PORT_{label}": str(port), f"NOMAD_HOST_PORT_{label}": str(port),
            f"NOMAD_ALLOC_PORT_{label}": str(port), f"NOMAD_IP_{label}": host, f"NOMAD_HOST_IP_{label}": host,
            f"NOMAD_ADDR_{label}": addr, f"NOMAD_HOST_ADDR_{label}": addr}


def check_passes(check: Check, host: str, port: int) -> bool:
    """One run of a service check, as Nomad's native checks do it (http: a 2xx answer; tcp: a connection)."""
    if check.type == "http":
        try:
            with urllib.request.urlopen(f"http://{host}:{port}{check.path or '/'}", timeout=check.timeout_s) as r:
                return 200 <= int(r.status) < 300
        except (urllib.error.URLError, OSError, ValueError):
            return False
    try:
        with socket.create_connection((host, port), timeout=check.timeout_s):
            return True
    except OSError:
        return False


def wait_ready(fn: FunctionJob, host: str, port: int, *, alive: Callable[[], bool],
               timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until the service's first check passes; a ``UserError`` when the process ended or time ran out."""
    service = service_of(fn)
    check = service.checks[0] if service.checks else Check(type="tcp", path=None, interval_s=1, timeout_s=1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check_passes(check, host, port):
            return
        if not alive():
            raise UserError(f"{fn.tag}: the web endpoint's process exited before it served requests",
                            hint="its output above shows why")
        time.sleep(0.05)
    raise UserError(f"{fn.tag}: the web endpoint did not pass its {check.type} check within {timeout_s:g} s")


def registered_url(api: NomadAPI, fn: FunctionJob, job_id: str, *, timeout_s: float) -> str:
    """``http://Address:Port`` of an allocation of ``job_id`` (running ``fn``) whose checks pass."""
    service = service_of(fn)
    return service_url(api, service.name, job_id, label=fn.tag, expect_checks=bool(service.checks),
                       timeout_s=timeout_s)


def service_url(api: NomadAPI, name: str, job_id: str, *, label: str, expect_checks: bool, timeout_s: float) -> str:
    """``http://Address:Port`` of an allocation of ``job_id`` registered as service ``name`` whose checks
    pass, from Nomad's service registrations (blocking queries on ``GET /v1/service/<name>``, then
    ``GET /v1/client/allocation/<id>/checks``), waiting at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    index: int | None = None
    while True:
        wait = f"{max(1, int(min(30.0, deadline - time.monotonic())))}s"
        regs, new_index = api.service(name, index=index, wait=wait)
        mine = sorted((r for r in regs if r.get("JobID") == job_id), key=lambda r: r.get("CreateIndex", 0))
        for reg in mine:
            if _healthy(api, reg["AllocID"], expect=expect_checks):
                return f"http://{reg['Address']}:{reg['Port']}"
        if time.monotonic() >= deadline:
            what = "passed its checks" if mine else f"registered service {name!r}"
            raise UserError(f"{label}: no allocation of {job_id} {what} within {timeout_s:g} s",
                            hint=f"nomad job status {job_id} (and its allocations' logs) show why")
        if mine or new_index <= (index or 0):
            index = None
            time.sleep(0.2)  # registered, not healthy yet: poll the checks
        else:
            index = new_index


def _healthy(api: NomadAPI, alloc_id: str, *, expect: bool) -> bool:
    try:
        checks = api.alloc_checks(alloc_id)
    except NomadNotFound:  # a Nomad without the checks endpoint: registered is as good as it gets
        return True
    if not checks:
        return not expect  # checks that have not run yet report nothing
    return all(c.get("Status") == "success" for c in checks.values())

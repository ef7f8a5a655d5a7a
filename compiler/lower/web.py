"""Web endpoints → Nomad service jobs: a ``network`` port, a Nomad-native ``service`` with a health check.

Runs on the client. ``lower_web`` turns the batch job ``lower_function`` made
for a web function (``@modal.fastapi_endpoint``, ``asgi_app``, ``wsgi_app``,
``web_server``; on a function or on a method of an
``@app.cls`` class, which is a graph node of its own, tag ``Class.method``,
job ``<app>-Class-method``) into a long-running ``service`` job: no
dispatch payload, ``count`` = ``max(min_containers, 1)``, a dynamic port
``http`` (mapped to the container's port for docker), a ``service``
registered in Nomad's own catalog (``provider = "nomad"``) named after the
job, and a task that runs ``python -m agent_runtime --serve web`` (with the
function's ``timeout`` for each request). The pieces
(``listening_group``, ``HTTP_PORT_LABEL``) are shared with other listening
allocations.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import UserError
from ..graph import AppGraph, FunctionNode
from ..ir import CODE_DIR, Check, Driver, FunctionJob, Group, JobType, Port, Restart, Service
from . import resources as res
from .images import lower_image
from .job import BuildOptions

HTTP_PORT_LABEL = "http"
CONTAINER_PORT = 8000  # what the runtime listens on inside a docker container (NOMAD_PORT_http)
HEALTH_PATH = "/_modalc/health"  # answered by the runtime itself, never by user code
CHECK_INTERVAL_S = 10
CHECK_TIMEOUT_S = 2
WEB_TYPES = ("fastapi_endpoint", "asgi_app", "wsgi_app", "web_server", "server")
OWN_PORT_TYPES = ("web_server", "server")  # the user's code listens on its own port (server: @app.server)


def _check_class_method(node: FunctionNode) -> None:
    """A class's web method is served by one instance built with the parameters' defaults, as Modal does."""
    if node.kind != "method":
        return
    required = [name for name, spec in getattr(node.obj, "parameters", {}).items() if spec.required]
    if required:
        raise UserError(f"{node.tag}: a class with web endpoints is built with its parameters' defaults, but "
                        f"{required[0]!r} has none", location=node.location,
                        hint=f"give it a default (`{required[0]}: str = modal.parameter(default=...)`), or move "
                        "the endpoint to a class without required parameters")


def _min_containers(node: FunctionNode) -> int:
    value = node.options.get("min_containers")
    if value is None:
        value = node.options.get("keep_warm")
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"min_containers={value!r} must be a non-negative integer", location=node.location)
    return value


def _web_settings(node: FunctionNode) -> dict[str, Any]:
    web = dict(node.web or {})
    if web.get("type") not in WEB_TYPES:
        raise UserError(f"{node.tag}: unknown web endpoint type {web.get('type')!r}", location=node.location)
    if web["type"] == "fastapi_endpoint":
        method = web.get("method") or "GET"
        if not isinstance(method, str) or method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD",
                                                                  "OPTIONS"):
            raise UserError(f"method={method!r} is not an HTTP method", location=node.location)
    if web["type"] in OWN_PORT_TYPES:
        port = web.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise UserError(f"port={port!r} must be a TCP port (1-65535)", location=node.location)
        timeout = web.get("startup_timeout", 5.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise UserError(f"startup_timeout={timeout!r} must be a positive number of seconds",
                            location=node.location)
    label = web.get("label")
    if label is not None and not isinstance(label, str):
        raise UserError(f"label={label!r} must be a string", location=node.location)
    return web


def service_check(web_type: str) -> Check:
    """How Nomad checks the endpoint: the runtime's health path, or (web_server) that the port accepts."""
    if web_type in OWN_PORT_TYPES:
        # The user's server answers every path itself; a TCP check runs no user request handler.
        return Check(type="tcp", path=None, interval_s=CHECK_INTERVAL_S, timeout_s=CHECK_TIMEOUT_S)
    return Check(type="http", path=HEALTH_PATH, interval_s=CHECK_INTERVAL_S, timeout_s=CHECK_TIMEOUT_S)


def listening_group(group: Group, *, count: int, port: Port, service: Service) -> Group:
    """A batch group made long-running: restarted in place (with Nomad's delay), rescheduled by Nomad's
    service defaults, with one port and one service."""
    return dataclasses.replace(group, count=count, restart=Restart(attempts=3, mode="delay"), reschedule=None,
                               network_ports=(port,), services=(service,))


def lower_web(compiled: FunctionJob, node: FunctionNode, graph: AppGraph, opts: BuildOptions) -> FunctionJob:
    """The service job of a web function or class method (``compiled`` is what ``lower_function`` made of it)."""
    _check_class_method(node)
    web = _web_settings(node)
    job = compiled.job
    group = job.groups[0]
    task = group.tasks[0]
    image_ref, build = task.config.image, compiled.image
    if opts.driver is Driver.DOCKER:
        image_ref, build = lower_image(node.image, registry=opts.image_registry, default_python=opts.default_python,
                                       location=node.location, sources=graph.sources, web=True)
    timeout = res.timeout_s(node.options.get("timeout"), node.location)  # per request (ASGI/WSGI endpoints)
    args = ("-m", "agent_runtime", "--serve", "web", "--code", f"${{NOMAD_TASK_DIR}}/{CODE_DIR}",
            "--module", node.module, "--qualname", node.qualname, "--port", f"${{NOMAD_PORT_{HTTP_PORT_LABEL}}}",
            "--timeout", str(timeout))
    # docker maps a group port into the container only when the task's config lists its label.
    ports = (HTTP_PORT_LABEL,) if opts.driver is Driver.DOCKER else ()
    config = dataclasses.replace(task.config, image=image_ref, args=args, ports=ports)
    task = dataclasses.replace(task, config=config, dispatch_payload_file=None)
    # docker: Nomad maps a dynamic host port to the container's port (web_server: the user's own port,
    # so no proxy is needed); raw_exec: the task listens on the dynamic port itself.
    to = None
    if opts.driver is Driver.DOCKER:
        to = int(web["port"]) if web["type"] in OWN_PORT_TYPES else CONTAINER_PORT
    tags = ["modalc", f"modalc-app={graph.app_name}", f"modalc-function={node.tag}", f"modalc-web={web['type']}"]
    if web.get("label"):
        tags.append(f"label={web['label']}")
    service = Service(name=job.id, port=HTTP_PORT_LABEL, provider="nomad", tags=tuple(tags),
                      checks=(service_check(web["type"]),))
    group = listening_group(dataclasses.replace(group, tasks=(task,)), count=max(_min_containers(node), 1),
                            port=Port(label=HTTP_PORT_LABEL, to=to), service=service)
    meta = tuple(sorted({**dict(job.meta), "modalc_web": web["type"]}.items()))
    job = dataclasses.replace(job, type=JobType.SERVICE, periodic=None, parameterized=None, groups=(group,),
                              meta=meta)
    return dataclasses.replace(compiled, job=job, image=build, is_generator=False, input_groups=(), batch_waits=())

"""``python -m agent_runtime --serve web``: serve one web function's endpoint on ``--port``.

Runs inside a web function's service allocation (and in the local backend's
and ``modalc serve``'s processes). Imports the user's module with ``modal``
bound to the compat SDK, reads the function's web decorator (recorded on
``Function.web``), and serves:

* ``@modal.fastapi_endpoint(method=, docs=)``: a FastAPI app with the function as the route ``/``
  (query parameters and JSON bodies as FastAPI binds them; ``/docs`` only with ``docs=True``);
* ``@modal.asgi_app()``: the ASGI app the function returns;
* ``@modal.wsgi_app()``: the WSGI app the function returns, through uvicorn's WSGI adapter;
* ``@modal.web_server(port)``: runs the function (it starts a server on ``port``), waits up to
  ``startup_timeout`` for the port, then relays ``--port`` to it (when the two differ: raw_exec, local)
  or just stays up (docker maps the port straight in);
* an ``@app.server(port=)`` class (``--qualname Class``): one instance, whose ``@modal.enter()`` methods
  start the server, then as ``web_server``; its ``@modal.exit()`` methods run when it stops.

The function is ``--qualname``; for ``Class.method`` (a web method of an ``@app.cls`` class) one
instance is built with the parameters' defaults and its ``@modal.enter()`` methods run before serving,
its ``@modal.exit()`` methods after the server stops.

The first three are served by uvicorn with ``HEALTH_PATH`` answered by the runtime (``listen.py``),
each request limited to the function's ``timeout`` (504 after it).
Exit codes: 0 after SIGTERM/SIGINT, 1 when user code fails (import, the app factory, the server not
coming up), 3 for a function that is not a web endpoint.
"""

from __future__ import annotations

import importlib
import os
import sys

from .exitcodes import INFRA_ERROR, USER_ERROR

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .args import Options


def load_function(opts: Options, qualname: str | None = None) -> Any:
    """Import the user's module (modal bound to the compat SDK) and return the object at ``qualname``
    (default ``opts.qualname``)."""
    os.environ["MODALC_IN_CONTAINER"] = "1"
    code = os.path.abspath(opts.code_dir)
    if code not in sys.path:
        sys.path.insert(0, code)
    from .sdk.binding import bind_modal

    bind_modal()
    target: Any = importlib.import_module(opts.module)
    for part in (qualname or opts.qualname).split("."):
        target = getattr(target, part)
    return target


def fastapi_app(f: Any, web: dict[str, Any]) -> Any:
    from fastapi import FastAPI

    docs = bool(web.get("docs"))
    app = FastAPI(docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None,
                  openapi_url="/openapi.json" if docs else None)
    app.add_api_route("/", f, methods=[str(web.get("method") or "GET").upper()])
    return app


def asgi_for(web: dict[str, Any], f: Any) -> Any:
    """The ASGI app that serves a fastapi_endpoint, asgi_app or wsgi_app function."""
    kind = web["type"]
    if kind == "fastapi_endpoint":
        return fastapi_app(f, web)
    app = f()
    if kind == "wsgi_app":
        from uvicorn.middleware.wsgi import WSGIMiddleware  # type: ignore[attr-defined]

        return WSGIMiddleware(app)
    return app


def serve_web_server(f: Any, web: dict[str, Any], listen_port: int) -> int:
    from . import listen

    port = int(web["port"])
    try:
        f()  # starts the user's server (a subprocess or a thread) and returns
    except BaseException:
        import traceback

        traceback.print_exc()
        return USER_ERROR
    timeout = float(web.get("startup_timeout") or 5.0)
    if not listen.wait_for_port(port, timeout):
        sys.stderr.write(f"modalc: the web server did not accept connections on port {port} within "
                         f"{timeout:g} s (startup_timeout)\n")
        return USER_ERROR
    sys.stderr.write(f"modalc: web server is up on port {port}\n")
    if listen_port == port:
        return listen.watch(port)
    return listen.relay(listen_port, port)


class Endpoint:
    """What ``--qualname`` names: the web settings, the callable, and what to run at shutdown."""

    def __init__(self, web: Any, raw: Any, exit_methods: list[Any] | None = None):
        self.web = web
        self.raw = raw
        self.exit_methods = exit_methods or []

    def shutdown(self) -> None:
        """The class's ``@modal.exit()`` methods (errors printed, never raised)."""
        for method in self.exit_methods:
            try:
                method()
            except BaseException:
                import traceback

                traceback.print_exc()


def server_endpoint(server: Any) -> Endpoint:
    """An ``@app.server`` class: one instance, its ``@modal.enter()`` methods run here (they start the
    user's server); serving then waits for its port as a ``web_server`` does."""
    user_cls = server.user_cls
    instance = object.__new__(user_cls)
    for name in server.lifecycle("enter"):
        getattr(instance, name)()
    exits = [getattr(instance, name) for name in server.lifecycle("exit")]
    return Endpoint(server.web, lambda: None, exits)


def load_endpoint(opts: Options) -> Endpoint:
    """A function's endpoint, or (``Class.method``) a method of the class's instance built with its
    parameters' defaults, its ``@modal.enter()`` methods run once here, before serving."""
    from .sdk.cls import Cls

    if "." not in opts.qualname:
        server = load_function(opts)
        from .sdk.server import Server

        if isinstance(server, Server):  # @app.server
            return server_endpoint(server)
        return Endpoint(getattr(server, "web", None), getattr(server, "raw_f", None))
    owner_name, _, method = opts.qualname.rpartition(".")
    if owner_name:
        owner = load_function(opts, owner_name)
        if isinstance(owner, Cls):
            pf = owner.methods.get(method)
            if pf is None:
                return Endpoint(None, None)
            instance = owner()._local_instance()  # the parameters' defaults; runs the enter methods
            exits = [getattr(instance, name) for name in owner.lifecycle("exit")]
            return Endpoint(pf.flags.get("web"), pf.raw_f.__get__(instance, owner.user_cls), exits)
    fn = load_function(opts)
    return Endpoint(getattr(fn, "web", None), getattr(fn, "raw_f", None))


def serve(opts: Options) -> int:
    from . import listen

    assert opts.port is not None
    try:
        endpoint = load_endpoint(opts)
    except BaseException:
        import traceback

        traceback.print_exc()
        return USER_ERROR
    web, raw = endpoint.web, endpoint.raw
    if not isinstance(web, dict) or raw is None:
        sys.stderr.write(f"modalc: {opts.module}.{opts.qualname} is not a web endpoint\n")
        return INFRA_ERROR
    try:
        if web["type"] in ("web_server", "server"):
            return serve_web_server(raw, web, opts.port)
        try:
            app = asgi_for(web, raw)
        except BaseException:
            import traceback

            traceback.print_exc()
            return USER_ERROR
        return listen.run_asgi(listen.with_timeout(app, opts.timeout_s), opts.port)
    finally:
        endpoint.shutdown()

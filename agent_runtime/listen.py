"""Listening allocations: where to bind, the health path, uvicorn, waiting for a port, a TCP relay.

Runs inside allocations (and in the local backend's processes), only for
``--serve``; never on the path of a plain call. Shared by every allocation
that listens on the group's ``http`` port (web endpoints; warm workers).
``uvicorn`` is imported only by ``run_asgi``.

* ``bind_host()``: ``MODALC_BIND_HOST``, else ``0.0.0.0`` (a docker task must accept
  connections from Nomad's port mapping; the local backend sets ``127.0.0.1``).
* ``with_health(app)``: an ASGI app that answers ``GET HEALTH_PATH`` itself (200 ``ok``) and
  passes everything else (lifespan included) to ``app``: Nomad's check never runs user code.
* ``with_timeout(app, seconds)``: each HTTP request gets the function's ``timeout``: one that has not
  started its response by then is answered ``504`` (one that has is cut off); the handler is
  cancelled (a sync handler's thread runs on: threads cannot be stopped).
* ``run_asgi(app, port)``: serves an ASGI app with uvicorn until SIGTERM/SIGINT (graceful).
* ``wait_for_port(port, timeout_s)``: until something accepts connections on 127.0.0.1:port.
* ``relay(listen_port, target_port)``: forwards every TCP connection (bytes only, so websockets and
  streaming work) until SIGTERM/SIGINT; ``watch(port)`` only stays up. Both exit 1 when the target
  stops accepting connections, so that Nomad restarts the allocation.
"""

from __future__ import annotations

import os
import socket
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Any

    Scope = dict[str, Any]
    ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

HEALTH_PATH = "/_modalc/health"  # compiler/lower/web.py emits it in the service's check


def bind_host() -> str:
    return os.environ.get("MODALC_BIND_HOST") or "0.0.0.0"


def with_health(app: ASGIApp) -> ASGIApp:
    async def health_first(scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and scope.get("path") == HEALTH_PATH:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        await app(scope, receive, send)

    return health_first


def with_timeout(app: ASGIApp, seconds: float) -> ASGIApp:
    import asyncio

    async def timed(scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or seconds <= 0:
            await app(scope, receive, send)
            return
        started = False

        async def send_(message: Any) -> None:
            nonlocal started
            started = started or message.get("type") == "http.response.start"
            await send(message)

        try:
            await asyncio.wait_for(app(scope, receive, send_), seconds)
        except TimeoutError:
            print(f"modalc: {scope.get('method')} {scope.get('path')} timed out after {seconds:g} s "
                  "(the function's timeout)", flush=True)
            if started:
                raise  # mid-response: the server closes the connection
            body = f"request timed out after {seconds:g} s (the function's timeout)\n".encode()
            await send({"type": "http.response.start", "status": 504,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

    return timed


def run_asgi(app: ASGIApp, port: int) -> int:
    import uvicorn

    config = uvicorn.Config(with_health(app), host=bind_host(), port=port, lifespan="auto", log_level="info",
                            timeout_graceful_shutdown=5, server_header=False)
    server = uvicorn.Server(config)
    import logging

    class _NotHealth(logging.Filter):  # Nomad's check every few seconds would drown the access log
        def filter(self, record: logging.LogRecord) -> bool:
            return HEALTH_PATH not in record.getMessage()

    logging.getLogger("uvicorn.access").addFilter(_NotHealth())
    server.run()
    return 0 if server.started else 1


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout_s: float, alive: Callable[[], bool] | None = None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_open(port):
            return True
        if alive is not None and not alive():
            return False
        time.sleep(0.05)
    return port_open(port)


def relay(listen_port: int, target_port: int, *, check_every_s: float = 5.0, failures_allowed: int = 3) -> int:
    """Forward TCP connections from ``bind_host():listen_port`` to ``127.0.0.1:target_port``.

    Exits 1 when the target stops accepting connections (``failures_allowed`` checks in a row), so that
    Nomad restarts the allocation; 0 on SIGTERM/SIGINT."""
    import asyncio
    import signal

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = await asyncio.start_server(handle, bind_host(), listen_port, reuse_address=True)
        failures = 0
        code = 0
        async with server:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), check_every_s)
                except TimeoutError:
                    ok = await loop.run_in_executor(None, port_open, target_port)
                    failures = 0 if ok else failures + 1
                    if failures >= failures_allowed:
                        code = 1
                        break
        return code

    return asyncio.run(main())


def watch(port: int, *, check_every_s: float = 5.0, failures_allowed: int = 3) -> int:
    """Block until SIGTERM/SIGINT (0), or until ``port`` stops accepting connections (1): a web_server
    whose port Nomad maps straight into the container needs no relay, only a process that stays up."""
    import signal

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    failures = 0
    try:
        while failures < failures_allowed:
            time.sleep(check_every_s)
            failures = 0 if port_open(port) else failures + 1
    except KeyboardInterrupt:
        return 0
    return 1

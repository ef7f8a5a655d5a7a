"""The run's call broker: calls made inside local allocations come back here and run as allocations.

Runs on the client, for the local backend (on Nomad an allocation dispatches through the Task API itself,
``agent_runtime/nested/nomad_channel.py``). ``CallBroker`` serves HTTP on 127.0.0.1 for the lifetime of a
run; every allocation the run starts gets its address and a per-run token in ``MODALC_CALLS_URL`` /
``MODALC_CALLS_TOKEN`` (the environment only: never a spec, a log line or an error). A request without the
token is refused before its body is read. The broker never unpickles anything: it hands a call's payload to
the backend as a dispatch of the function's job, exactly as a call from the entrypoint is, and hands the
allocation's result envelope back to the caller (``agent_runtime/nested/broker_channel.py``):

    POST /v1/dispatch?app=A&function=F[&keep=1]  body: call envelope   -> {"id": dispatch ID}
    GET  /v1/wait/<id>?wait=S        -> 200 result envelope (X-Modalc-Failure: why there is none), or 204
    GET  /v1/stream/<id>?offset=N    -> a generator's stream bytes from N (X-Modalc-Done: 1 when ended)
    POST /v1/cancel/<id>
    GET  /v1/function?app=A&function=F  -> {"concurrency": its max_containers}
    GET  /v1/web_url?app=A&function=F   -> {"url": the endpoint's address, or null}

Errors are ``{"error": message}`` with 400 (bad call), 401 (token), 404 (unknown call or function) or 410
(the run has ended). Results of ``keep=1`` dispatches (spawned calls, which ``FunctionCall.from_id`` may
read again) stay until the run ends; the others are dropped once read.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from agent_runtime.nested import CALLS_TOKEN_ENV, CALLS_URL_ENV
from agent_runtime.sdk.functions import Target

from .backends.base import AllocResult, Backend
from .errors import ModalcError
from .ir import FunctionJob

MAX_WAIT_S = 30.0  # a wait request is answered 204 after this, and asked again (bounded connections)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class CallBroker:
    """Serves the nested calls of one run on the local backend."""

    def __init__(self, backend: Backend, resolve: Callable[[Target], FunctionJob],
                 concurrency: Callable[[FunctionJob], int], web_url: Callable[[Target], str | None]) -> None:
        self.backend = backend
        self._resolve = resolve
        self._concurrency = concurrency
        self._web_url = web_url
        self.token = secrets.token_urlsafe(32)
        # dispatch ID -> [its Dispatch, the wait for its end (started by the first /v1/wait: a generator's
        # stream is read before, and the backend's wait removes the allocation's files), keep]
        self._calls: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        self._waiters = ThreadPoolExecutor(max_workers=256, thread_name_prefix="modalc-broker-wait")
        self._closed = False
        broker = self

        class Handler(_Handler):
            pass

        Handler.broker = broker
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="modalc-call-broker", daemon=True)
        self._thread.start()

    @property
    def env(self) -> dict[str, str]:
        """What every allocation of the run gets in its environment."""
        port = self._server.server_address[1]
        return {CALLS_URL_ENV: f"http://127.0.0.1:{port}", CALLS_TOKEN_ENV: self.token}

    def close(self) -> None:
        """Refuse further calls (the run is ending); waits in progress end as their allocations are stopped."""
        with self._lock:
            self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._waiters.shutdown(wait=False, cancel_futures=True)

    # -- operations -------------------------------------------------------------
    def _function(self, query: dict[str, list[str]]) -> tuple[Target, FunctionJob]:
        app = (query.get("app") or [""])[0] or None
        tag = (query.get("function") or [""])[0]
        if not tag:
            raise _Refused(400, "the call names no function")
        target = Target(app_name=app, tag=tag)
        try:
            return target, self._resolve(target)
        except ModalcError as exc:
            raise _Refused(404, exc.message) from None
        except Exception as exc:  # ExecutionError and the like from the invoker: the caller's error
            raise _Refused(404, str(exc)) from None

    def dispatch(self, query: dict[str, list[str]], payload: bytes) -> str:
        _, fn = self._function(query)
        with self._lock:
            if self._closed:
                raise _Refused(410, "the app run has ended; no more calls can be made")
        try:
            dispatch = self.backend.dispatch(fn, payload, call_id=uuid.uuid4().hex[:12])
        except ModalcError as exc:
            raise _Refused(400, exc.message) from None
        with self._lock:
            self._calls[dispatch.dispatch_id] = [dispatch, None, (query.get("keep") or [""])[0] == "1"]
        return dispatch.dispatch_id

    def _call(self, handle: str) -> list[Any]:
        with self._lock:
            entry = self._calls.get(handle)
        if entry is None:
            raise _Refused(404, f"no function call fc-{handle} in this run")
        return entry

    def wait(self, handle: str, wait_s: float) -> AllocResult | None:
        entry = self._call(handle)
        with self._lock:
            if entry[1] is None:
                entry[1] = self._waiters.submit(self.backend.wait, entry[0])
            future: Future[AllocResult | None] = entry[1]
            keep = entry[2]
        try:
            result = future.result(timeout=min(wait_s, MAX_WAIT_S))
        except TimeoutError:
            return None
        assert result is not None
        if not keep:
            with self._lock:
                self._calls.pop(handle, None)
        return result

    def read_stream(self, handle: str, offset: int) -> tuple[bytes, bool]:
        dispatch, future, _ = self._call(handle)
        if future is not None and future.done():
            return b"", True
        try:
            return self.backend.read_stream(dispatch, offset)
        except KeyError:  # the allocation ended and was cleaned up meanwhile
            return b"", True

    def cancel(self, handle: str) -> None:
        dispatch, _, _ = self._call(handle)
        self.backend.cancel(dispatch)

    def function_info(self, query: dict[str, list[str]]) -> dict[str, Any]:
        _, fn = self._function(query)
        return {"concurrency": self._concurrency(fn)}

    def web_url(self, query: dict[str, list[str]]) -> dict[str, Any]:
        target, _ = self._function(query)
        try:
            return {"url": self._web_url(target)}
        except ModalcError as exc:
            raise _Refused(400, exc.message) from None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    broker: CallBroker

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._answer(status, json.dumps(obj).encode(), {"Content-Type": "application/json"})

    def _handle(self) -> None:
        given = self.headers.get("Authorization") or ""
        if not hmac.compare_digest(given.encode(), f"Bearer {self.broker.token}".encode()):
            self.close_connection = True  # the body is not read: this connection cannot be reused
            self._json(401, {"error": "the call channel refused the request: no valid token"})
            return
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = parts.path
        b = self.broker
        try:
            if self.command == "POST" and path == "/v1/dispatch":
                self._json(200, {"id": b.dispatch(query, body)})
            elif self.command == "GET" and path.startswith("/v1/wait/"):
                result = b.wait(path[len("/v1/wait/"):], float((query.get("wait") or ["30"])[0]))
                if result is None:
                    self._answer(204)
                else:
                    self._answer(200, result.result or b"", {
                        "X-Modalc-Result": "1" if result.result is not None else "0",
                        "X-Modalc-Failure": quote(result.failure or "")})
            elif self.command == "GET" and path.startswith("/v1/stream/"):
                data, done = b.read_stream(path[len("/v1/stream/"):], int((query.get("offset") or ["0"])[0]))
                self._answer(200, data, {"X-Modalc-Done": "1" if done else "0"})
            elif self.command == "POST" and path.startswith("/v1/cancel/"):
                b.cancel(path[len("/v1/cancel/"):])
                self._json(200, {})
            elif self.command == "GET" and path == "/v1/function":
                self._json(200, b.function_info(query))
            elif self.command == "GET" and path == "/v1/web_url":
                self._json(200, b.web_url(query))
            else:
                self._json(404, {"error": f"no such call-channel endpoint: {self.command} {path}"})
        except _Refused as exc:
            self._json(exc.status, {"error": str(exc)})
        except (ValueError, KeyError) as exc:
            self._json(400, {"error": f"bad request: {exc}"})

    do_GET = do_POST = _handle

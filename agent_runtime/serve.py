"""A warm worker: serves calls over an authenticated HTTP channel until it has been idle long enough.

Runs inside allocations, in the shim's process, when the dispatched envelope is a
"serve" envelope (``compiler/warm_pool.py`` sends it); imported only then, so
``http.server`` and ``hmac`` stay off the start-up path of a plain call. The
user's module is imported once and a class's ``@modal.enter()`` methods run once
(with the parameters the serve envelope carries); then, on
``${NOMAD_PORT_rpc}`` (on ``MODALC_BIND_HOST``, else every interface):

* ``GET /healthz`` answers ``ok`` (Nomad's service check; reads nothing);
* ``POST /call`` with ``Authorization: Bearer <token>`` and a call envelope
  body answers a result envelope (its header's ``retryable`` says, per input,
  whether a failure may be retried). The token is the run's
  ``MODALC_WARM_TOKEN`` (rendered from a Nomad Variable); a request without it
  gets 401 before a byte of its body is read, so no unauthenticated pickle is
  ever loaded. At most ``max_inputs`` calls run at once (``@modal.concurrent``).
  A call envelope whose header has ``stream: true`` (a generator's one input)
  is answered chunked, as its values come: one frame per value
  (``protocol.frame``), then ``END_OF_FRAMES`` and the result envelope.

A call may hold several inputs (a ``.map`` chunk); they run one after another
(a ``@modal.batched`` method's in batches), each input (batch) with the
function's timeout. When one overruns, its stacks go to stderr, the request is
answered with the outcomes so far and a ``FunctionTimeoutError`` for the
overrun input (each input of the batch), without the inputs after it (they
never started), and the worker exits (its thread cannot be stopped; other
calls in flight see the connection close and the client retries them).
Retries are the client's (one layer). The worker exits after ``scaledown_ms``
without a call (never when 0) or on SIGTERM, running the class's
``@modal.exit()`` methods, and writes an empty result.
"""

from __future__ import annotations

import copy
import hmac
import os
import pickle
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import channel, exitcodes, outcomes, worker
from .protocol import END_OF_FRAMES, RESULT_FILE, Call, encode, frame, read_header, write_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .args import Options

TOKEN_ENV = "MODALC_WARM_TOKEN"
PORT_LABEL = "rpc"
_STATUS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 413: "Payload Too Large"}


def _chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked HTTP/1.1 body (empty: the last chunk)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class _Request:
    """A call in flight: the deadline of the input it runs, where to answer, the outcomes so far."""

    __slots__ = ("_answered", "_wlock", "deadline", "handler", "parts", "running", "streaming")

    def __init__(self, deadline: float, handler: BaseHTTPRequestHandler, *, streaming: bool = False):
        self.deadline = deadline
        self.handler = handler
        self.parts: list[tuple[bool, bool, str, bytes]] = []
        self.running = 1  # inputs of the call running now (a @modal.batched batch: several)
        self.streaming = streaming  # a generator's call: its values go out as they come (chunked)
        self._wlock = threading.Lock()
        self._answered = False
        if streaming:
            handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n")

    def emit(self, value: Any) -> None:
        """One value the generator yielded, as one frame in its own chunk."""
        data = frame(value)  # a value that cannot be pickled fails here, the stream intact
        with self._wlock:
            if self._answered:
                raise BrokenPipeError("the call was already answered (timed out)")
            self.handler.wfile.write(_chunk(data))

    def answer(self, result: bytes, *, close: bool = False) -> None:
        """The result envelope, once: the whole response, or the end of a stream (``END_OF_FRAMES``, the
        envelope, the last chunk)."""
        with self._wlock:
            if self._answered:
                return
            self._answered = True
            if self.streaming:
                self.handler.wfile.write(_chunk(END_OF_FRAMES + result) + _chunk(b""))  # the empty chunk ends it
            else:
                self.handler.wfile.write(_response(200, result, close=close))


class _State:
    """The imported function, the calls in flight, and when the last one ended."""

    def __init__(self, opts: Options, setup: worker._Setup, max_inputs: int):
        self.opts = opts
        self.setup = setup
        self.slots = threading.BoundedSemaphore(max_inputs)
        self.lock = threading.Lock()
        self.inflight: dict[int, _Request] = {}
        self.last = time.monotonic()
        self.stop = threading.Event()

    def idle_s(self) -> float:
        with self.lock:
            return 0.0 if self.inflight else time.monotonic() - self.last

    def run(self, call: Call, request: _Request) -> list[tuple[bool, bool, str, bytes]]:
        """Run ``call``'s inputs one after another, each with the function's timeout, into ``request.parts``."""
        setup = self.setup
        req = copy.copy(setup)  # shares the module, the instance and its enter state; its own call
        req.call = call
        if call.params != setup.call.params:
            raise ValueError("this worker serves other class parameters than the call's")
        if hasattr(setup, "_class") and call.method != setup._method:
            if call.method not in setup._class.methods:
                raise AttributeError(f"{self.opts.qualname} has no @modal.method() named {call.method!r}")
            req._method = call.method
            req.fn = req._bound_method
            batched = setup._class.methods[call.method].flags.get("batched")
            req.mode = "batched" if batched else ""
            req.group = max(1, int((batched or {}).get("max_batch_size") or 1))
        # @modal.batched: the inputs in batches (each batch one call with the timeout); else one by one.
        step = req.group if req.mode == "batched" else 1
        for start in range(0, len(call.inputs), step):
            indices = list(range(start, min(start + step, len(call.inputs))))
            with self.lock:
                request.deadline = time.monotonic() + self.opts.timeout_s
                request.running = len(indices)
            if step > 1:
                packed = worker._run_batch(req, indices, 1)
            else:
                emit = request.emit if request.streaming else None
                packed = [worker._run_one(req, self.opts, start, 1, emit=emit)]
            parts = [channel.unpack_outcome(bytearray(p)) for p in packed]
            with self.lock:
                request.parts.extend(parts)
        return request.parts


def _response(code: int, body: bytes, *, close: bool = False) -> bytes:
    head = (f"HTTP/1.1 {code} {_STATUS.get(code, 'Error')}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n")
    return head.encode() + body


def _result(parts: list[tuple[bool, bool, str, bytes]]) -> bytes:
    failed = [p for p in parts if not p[0]]
    code = exitcodes.USER_ERROR if failed else exitcodes.OK
    error = f"{len(failed)} of {len(parts)} inputs failed; first: {failed[0][2]}" if failed else ""
    retryable = "".join("1" if p[1] else "0" for p in parts)
    return encode("result", outcomes.result_body([p[3] for p in parts]), exit_code=code, error=error,
                  inputs=len(parts), retryable=retryable)


def _handler(state: _State, token: bytes) -> type[BaseHTTPRequestHandler]:
    expected = b"Bearer " + token

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # answers go out in one write: no Nagle/delayed-ACK stall

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, data: bytes) -> None:
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(_response(200, b"ok\n"))
            else:
                self._send(_response(404, b"not found\n", close=True))
                self.close_connection = True

        def do_POST(self) -> None:
            given = self.headers.get("Authorization", "").encode("latin-1", "replace")
            if not hmac.compare_digest(given, expected):
                # Refused before the body is read: an unauthenticated pickle is never loaded.
                self._send(_response(401, b"unauthorized\n", close=True))
                self.close_connection = True
                return
            if self.path != "/call":
                self._send(_response(404, b"not found\n", close=True))
                self.close_connection = True
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                header, offset = read_header(body)
                if header.get("kind") != "call":
                    raise ValueError(f"a {header.get('kind')!r} envelope is not a call")
                call = pickle.loads(body[offset:])
            except Exception as exc:
                self._send(_response(400, f"bad call: {exc}\n".encode(), close=True))
                self.close_connection = True
                return
            key = id(self)
            with state.slots:
                request = _Request(time.monotonic() + state.opts.timeout_s, self,
                                   streaming=header.get("stream") is True and len(call.inputs) == 1)
                with state.lock:
                    state.inflight[key] = request
                try:
                    parts = state.run(call, request)
                except Exception as exc:
                    text = f"{outcomes.type_name(exc)}: {exc}"
                    parts = [(False, False, text, outcomes.failure(exc))] * max(1, len(call.inputs))
                with state.lock:
                    mine = state.inflight.pop(key, None) is not None
                    state.last = time.monotonic()
            if mine:  # else the watchdog has answered (a timeout) and the worker is exiting
                request.answer(_result(parts))

    return Handler


def _watchdog(state: _State) -> None:
    """Answer an overrun call, then end the worker (its thread cannot be stopped).

    The answer holds the outcomes of the inputs that ran before and a timeout for the one that overran
    (each input of an overrun batch); the inputs after it are left out (the client sends them again:
    they never started)."""
    while not state.stop.wait(0.05):
        now = time.monotonic()
        with state.lock:
            late = [(k, r) for k, r in state.inflight.items() if r.deadline < now]
            for k, _ in late:
                state.inflight.pop(k)
            answers = [(r, [*r.parts], r.running) for _, r in late]
        if not late:
            continue
        import faulthandler

        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        text = f"{state.opts.module}.{state.opts.qualname} timed out after {state.opts.timeout_s:g} seconds"
        outcome = outcomes.runtime_failure("FunctionTimeoutError", text, timed_out=True)
        for request, parts, running in answers:
            try:
                request.answer(_result([*parts, *[(False, True, text, outcome)] * running]), close=True)
            except OSError:
                pass
        sys.stderr.flush()
        os._exit(exitcodes.TIMEOUT)


def _write_result(opts: Options, parts: list[tuple[bool, bool, str, bytes]], code: int) -> None:
    error = parts[0][2] if parts else ""
    os.makedirs(opts.result_dir, exist_ok=True)
    write_atomic(os.path.join(opts.result_dir, RESULT_FILE),
                 encode("result", outcomes.result_body([p[3] for p in parts]), exit_code=code, error=error,
                        inputs=len(parts)))


def run(opts: Options, header: dict[str, object], body: bytes) -> int:
    """Serve calls until idle for ``scaledown_ms`` (or stopped); the exit code."""
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        text = f"no {TOKEN_ENV} in the environment: the run's token Variable was not rendered"
        _write_result(opts, [(False, False, text, outcomes.runtime_failure("ExecutionError", text))],
                      exitcodes.INFRA_ERROR)
        print(f"agent_runtime: {text}", file=sys.stderr, flush=True)
        return exitcodes.INFRA_ERROR
    try:
        setup = worker._Setup(opts, body)
        setup.enter()
    except BaseException as exc:
        text = f"{outcomes.type_name(exc)}: {exc}"
        _write_result(opts, [(False, False, text, outcomes.failure(exc))], exitcodes.INFRA_ERROR)
        print(f"agent_runtime: warm worker could not start: {text}", file=sys.stderr, flush=True)
        return exitcodes.INFRA_ERROR
    state = _State(opts, setup, max(1, int(str(header.get("max_inputs") or 1))))
    # MODALC_BIND_HOST: the convention of listening allocations (agent_runtime/listen.py; local: 127.0.0.1).
    server = ThreadingHTTPServer((os.environ.get("MODALC_BIND_HOST") or "0.0.0.0",
                                  int(os.environ.get(f"NOMAD_PORT_{PORT_LABEL}") or 0)),
                                 _handler(state, token.encode()))
    signal.signal(signal.SIGTERM, lambda signum, frame: state.stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: state.stop.set())
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    threading.Thread(target=_watchdog, args=(state,), daemon=True).start()
    scaledown_s = int(str(header.get("scaledown_ms") or 0)) / 1000
    while not state.stop.wait(min(0.25, scaledown_s / 4) if scaledown_s else 1.0):
        if scaledown_s and state.idle_s() >= scaledown_s:
            break
    state.stop.set()
    server.shutdown()
    server.server_close()
    setup.exit()
    _write_result(opts, [], exitcodes.OK)
    return exitcodes.OK

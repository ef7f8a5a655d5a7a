"""Warm worker pools: calls sent over HTTP to long-lived allocations of a function, scaled by the client.

Runs on the client; one ``WarmPool`` per function (and class parameters) of a
run, created by ``compiler.client.Invoker`` on the first call. A worker is an
ordinary dispatch of the function's job whose envelope is a "serve" envelope
(``agent_runtime/serve.py``): it imports the module once and serves
``POST /call`` on its ``rpc`` port until ``scaledown_window`` idle. The
backend says where it listens (``Backend.endpoint``: the local backend knows
its processes, the Nomad backend reads the service catalog) and renders the
run's token into it (``Backend.put_job_variable``).

Scaling: the first call starts a worker (``min_containers`` start at once and
never scale down during the run); a call takes a free slot of a ready worker
(``max_inputs`` slots each, ``@modal.concurrent``), and while calls wait and
the starting workers cannot take them all, one more worker is dispatched, up to
``max_containers``; ``buffer_containers`` idle workers are kept beyond the
busy ones. A worker close to its scaledown is no longer given calls, so it
exits idle. Failures: a worker that refuses connections is dropped and
replaced (the call is sent elsewhere, not counted as an attempt); a worker that
dies mid-call fails that attempt, and failed attempts are retried on any
worker by the function's retry policy (Modal's delays). Calls through the
channel have no payload limit. A call may hold several inputs (a ``.map``
chunk, ``compiler/client.py``): see ``WarmPool.run`` for how their timeouts
and a worker's death are accounted.

Deployed functions (``Function.from_name``, ``deployed=True``): the pool
adopts the running workers the backend finds (``Backend.warm_workers``: the
deploy's ``min_containers`` and idle-exiting workers other runs started) and
starts none at first; it adds workers (ordinary dispatches of the deployed job,
idle-exiting) as above, up to ``max_containers``. At the end of the run it
stops nothing: adopted workers are not the run's, and the ones it started exit
after ``scaledown_window`` idle like any other.
"""

from __future__ import annotations

import http.client
import pickle
import socket
import threading
import time
import uuid
from collections.abc import Generator
from typing import Any

from agent_runtime import protocol
from agent_runtime.args import retry_delay_s
from agent_runtime.protocol import Call, Outcome, ProtocolError
from agent_runtime.sdk.exception import ExecutionError

from .backends.base import AllocResult, Backend, Dispatch
from .ir import FunctionJob, Warm
from .lower.warm import CALL_PREFIX, pool_key

STARTUP_TIMEOUT_S = 600.0


class _Gone(Exception):
    """The worker could not be reached (``sent`` False: the call never started) or broke off mid-call."""

    def __init__(self, why: str, *, sent: bool):
        super().__init__(why)
        self.sent = sent


class _Worker:
    __slots__ = ("address", "conns", "dispatch", "ended", "inflight", "last_used", "pinned", "ready")

    def __init__(self, pinned: bool):
        self.pinned = pinned  # one of min_containers: never scales down during the run
        self.dispatch: Dispatch | None = None
        self.address: tuple[str, int] | None = None
        self.ready = False
        self.ended = False
        self.inflight = 0
        self.last_used = time.monotonic()
        self.conns: list[http.client.HTTPConnection] = []


def _connect(address: tuple[str, int]) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection(*address, timeout=None)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def _broke(exc: BaseException) -> _Gone:
    """The worker's connection broke off after the call was sent."""
    return _Gone(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, sent=True)


def _read_exactly(resp: http.client.HTTPResponse, n: int) -> bytes:
    data = resp.read(n)
    if len(data) != n:
        raise http.client.IncompleteRead(data, n - len(data))
    return data


def _close(worker: _Worker) -> None:
    while worker.conns:
        try:
            worker.conns.pop().close()
        except IndexError:
            break


class WarmPool:
    """The warm workers of one function (one set of class parameters) in one run."""

    def __init__(self, backend: Backend, fn: FunctionJob, token: str, *, method: str | None = None,
                 params: dict[str, Any] | None = None, deployed: bool = False):
        assert fn.warm is not None
        self.backend = backend
        self.fn = fn
        self.warm: Warm = fn.warm
        self.token = token
        self.method = method
        self.params = dict(params or {})
        self.key = pool_key(self.params)
        self.deployed = deployed
        self._workers: list[_Worker] = []
        self._cond = threading.Condition()
        self._waiting = 0
        self._closed = False
        self._failure: BaseException | None = None  # why the last worker could not start
        self.started = 0  # workers dispatched (tests and benchmarks read it)
        self.adopted = 0  # running workers of a deployed function found at the start
        with self._cond:
            if deployed:
                self._adopt()
            else:
                for _ in range(self.warm.min_containers):
                    self._start(pinned=True)

    def _adopt(self) -> None:
        """Take the deployed function's running workers (with the lock held): ready, not ours to stop."""
        for _, address, minimum in self.backend.warm_workers(self.fn, self.key):
            worker = _Worker(pinned=minimum)  # other runs' extra workers may scale down: not pinned
            worker.address, worker.ready = address, True
            self._workers.append(worker)
            self.adopted += 1

    # -- calls ------------------------------------------------------------------
    def run(self, call: Call) -> list[Outcome]:
        """The outcomes of ``call``'s inputs, each retried by the function's retry policy.

        A worker answers fewer outcomes than inputs when one of them timed out (it then exits): the inputs
        after it never started and are sent again, not counted as an attempt. A worker that dies during a
        request of several inputs leaves unknown which input killed it: each is then sent on its own."""
        n = len(call.inputs)
        results: list[Outcome | None] = [None] * n
        attempts = [1] * n
        todo = list(range(n))
        while todo:
            sub = Call(inputs=[call.inputs[i] for i in todo], method=call.method, params=call.params)
            worker = self._acquire()
            isolate = False
            try:
                outcomes, retryable = self._send(worker, protocol.encode("call", sub))
            except _Gone as gone:
                self._drop(worker)
                if not gone.sent:
                    continue  # never reached the worker: send it elsewhere, not an attempt
                isolate = len(todo) > 1
                outcomes, retryable = [self._died(str(gone), attempts[todo[0]])], [True]
            finally:
                self._release(worker)
            if isolate:  # a worker died during several inputs: find the culprit by sending each alone
                for i in todo:
                    (results[i],) = self.run(Call(inputs=[call.inputs[i]], method=call.method, params=call.params))
                break
            if not outcomes or len(outcomes) > len(todo):
                raise ExecutionError(f"{self.fn.tag}: the warm worker answered {len(outcomes)} outcomes "
                                     f"for {len(todo)} inputs")
            again = todo[len(outcomes):]  # after a timed-out input: never started
            delay = 0.0
            for i, outcome, retry in zip(todo[:len(outcomes)], outcomes, retryable, strict=True):
                outcome.attempts = attempts[i]
                results[i] = outcome
                if not outcome.ok and retry and attempts[i] <= self.warm.retries:
                    delay = max(delay, self._retry_delay_s(attempts[i]))
                    attempts[i] += 1
                    again.append(i)
            time.sleep(delay)
            todo = sorted(again)
        return [o for o in results if o is not None]

    def _retry_delay_s(self, retry: int) -> float:
        return retry_delay_s(retry, initial_s=self.warm.initial_delay_s, backoff=self.warm.backoff,
                             max_s=self.warm.max_delay_s)

    def _died(self, why: str, attempt: int) -> Outcome:
        text = f"{self.fn.tag}: the warm worker ended while running the call ({why}); see its log above"
        error = ExecutionError(text)
        return Outcome(ok=False, exc=error, exc_type="ExecutionError", exc_repr=text, attempts=attempt)

    def _open(self, worker: _Worker, payload: bytes
              ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send ``payload`` to ``worker``; the connection and the response, its head read, its body not."""
        assert worker.address is not None
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/octet-stream"}
        reused = bool(worker.conns)
        while True:
            conn = None
            if reused:
                try:
                    conn = worker.conns.pop()
                except IndexError:  # another call took it
                    reused = False
            if conn is None:
                try:
                    conn = _connect(worker.address)
                except OSError as exc:
                    raise _Gone(f"cannot connect: {exc}", sent=False) from None
            try:
                conn.request("POST", "/call", body=payload, headers=headers)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if reused:  # a kept-alive connection the worker had closed: try a fresh one
                    reused = False
                    continue
                raise _broke(exc) from None
            if resp.status != 200:
                data = resp.read()
                conn.close()
                raise ExecutionError(f"{self.fn.tag}: the warm worker answered {resp.status}: "
                                     f"{data[:200].decode('utf-8', 'replace').strip()}")
            return conn, resp

    def _send(self, worker: _Worker, payload: bytes) -> tuple[list[Outcome], list[bool]]:
        conn, resp = self._open(worker, payload)
        try:
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise _broke(exc) from None
        self._keep(worker, conn, resp)
        return self._decode(data)

    def _keep(self, worker: _Worker, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        """Keep the connection for the next call; a worker that closes it is exiting (after a timeout):
        it gets no more calls (it ends by itself, and ``_watch`` forgets it)."""
        if not resp.will_close:
            worker.conns.append(conn)
            return
        conn.close()
        with self._cond:
            if worker in self._workers:
                self._workers.remove(worker)
            self._cond.notify_all()

    def _decode(self, data: bytes) -> tuple[list[Outcome], list[bool]]:
        try:
            header, outcomes = protocol.decode(data)
        except ProtocolError as exc:
            raise ExecutionError(f"{self.fn.tag}: unreadable answer from the warm worker: {exc}") from None
        flags = str(header.get("retryable") or "")
        outcomes = protocol.as_outcomes(outcomes)
        return outcomes, [flags[i:i + 1] == "1" for i in range(len(outcomes))]

    def stream(self, call: Call) -> Generator[Any, None, Outcome]:
        """A generator call's values as the worker yields them; its generator returns the call's outcome.

        An attempt that fails before the first value is retried by the function's retry policy; once
        values have been yielded it is not (they would repeat)."""
        payload = protocol.encode("call", call, stream=True)
        attempt = 1
        while True:
            worker = self._acquire()
            yielded = 0
            outcome: Outcome | None = None
            try:
                conn, resp = self._open(worker, payload)
                try:
                    while True:
                        size = protocol.frame_size(_read_exactly(resp, protocol.FRAME_HEAD_SIZE))
                        if not size:
                            break
                        value = pickle.loads(_read_exactly(resp, size))
                        yielded += 1
                        yield value
                    outcomes, retryable = self._decode(resp.read())
                    self._keep(worker, conn, resp)
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    raise _broke(exc) from None
                except BaseException:  # the caller stopped early (GeneratorExit): the answer is unread
                    conn.close()
                    raise
                outcome, retry = outcomes[0], retryable[0]
            except _Gone as gone:
                self._drop(worker)
                if not gone.sent:
                    continue  # never reached the worker: send it elsewhere, not an attempt
                outcome, retry = self._died(str(gone), attempt), yielded == 0
            finally:
                self._release(worker)
            outcome.attempts = attempt
            if outcome.ok or not retry or attempt > self.warm.retries:
                return outcome
            time.sleep(self._retry_delay_s(attempt))
            attempt += 1

    # -- slots ------------------------------------------------------------------
    def _acquire(self) -> _Worker:
        with self._cond:
            self._waiting += 1
            try:
                deadline = time.monotonic() + STARTUP_TIMEOUT_S
                while True:
                    if self._closed:
                        raise ExecutionError("the app run has ended; no more calls can be made")
                    worker = self._free_worker()
                    if worker is not None:
                        worker.inflight += 1
                        self._keep_buffer()
                        return worker
                    if self._failure is not None and not self._workers:
                        failure, self._failure = self._failure, None
                        raise failure
                    starting = sum(self.warm.max_inputs for w in self._workers if not w.ready)
                    if self._waiting > starting and len(self._workers) < self.warm.max_containers:
                        self._start(pinned=False)
                        continue
                    if time.monotonic() > deadline:
                        raise ExecutionError(f"{self.fn.tag}: no warm worker became ready within "
                                             f"{STARTUP_TIMEOUT_S:g} s")
                    self._cond.wait(0.5)
            finally:
                self._waiting -= 1

    def _free_worker(self) -> _Worker | None:
        """The busiest ready worker with a free slot (so that idle ones can scale down); retires workers
        close to their scaledown window, which then exit by themselves."""
        now = time.monotonic()
        margin = min(1.0, self.warm.scaledown_window_s * 0.2)
        best: _Worker | None = None
        for worker in list(self._workers):
            if not worker.ready or worker.inflight >= self.warm.max_inputs:
                continue
            if not worker.pinned and not worker.inflight and now - worker.last_used >= \
                    self.warm.scaledown_window_s - margin:
                self._workers.remove(worker)
                _close(worker)
                continue
            if best is None or worker.inflight > best.inflight:
                best = worker
        return best

    def _keep_buffer(self) -> None:
        idle = sum(1 for w in self._workers if not w.inflight)
        while idle < self.warm.buffer_containers and len(self._workers) < self.warm.max_containers:
            self._start(pinned=False)
            idle += 1

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            worker.inflight -= 1
            worker.last_used = time.monotonic()
            self._cond.notify_all()

    def _drop(self, worker: _Worker) -> None:
        with self._cond:
            if worker in self._workers:
                self._workers.remove(worker)
            self._cond.notify_all()
        _close(worker)
        if worker.dispatch is not None and not worker.ended:
            try:
                self.backend.cancel(worker.dispatch)  # unreachable: make sure it is gone
            except Exception:
                pass

    # -- workers ----------------------------------------------------------------
    def _start(self, *, pinned: bool) -> None:
        """Dispatch one more worker (with the lock held); it becomes ready in the background."""
        worker = _Worker(pinned)
        self._workers.append(worker)
        self._failure = None
        self.started += 1
        threading.Thread(target=self._boot, args=(worker,), name=f"modalc-warm-{self.fn.tag}", daemon=True).start()

    def _boot(self, worker: _Worker) -> None:
        scaledown_ms = 0 if worker.pinned else self.warm.scaledown_window_s * 1000
        serve = protocol.encode("serve", Call(inputs=[], method=self.method, params=self.params),
                                scaledown_ms=scaledown_ms, max_inputs=self.warm.max_inputs)
        try:
            worker.dispatch = self.backend.dispatch(self.fn, serve,
                                                    call_id=f"{CALL_PREFIX}{self.key}-{uuid.uuid4().hex[:10]}")
        except BaseException as exc:
            self._ended(worker, exc)
            return
        threading.Thread(target=self._watch, args=(worker,), name=f"modalc-warm-{self.fn.tag}-wait",
                         daemon=True).start()
        delay = 0.005
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not worker.ended and not self._closed and time.monotonic() < deadline:
            try:
                address = worker.address or self.backend.endpoint(worker.dispatch, self.warm.service)
                if address is not None:
                    worker.address = address
                    conn = _connect(address)
                    conn.request("GET", "/healthz")
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status == 200:
                        worker.conns.append(conn)
                        with self._cond:
                            worker.ready = True
                            worker.last_used = time.monotonic()
                            self._cond.notify_all()
                        return
                    conn.close()
            except (OSError, http.client.HTTPException):
                pass
            except Exception as exc:  # the backend could not say where the worker is
                self._ended(worker, exc)
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _watch(self, worker: _Worker) -> None:
        """Wait for the worker's allocation to end (idle scaledown, crash, stop); then forget it."""
        assert worker.dispatch is not None
        try:
            result = self.backend.wait(worker.dispatch)
        except BaseException as exc:
            self._ended(worker, exc)
            return
        self._ended(worker, None if worker.ready else self._start_failure(result))

    def _start_failure(self, result: AllocResult | None) -> BaseException:
        from agent_runtime.outcomes import remote_exception

        if result is not None and result.result is not None:
            try:
                outcomes = protocol.as_outcomes(protocol.decode(result.result)[1])
                if outcomes and not outcomes[0].ok:
                    exc = remote_exception(outcomes[0])
                    self.backend.explain(exc)
                    return exc
            except ProtocolError:
                pass
        why = (result.failure if result is not None else "") or "it exited before it was ready"
        return ExecutionError(f"{self.fn.tag}: the warm worker could not start: {why}")

    def _ended(self, worker: _Worker, failure: BaseException | None) -> None:
        with self._cond:
            worker.ended = True
            if worker in self._workers:
                self._workers.remove(worker)
            _close(worker)
            if failure is not None and not self._closed:
                self._failure = failure
            self._cond.notify_all()

    # -- the end of the run ---------------------------------------------------------
    def workers(self) -> int:
        with self._cond:
            return len(self._workers)

    def close(self) -> None:
        """Stop every worker (``Backend.stop`` would too; this does it before the backend ends)."""
        with self._cond:
            self._closed = True
            workers = list(self._workers)
            self._workers.clear()
            self._cond.notify_all()
        for worker in workers:
            if self.deployed:  # adopted ones belong to the deploy; ours exit after scaledown_window idle
                _close(worker)
                continue
            _close(worker)
            if worker.dispatch is not None and not worker.ended:
                try:
                    self.backend.cancel(worker.dispatch)
                except Exception:
                    pass

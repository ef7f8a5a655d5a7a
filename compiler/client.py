"""The client side of a run: executes the SDK's calls (``.remote``, ``.map``, ``.spawn`` …) on a backend.

Runs on the client. Installed as the SDK's invoker while an app runs. Calls
become versioned call envelopes; a ``.map`` is cut into chunks so that one
allocation serves many inputs (a warm function's chunks go to its warm
workers, ``compiler/warm_pool.py``); concurrency per function is capped by
``max_containers`` (default: the CPU count); results come back as outcome
lists, and remote exceptions are re-raised here with the remote traceback
attached as a note. A class runs as one job: the method and the parameters
travel in each call; a ``Cls.with_options(...)`` variant is compiled on first
use (``compile_variant``, given by ``compiler/run.py``) and registered with
the backend as one more job of the run.
"""

from __future__ import annotations

import math
import os
import secrets
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import chain, islice
from typing import Any

from agent_runtime import protocol
from agent_runtime.outcomes import call_outcomes, call_parts, remote_exception
from agent_runtime.protocol import Batch, Call, Inputs, Outcome
from agent_runtime.sdk.exception import ExecutionError
from agent_runtime.sdk.functions import Target

from .backends.base import AllocResult, Backend, Dispatch
from .batching import Batcher
from .errors import UserError
from .ir import CompiledApp, FunctionJob, JobType
from .lower.warm import TOKEN_ENV
from .warm_pool import WarmPool

CHUNKS_PER_WORKER = 4
MAX_CHUNK = 5000
LOOKAHEAD = 4096  # inputs of a .map read ahead to size its chunks (the rest is read as chunks complete)
GROW_BELOW_S = 0.5  # a chunk quicker than this: the next ones are larger (up to GROWN_MAX_CHUNK)
GROWN_MAX_CHUNK = 100_000  # inputs per chunk at most, grown, on a backend without a payload limit
WINDOW_PER_WORKER = 2  # chunks in flight (not yet given back) per concurrent allocation: no further read-ahead
WARM_MAX_CHUNK = 16  # inputs per request to a warm worker: each request is ~0.5 ms, so keep the balance fine


def _serves_web(fn: FunctionJob) -> bool:
    """Whether ``fn``'s job is a web endpoint's: a Nomad service job (a warm function's batch job registers
    a service too, for its workers, but serves no web requests)."""
    return fn.job is not None and fn.job.type is JobType.SERVICE


class Progress:
    """``[fn] map 120/1000`` on a terminal (``120/?`` while a generator's inputs are still being read);
    nothing when quiet or piped."""

    def __init__(self, label: str, total: int | None, enabled: bool):
        self.label, self.total, self.done = label, total, 0
        self.enabled = enabled and (total is None or total > 1)
        self._lock = threading.Lock()

    def advance(self, n: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.done += n
            sys.stderr.write(f"\r[{self.label}] map {self.done}/{'?' if self.total is None else self.total}")
            if self.total is not None and self.done >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


class Invoker:
    """Runs remote calls of one compiled app on one backend."""

    def __init__(self, backend: Backend, compiled: CompiledApp, *, max_containers: dict[str, int] | None = None,
                 quiet: bool = False, compile_variant: Callable[[str, str, dict[str, Any]], FunctionJob] | None = None):
        self.backend = backend
        self.compiled = compiled
        self.functions = {f.tag: f for f in compiled.functions}
        self.quiet = quiet
        cpus = os.cpu_count() or 1
        limits = max_containers or {}
        self._limits = {tag: max(1, limits.get(tag) or cpus) for tag in self.functions}
        self._slots = {tag: threading.BoundedSemaphore(n) for tag, n in self._limits.items()}
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="modalc-call")
        self._spawned: dict[str, Future[list[Outcome]]] = {}
        self._unawaited: dict[str, tuple[FunctionJob, Dispatch]] = {}  # spawned deployed calls not read yet
        self._dispatches: dict[str, Dispatch] = {}
        self._lock = threading.Lock()
        # Cls.with_options variants: (class tag, overrides) -> the variant's job, compiled on first use.
        self._compile_variant = compile_variant
        self._variants: dict[tuple[str, str], FunctionJob] = {}
        self._variant_lock = threading.Lock()  # one compile and registration at a time
        # Warm workers (compiler/warm_pool.py): one pool per function and class parameters; one token per run.
        self._pools: dict[tuple[str, str], WarmPool] = {}
        self._warm_token = ""
        self._warm_lock = threading.Lock()
        self._deployed_tags: set[str] = set()  # functions of deployed apps (Function.from_name)
        self._no_token: set[str] = set()  # deployed warm functions without a token Variable: dispatched
        self._batchers: dict[str, Batcher] = {}  # @modal.batched targets (compiler/batching.py)

    # -- plumbing ---------------------------------------------------------------
    def _function(self, target: Target) -> FunctionJob:
        if target.app_name not in (None, self.compiled.app_name):
            if target.options:
                raise ExecutionError(
                    f"{target.app_name}.{target.tag}.with_options/with_concurrency/with_batching(...): a deployed "
                    "class runs with the options it was deployed with, and modalc cannot change them per call; "
                    "deploy a class with those options instead")
            return self._deployed(target.app_name, target.tag)
        if target.options:
            return self._variant(target)
        fn = self.functions.get(target.tag)
        if fn is None:
            known = ", ".join(sorted(self.functions)) or "none"
            raise ExecutionError(f"no function {target.tag!r} in app {self.compiled.app_name!r} "
                                 f"(this run's functions: {known})")
        return fn

    def _variant(self, target: Target) -> FunctionJob:
        """The job of a ``Cls.with_options(...)`` variant: compiled and registered on first use."""
        key = (target.tag, repr(target.options))
        with self._variant_lock:
            fn = self._variants.get(key)
            if fn is not None:
                return fn
            if self._compile_variant is None or target.tag not in self.functions:
                raise ExecutionError(f"{target.tag}.with_options(...) cannot be compiled in this run")
            tag = f"{target.tag}-v{len(self._variants) + 1}"
            fn = self._compile_variant(target.tag, tag, dict(target.options))
            self.backend.add_function(fn)
            with self._lock:
                self.functions[tag] = fn
                self._limits[tag] = self._limits[target.tag]
                self._slots[tag] = threading.BoundedSemaphore(self._limits[tag])
            self._variants[key] = fn
            return fn

    def _deployed(self, app_name: str, tag: str) -> FunctionJob:
        """A function of another, deployed app (``Function.from_name``), looked up once through the backend."""
        key = f"{app_name}.{tag}"
        with self._lock:
            known = self.functions.get(key)
        if known is not None:
            return known
        fn = self.backend.lookup(app_name, tag)
        with self._lock:
            self._deployed_tags.add(fn.tag)
            self.functions[fn.tag] = fn
            self._limits.setdefault(fn.tag, os.cpu_count() or 1)
            self._slots.setdefault(fn.tag, threading.BoundedSemaphore(self._limits[fn.tag]))
        return fn

    def _encode(self, fn: FunctionJob, call: Call, *, stream: bool = False) -> bytes:
        # stream: the caller reads the values a generator yields (the runtime then keeps stream.pkl).
        payload = protocol.encode("call", call, stream=True) if stream else protocol.encode("call", call)
        limit = self.backend.payload_limit(fn)
        if limit is not None and len(payload) > limit:
            raise UserError(
                f"the input to {fn.tag} is {len(payload)} bytes; a Nomad dispatch payload holds at most {limit} bytes",
                hint="set MODALC_BLOB_URL=s3://BUCKET/PREFIX (or --blob-url) so large inputs go through an "
                "S3-compatible blob store, or pass a reference instead (e.g. a path on a modal.Volume)",
            )
        return payload

    def _execute(self, fn: FunctionJob, payload: bytes, n_inputs: int, call_id: str) -> list[Outcome]:
        result = self._dispatched(fn, payload, call_id)
        return self._outcomes(fn, result, n_inputs)

    def _execute_parts(self, fn: FunctionJob, payload: bytes, n_inputs: int, call_id: str) -> list[Any]:
        """A ``.map`` chunk's outcomes as ``Outcome``s and ``Batch``es (no ``Outcome`` per successful input)."""
        result = self._dispatched(fn, payload, call_id)
        why = result.failure or f"the allocation exited with code {result.exit_code} without a result"
        return call_parts(fn.tag, result.result, why, n_inputs)

    def _dispatched(self, fn: FunctionJob, payload: bytes, call_id: str) -> AllocResult:
        with self._slots[fn.tag]:
            dispatch = self.backend.dispatch(fn, payload, call_id=call_id)
            with self._lock:
                self._dispatches[call_id] = dispatch
            try:
                result = self.backend.wait(dispatch)
            finally:
                with self._lock:
                    self._dispatches.pop(call_id, None)
        assert result is not None
        return result

    def _outcomes(self, fn: FunctionJob, result: AllocResult, n_inputs: int) -> list[Outcome]:
        why = result.failure or f"the allocation exited with code {result.exit_code} without a result"
        return call_outcomes(fn.tag, result.result, why, n_inputs)

    def _warm_pool(self, fn: FunctionJob, target: Target) -> WarmPool | None:
        """The warm pool serving ``fn`` (with ``target``'s class parameters), created on first use."""
        if fn.warm is None or not self.backend.supports_warm:
            return None
        key = (fn.tag, repr(sorted(dict(target.params).items())))
        with self._warm_lock:
            pool = self._pools.get(key)
            if pool is None and fn.tag in self._deployed_tags:
                # The deploy's token (compiler/warm_deploy.py); without it, calls are dispatched one by one.
                if fn.tag in self._no_token:
                    return None
                token = (self.backend.job_variable(fn) or {}).get(TOKEN_ENV)
                if not token:
                    self._no_token.add(fn.tag)
                    return None
                pool = self._pools[key] = WarmPool(self.backend, fn, token, method=target.method,
                                                   params=dict(target.params), deployed=True)
            if pool is None:
                if not self._warm_token:
                    self._warm_token = secrets.token_urlsafe(32)
                if not any(k[0] == fn.tag for k in self._pools):
                    self.backend.put_job_variable(fn, {TOKEN_ENV: self._warm_token})
                pool = self._pools[key] = WarmPool(self.backend, fn, self._warm_token, method=target.method,
                                                   params=dict(target.params))
            return pool

    def _run(self, target: Target, inputs: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[Outcome]:
        fn = self._function(target)
        call = Call(inputs=inputs, method=target.method, params=dict(target.params))
        pool = self._warm_pool(fn, target)
        if pool is not None:  # over the warm workers' channel: no dispatch, no payload limit
            return pool.run(call)
        return self._execute(fn, self._encode(fn, call), len(inputs), uuid.uuid4().hex[:12])

    def _one(self, target: Target, item: tuple[tuple[Any, ...], dict[str, Any]]) -> Outcome:
        """One input's outcome; a ``@modal.batched`` target's is run with concurrent ones as one batch."""
        fn = self._function(target)
        wait_ms = fn.batch_wait_ms(target.method)
        if wait_ms is None:
            (outcome,) = self._run(target, [item])
            return outcome
        key = repr((target.app_name, target.tag, target.method, target.params, target.options))
        with self._lock:
            batcher = self._batchers.get(key)
            if batcher is None:
                batcher = self._batchers[key] = Batcher(lambda items: self._run(target, items), wait_s=wait_ms / 1000,
                                                        size=fn.group_size(target.method))
        return batcher.submit(item)

    # -- for the call broker (calls made inside the run's allocations, compiler/call_broker.py) ----------
    def function(self, target: Target) -> FunctionJob:
        """The job a call to ``target`` dispatches (a deployed app's function looked up once)."""
        return self._function(target)

    def concurrency(self, fn: FunctionJob) -> int:
        """How many allocations of ``fn`` run at once (its ``max_containers``, default the CPU count)."""
        return self._limits.get(fn.tag) or (os.cpu_count() or 1)

    def nested_web_url(self, target: Target) -> str | None:
        return self.deployed_web_url(target.app_name or self.compiled.app_name, target.tag)

    # -- the SDK's invoker interface ------------------------------------------------
    def call(self, target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        outcome = self._one(target, (tuple(args), dict(kwargs)))
        if outcome.ok:
            return outcome.value
        raise self._exception(outcome)

    def spawn(self, target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        fn = self._function(target)
        if self.backend.durable_calls and (fn.warm is None or fn.tag in self._deployed_tags):
            # Durable call ids (a deployed warm function's spawn too): the dispatch happens now and its id names the dispatched job, so
            # FunctionCall.from_id(...).get() works from another process too (see backends/nomad.py).
            call = Call(inputs=[(tuple(args), dict(kwargs))], method=target.method, params=dict(target.params))
            dispatch = self.backend.dispatch(fn, self._encode(fn, call), call_id=uuid.uuid4().hex[:12])
            call_id = f"fc-{dispatch.dispatch_id}"
            with self._lock:
                self._dispatches[dispatch.call_id] = dispatch
            if fn.tag in self._deployed_tags:
                # A deployed app's call outlives this run, as on Modal: nothing here waits for it (the run's
                # exit does not, and its input stays in the blob store) until .get() reads it.
                with self._lock:
                    self._unawaited[call_id] = (fn, dispatch)
                return call_id
            future = self._pool.submit(self._await, fn, dispatch)
            with self._lock:
                self._spawned[call_id] = future
            return call_id
        call_id = f"fc-{uuid.uuid4().hex}"
        future = self._pool.submit(lambda: [self._one(target, (tuple(args), dict(kwargs)))])
        with self._lock:
            self._spawned[call_id] = future
        return call_id

    def _await(self, fn: FunctionJob, dispatch: Dispatch) -> list[Outcome]:
        try:
            result = self.backend.wait(dispatch)
        finally:
            with self._lock:
                self._dispatches.pop(dispatch.call_id, None)
        assert result is not None
        return self._outcomes(fn, result, 1)

    def get(self, call_id: str, timeout: float | None) -> Any:
        with self._lock:
            future = self._spawned.get(call_id)
            unawaited = self._unawaited.pop(call_id, None)
            if unawaited is not None:
                future = self._spawned[call_id] = self._pool.submit(self._await, *unawaited)
        if future is None and self.backend.durable_calls and call_id.startswith("fc-") and "/" in call_id:
            dispatch = self.backend.attach(call_id[3:])
            stub = FunctionJob(tag=dispatch.function, job=None, module="", qualname="",  # type: ignore[arg-type]
                               image=None, is_generator=False)
            future = self._pool.submit(self._await, stub, dispatch)
            with self._lock:
                self._spawned[call_id] = future
        if future is None:
            raise ExecutionError(f"no function call {call_id!r} in this run")
        try:
            (outcome,) = future.result(timeout)
        except TimeoutError:
            raise TimeoutError(f"function call {call_id} did not finish within {timeout} s") from None
        if outcome.ok:
            return outcome.value
        raise self._exception(outcome)

    def cancel(self, call_id: str) -> None:
        with self._lock:
            future = self._spawned.get(call_id)
            dispatches = list(self._dispatches.values())
        if future is not None:
            future.cancel()
        for dispatch in dispatches:
            if call_id in (dispatch.call_id, f"fc-{dispatch.dispatch_id}"):
                self.backend.cancel(dispatch)

    def map(self, target: Target, arg_tuples: Iterable[tuple[Any, ...]], kwargs: dict[str, Any], *,
            order_outputs: bool = True, return_exceptions: bool = False) -> Iterator[Any]:
        fn = self._function(target)
        shared = dict(kwargs)  # one dict for every input (the runtime never changes it): once per chunk
        inputs = map(tuple, arg_tuples)  # in C: ~1 us per input less than a generator
        head = list(islice(inputs, LOOKAHEAD))
        if not head:
            return iter(())
        total = len(head) if len(head) < LOOKAHEAD else None
        return self._map(fn, target, head, inputs, shared, total, order_outputs, return_exceptions)

    def _chunk_size(self, fn: FunctionJob, n: int, method: str | None = None) -> int:
        workers = self._limits[fn.tag]
        size = max(1, min(MAX_CHUNK, math.ceil(n / (workers * CHUNKS_PER_WORKER))))
        # A backend whose dispatches cost HTTP requests sets a floor (Nomad: ~5 requests per dispatch).
        size = max(size, min(self.backend.min_chunk, MAX_CHUNK))
        # An allocation that runs inputs at once (@modal.concurrent / @modal.batched) gets a full group.
        return max(size, min(fn.group_size(method), MAX_CHUNK))

    def _map(self, fn: FunctionJob, target: Target, head: list[tuple[Any, ...]], rest: Iterator[tuple[Any, ...]],
             shared: dict[str, Any], total: int | None, order_outputs: bool, return_exceptions: bool
             ) -> Iterator[Any]:
        """The map's values as its chunks complete. The inputs are read a chunk at a time, at most
        ``WINDOW_PER_WORKER`` chunks per concurrent allocation ahead of the values given back, so a generator
        of a million inputs is never held in memory (``LOOKAHEAD`` inputs are read first to size the chunks)."""
        progress = Progress(fn.tag, total, enabled=not self.quiet and sys.stderr.isatty())
        warm = self._warm_pool(fn, target)
        n = total or LOOKAHEAD * 64  # a long map (more than LOOKAHEAD inputs): chunks as for a long list
        if warm is None:  # one dispatch per chunk
            size = self._chunk_size(fn, n, target.method)
            threads = self._limits[fn.tag]
        else:  # over the warm workers' channel: small chunks, a few per slot, no payload limit
            slots = warm.warm.max_containers * warm.warm.max_inputs
            size = max(1, min(WARM_MAX_CHUNK, math.ceil(n / (slots * CHUNKS_PER_WORKER))))
            if fn.batch_wait_ms(target.method) is not None:  # @modal.batched: full batches
                size = max(size, min(fn.group_size(target.method), MAX_CHUNK))
            threads = max(1, min(slots, math.ceil(n / size)))
        source = chain(head, rest)
        del head
        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"modalc-map-{fn.tag}")
        in_flight: deque[Future[Any]] = deque()
        exhausted = False
        read = 0
        try:
            while True:
                while not exhausted and len(in_flight) < threads * WINDOW_PER_WORKER:
                    chunk = Inputs(list(islice(source, size)), shared)
                    if not chunk:
                        exhausted = True
                        break
                    if warm is not None:
                        call = Call(inputs=chunk, method=target.method, params=dict(target.params))
                        in_flight.append(pool.submit(warm.run, call))
                        continue
                    read += len(chunk)
                    for part, payload in self._payloads(fn, target, chunk, [range(len(chunk))]):
                        in_flight.append(pool.submit(self._timed, fn, payload, len(part)))
                    del chunk
                if not in_flight:
                    return
                if order_outputs:
                    done = in_flight.popleft()
                else:
                    finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    done = next(iter(finished))
                    in_flight.remove(done)
                outcomes = done.result()
                del done
                if warm is None:
                    elapsed, outcomes = outcomes
                    size = self._grown(fn, size, len(outcomes), elapsed, None if total is None else total - read,
                                       threads)
                progress.advance(sum(len(o) if o.__class__ is Batch else 1 for o in outcomes))
                yield from self._values(outcomes, return_exceptions)
                del outcomes
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _timed(self, fn: FunctionJob, payload: bytes, n_inputs: int) -> tuple[float, list[Any]]:
        start = time.monotonic()
        parts = self._execute_parts(fn, payload, n_inputs, uuid.uuid4().hex[:12])
        return time.monotonic() - start, parts

    def _grown(self, fn: FunctionJob, size: int, parts: int, elapsed: float, left: int | None, threads: int) -> int:
        """The next chunks' size once a chunk of ``size`` inputs took ``elapsed`` s: up to 8x larger while
        chunks are much quicker than ``GROW_BELOW_S`` (an allocation's start-up then costs more than its
        inputs), never more than a share of the inputs ``left`` per allocation (so the tail stays spread)."""
        if elapsed >= GROW_BELOW_S or parts == 0:
            return size
        cap = GROWN_MAX_CHUNK if self.backend.payload_limit(fn) is None else MAX_CHUNK
        grown = min(cap, int(size * min(8.0, GROW_BELOW_S / max(elapsed, 1e-3))))
        if left is not None:
            grown = min(grown, max(size, math.ceil(left / threads)))
        return max(size, grown)

    def _payloads(self, fn: FunctionJob, target: Target, inputs: Inputs, chunks: list[range]
                  ) -> list[tuple[range, bytes]]:
        """Encode each chunk; halve chunks that exceed the backend's payload limit."""
        out: list[tuple[range, bytes]] = []
        todo = list(chunks)
        limit = self.backend.payload_limit(fn)
        while todo:
            chunk = todo.pop(0)
            call = Call(inputs=inputs.slice(chunk.start, chunk.stop), method=target.method,
                        params=dict(target.params))
            payload = protocol.encode("call", call)
            if limit is not None and len(payload) > limit and len(chunk) > 1:
                mid = chunk.start + len(chunk) // 2
                todo[:0] = [range(chunk.start, mid), range(mid, chunk.stop)]
                continue
            if limit is not None and len(payload) > limit:
                self._encode(fn, call)  # raises the user error naming the limit
            out.append((chunk, payload))
        return out

    def _exception(self, o: Outcome) -> BaseException:
        """The outcome's exception, with what the backend can add to explain it."""
        exc = remote_exception(o)
        self.backend.explain(exc)
        return exc

    def _values(self, outcomes: list[Any], return_exceptions: bool) -> Iterator[Any]:
        """The values of ``Outcome``s and ``Batch``es, in order; a failure raised or (return_exceptions) given."""
        for o in outcomes:
            if o.__class__ is Batch:
                if not o.apart:
                    yield from o.values
                else:
                    apart = o.apart
                    for i, value in enumerate(o.values):
                        if i in apart:
                            yield from self._values([apart[i]], return_exceptions)
                        else:
                            yield value
            elif o.ok:
                yield o.value
            elif return_exceptions:
                yield self._exception(o)
            else:
                raise self._exception(o)

    def call_generator(self, target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[Any]:
        fn = self._function(target)
        call = Call(inputs=[(tuple(args), dict(kwargs))], method=target.method, params=dict(target.params))
        warm = self._warm_pool(fn, target)
        if warm is not None:  # streamed by a warm worker over its channel
            outcome = yield from warm.stream(call)
            if not outcome.ok:
                raise self._exception(outcome)
            return
        payload = self._encode(fn, call, stream=True)
        call_id = uuid.uuid4().hex[:12]
        with self._slots[fn.tag]:
            dispatch = self.backend.dispatch(fn, payload, call_id=call_id)
            offset, buffer = 0, b""
            while True:
                data, done = self.backend.read_stream(dispatch, offset)
                offset += len(data)
                buffer += data
                values, buffer = protocol.split_frames(buffer)
                yield from values
                if done:  # the rest of the stream, read to its end (a read gives at most 1 MiB)
                    while True:
                        data, _ = self.backend.read_stream(dispatch, offset)
                        if not data:
                            break
                        offset += len(data)
                        values, buffer = protocol.split_frames(buffer + data)
                        yield from values
                    break
                if not data:
                    time.sleep(0.02)
            result = self.backend.wait(dispatch)
        assert result is not None
        (outcome,) = self._outcomes(fn, result, 1)
        if not outcome.ok:
            raise self._exception(outcome)

    def web_url(self, target: Target) -> str:
        """The URL of a web function's endpoint in this run (its service job's address on the backend)."""
        fn = self._function(target)
        if not _serves_web(fn):
            raise ExecutionError(f"{target.tag} has no web endpoint on the {self.backend.name} backend")
        return self.backend.web_url(fn)

    def deployed_web_url(self, app_name: str, tag: str) -> str | None:
        """``Function.from_name(app, tag).get_web_url()``: this run's own endpoint, or a deployed app's."""
        if app_name == self.compiled.app_name and tag in self.functions:
            fn = self.functions[tag]
            return self.backend.web_url(fn) if _serves_web(fn) else None
        return self.backend.deployed_web_url(app_name, tag)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._warm_lock:
            pools = list(self._pools.values())
        for pool in pools:
            pool.close()

"""The SDK's invoker inside an allocation: Modal's call API over a nested-call channel.

Runs inside allocations; standard library only. ``NestedInvoker`` implements what ``sdk.functions`` asks of
an invoker (``call``, ``map``, ``spawn``, ``get``, ``cancel``, ``call_generator``, ``web_url``,
``deployed_web_url``) the way the client's ``compiler.client.Invoker`` does: each call is one call envelope
dispatched as an allocation of the target's job; a ``.map`` is cut into chunks (inputs read lazily, a
bounded number of chunks in flight); results come back as outcome lists and remote exceptions are re-raised
with the remote traceback as a note. Retries and per-input timeouts are the called allocation's (its shim).

What a channel does (``broker_channel.BrokerChannel`` on the local backend, ``nomad_channel.NomadChannel``
on Nomad) is only: dispatch a payload to a function's job, wait for the allocation's end and hand back its
result bytes, read a generator's stream, cancel, and find a web endpoint.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import chain, islice

from .. import protocol
from ..outcomes import call_outcomes, remote_exception
from ..protocol import Call, Outcome
from ..sdk.exception import ExecutionError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

    from ..sdk.functions import Target

    Inputs = list[tuple[tuple[Any, ...], dict[str, Any]]]

CHUNKS_PER_WORKER = 4
MAX_CHUNK = 5000
LOOKAHEAD = 4096  # inputs of a .map read ahead to size its chunks (the rest is read as chunks complete)
WINDOW_PER_WORKER = 2  # chunks in flight per concurrent dispatch: inputs are read no further ahead
PROGRESS_EVERY_S = 2.0


class Ended:
    """How a nested call's allocation ended: its result envelope, or why there is none."""

    __slots__ = ("failure", "result")

    def __init__(self, result: bytes | None, failure: str = "") -> None:
        self.result = result
        self.failure = failure


class Channel(ABC):
    """Where an allocation's calls go. Handles are the channel's dispatch IDs (``fc-<handle>`` is the call ID)."""

    name = "channel"
    max_payload: int | None = None  # largest call envelope one dispatch carries (Nomad: 16384 bytes)
    min_chunk = 1  # fewest inputs worth one dispatch of a .map chunk

    @abstractmethod
    def dispatch(self, target: Target, payload: bytes, *, keep: bool = False) -> str:
        """Start one allocation of ``target``'s function; ``keep``: its result may be read more than once
        (a spawned call, which ``FunctionCall.from_id`` can read from elsewhere)."""
        ...

    @abstractmethod
    def wait(self, handle: str, timeout: float | None) -> Ended | None:
        """Block until the allocation ends (None when ``timeout`` passed first)."""
        ...

    @abstractmethod
    def read_stream(self, handle: str, offset: int) -> tuple[bytes, bool]:
        """A generator's stream bytes from ``offset``, and whether the allocation ended."""
        ...

    @abstractmethod
    def cancel(self, handle: str) -> None:
        ...

    @abstractmethod
    def web_url(self, app_name: str, tag: str) -> str | None:
        """The address of web function ``tag`` of app ``app_name`` (None: not a web function)."""
        ...

    def concurrency(self, target: Target) -> int:
        """How many dispatches of ``target``'s function a .map keeps running at once."""
        return 16


class _Progress:
    """``[fn] map 300/1000`` on stderr every couple of seconds while a map runs, and once at its end if it
    printed before (a quick map prints nothing); the run prefixes these lines with the caller's name."""

    def __init__(self, tag: str) -> None:
        self.tag, self.done, self.total = tag, 0, 0
        self._last = time.monotonic()
        self._printed = False
        self._lock = threading.Lock()

    def advance(self, n: int, total: int | None) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if (self._printed and total is not None and self.done >= total) or now - self._last >= PROGRESS_EVERY_S:
                self._last, self._printed = now, True
                of = f"/{total}" if total is not None else " done"
                sys.stderr.write(f"[{self.tag}] map {self.done}{of}\n")
                sys.stderr.flush()


class NestedInvoker:
    """Runs the calls user code makes inside an allocation, over ``channel``."""

    def __init__(self, channel: Channel, app_name: str) -> None:
        self.channel = channel
        self.app_name = app_name
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="modalc-nested")
        self._spawned: dict[str, Future[list[Outcome]]] = {}
        self._lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------
    @staticmethod
    def _check(target: Target) -> None:
        if target.options:
            raise ExecutionError(
                f"{target.tag}.with_options/with_concurrency/with_batching(...) cannot be called from inside a "
                "running function: a variant's job is compiled by the client that runs the app; call it from the "
                "local entrypoint, or declare a class with those options")

    def _encode(self, target: Target, inputs: Inputs, *, stream: bool = False) -> bytes:
        call = Call(inputs=inputs, method=target.method, params=dict(target.params))
        payload = protocol.encode("call", call, stream=True) if stream else protocol.encode("call", call)
        limit = self.channel.max_payload
        if limit is not None and len(payload) > limit:
            raise ExecutionError(
                f"the input to {target.tag} is {len(payload)} bytes; a Nomad dispatch payload holds at most {limit} "
                "bytes, and calls made inside an allocation do not use the blob store (MODALC_BLOB_URL): pass a "
                "reference instead, e.g. a path on a modal.Volume")
        return payload

    def _chunk_payloads(self, target: Target, chunk: Inputs) -> list[tuple[int, bytes]]:
        """(inputs, payload) per dispatch: a chunk over the payload limit is halved until it fits."""
        limit = self.channel.max_payload
        call = Call(inputs=chunk, method=target.method, params=dict(target.params))
        payload = protocol.encode("call", call)
        if limit is None or len(payload) <= limit:
            return [(len(chunk), payload)]
        if len(chunk) == 1:
            self._encode(target, chunk)  # raises the error naming the limit
        mid = len(chunk) // 2
        return self._chunk_payloads(target, chunk[:mid]) + self._chunk_payloads(target, chunk[mid:])

    def _outcomes(self, target: Target, ended: Ended, n_inputs: int) -> list[Outcome]:
        return call_outcomes(target.tag, ended.result, ended.failure or "the allocation ended without a result",
                             n_inputs)

    def _run(self, target: Target, payload: bytes, n_inputs: int) -> list[Outcome]:
        handle = self.channel.dispatch(target, payload)
        return self._await(target, handle, n_inputs)

    def _await(self, target: Target, handle: str, n_inputs: int = 1) -> list[Outcome]:
        ended = self.channel.wait(handle, None)
        assert ended is not None
        return self._outcomes(target, ended, n_inputs)

    @staticmethod
    def _value(outcome: Outcome) -> Any:
        if outcome.ok:
            return outcome.value
        raise remote_exception(outcome)

    # -- the SDK's invoker interface ----------------------------------------------
    def call(self, target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self._check(target)
        (outcome,) = self._run(target, self._encode(target, [(tuple(args), dict(kwargs))]), 1)
        return self._value(outcome)

    def spawn(self, target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        self._check(target)
        handle = self.channel.dispatch(target, self._encode(target, [(tuple(args), dict(kwargs))]), keep=True)
        call_id = f"fc-{handle}"
        with self._lock:
            self._spawned[call_id] = self._pool.submit(self._await, target, handle)
        return call_id

    def get(self, call_id: str, timeout: float | None) -> Any:
        with self._lock:
            future = self._spawned.get(call_id)
            if future is None:  # FunctionCall.from_id(...) of a call made elsewhere in the app
                if not call_id.startswith("fc-"):
                    raise ExecutionError(f"no function call {call_id!r}")
                from ..sdk.functions import Target

                future = self._spawned[call_id] = self._pool.submit(self._await, Target(None, call_id), call_id[3:])
        try:
            (outcome,) = future.result(timeout)
        except TimeoutError:
            raise TimeoutError(f"function call {call_id} did not finish within {timeout} s") from None
        return self._value(outcome)

    def cancel(self, call_id: str) -> None:
        with self._lock:
            future = self._spawned.get(call_id)
        if future is not None:
            future.cancel()
        if call_id.startswith("fc-"):
            self.channel.cancel(call_id[3:])

    def map(self, target: Target, arg_tuples: Iterable[tuple[Any, ...]], kwargs: dict[str, Any], *,
            order_outputs: bool = True, return_exceptions: bool = False) -> Iterator[Any]:
        self._check(target)
        inputs = ((tuple(args), dict(kwargs)) for args in arg_tuples)
        return self._map(target, inputs, order_outputs, return_exceptions)

    def _map(self, target: Target, inputs: Iterator[tuple[tuple[Any, ...], dict[str, Any]]], order_outputs: bool,
             return_exceptions: bool) -> Iterator[Any]:
        workers = max(1, self.channel.concurrency(target))
        head = list(islice(inputs, LOOKAHEAD))
        if not head:
            return
        total = len(head) if len(head) < LOOKAHEAD else None
        size = math.ceil((total or LOOKAHEAD) / (workers * CHUNKS_PER_WORKER))
        size = max(1, min(MAX_CHUNK, max(size, self.channel.min_chunk)))
        source = chain(head, inputs)
        progress = _Progress(target.tag)
        in_flight: deque[Future[list[Outcome]]] = deque()
        exhausted = False
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"modalc-nested-map-{target.tag}")
        read = 0
        try:
            while True:
                while not exhausted and len(in_flight) < workers * WINDOW_PER_WORKER:
                    chunk = list(islice(source, size))
                    if not chunk:
                        exhausted = True
                        total = read
                        break
                    read += len(chunk)
                    for n, payload in self._chunk_payloads(target, chunk):
                        in_flight.append(pool.submit(self._run, target, payload, n))
                if not in_flight:
                    return
                if order_outputs:
                    done = in_flight.popleft()
                    outcomes = done.result()
                else:
                    finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    done = next(iter(finished))
                    in_flight.remove(done)
                    outcomes = done.result()
                progress.advance(len(outcomes), total)
                for o in outcomes:
                    if o.ok:
                        yield o.value
                    elif return_exceptions:
                        yield remote_exception(o)
                    else:
                        raise remote_exception(o)
        finally:
            for future in in_flight:
                future.cancel()
            pool.shutdown(wait=False, cancel_futures=True)

    def call_generator(self, target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[Any]:
        self._check(target)
        handle = self.channel.dispatch(target, self._encode(target, [(tuple(args), dict(kwargs))], stream=True))
        offset, buffer = 0, b""
        while True:
            data, done = self.channel.read_stream(handle, offset)
            offset += len(data)
            values, buffer = protocol.split_frames(buffer + data)
            yield from values
            if done:
                data, _ = self.channel.read_stream(handle, offset)
                values, buffer = protocol.split_frames(buffer + data)
                yield from values
                break
        (outcome,) = self._await(target, handle)
        self._value(outcome)

    def web_url(self, target: Target) -> str:
        url = self.channel.web_url(target.app_name or self.app_name, target.tag)
        if url is None:
            raise ExecutionError(f"{target.tag} has no web endpoint")
        return url

    def deployed_web_url(self, app_name: str, tag: str) -> str | None:
        return self.channel.web_url(app_name, tag)

"""Dynamic batching: concurrent calls of a ``@modal.batched`` function gathered into one call.

Runs on the client; used by ``compiler.client.Invoker`` for ``.remote()`` and
``.spawn()`` of a function (or class method) that ``@modal.batched`` marks.
As on Modal, inputs are held until ``max_batch_size`` of them have arrived or
``wait_ms`` has passed since the first, and then run as one call (one
dispatch, or one request to a warm worker), where the runtime hands the
function one list per argument. Each caller gets its own input's outcome.
A ``.map`` does not come through here: its chunks are already full batches.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from agent_runtime.protocol import Outcome

Input = tuple[tuple[Any, ...], dict[str, Any]]


class _Batch:
    __slots__ = ("error", "filled", "inputs", "outcomes", "ran")

    def __init__(self) -> None:
        self.inputs: list[Input] = []
        self.filled = threading.Event()  # max_batch_size inputs: the first caller runs it at once
        self.ran = threading.Event()
        self.outcomes: list[Outcome] = []
        self.error: BaseException | None = None


class Batcher:
    """Gathers the inputs of one batched target; ``submit`` blocks until its input's outcome is known."""

    def __init__(self, run: Callable[[list[Input]], list[Outcome]], *, size: int, wait_s: float):
        self._run = run
        self.size = size
        self.wait_s = wait_s
        self._lock = threading.Lock()
        self._open: _Batch | None = None

    def submit(self, item: Input) -> Outcome:
        with self._lock:
            batch = self._open
            first = batch is None
            if batch is None:
                batch = self._open = _Batch()
            index = len(batch.inputs)
            batch.inputs.append(item)
            if len(batch.inputs) >= self.size:
                self._open = None
                batch.filled.set()
        if not first:
            batch.ran.wait()
        else:  # the first caller waits for the batch to fill (at most wait_ms), then runs it for everyone
            batch.filled.wait(self.wait_s)
            with self._lock:
                if self._open is batch:
                    self._open = None
            try:
                batch.outcomes = self._run(batch.inputs)
            except BaseException as exc:
                batch.error = exc
            finally:
                batch.ran.set()
        if batch.error is not None:
            raise batch.error
        return batch.outcomes[index]

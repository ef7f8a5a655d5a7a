"""The supervisor: runs a call's inputs in a forked worker and writes result.pkl.

Runs inside allocations, as the task's main process; standard library only
(it never imports the user's module, so it never unpickles user objects).
For each input it sends RUN to the worker and waits for DONE within the
per-attempt timeout. A worker that overruns is SIGKILLed (with its process
group) and a fresh one is forked for what remains; a worker that dies is
reported with its exit code or signal. Failed attempts are retried by
Modal's rules. A worker that runs several inputs at once (``@modal.concurrent``,
``@modal.batched``: its READY says the group size) gets them as RUN_MANY
groups, one timeout per group; failed inputs of a group are retried one by
one. The outcomes, one per input in input order, go into
``<result-dir>/result.pkl`` atomically; the exit code says how it went
(``exitcodes``).
"""

from __future__ import annotations

import enum
import os
import select
import signal
import sys
import time

from . import channel, exitcodes, outcomes
from .args import Options
from .protocol import RESULT_FILE, STREAM_FILE, ProtocolError, encode, frame_boundary, read_header

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType

_STACKS_WAIT_S = 0.5  # how long a timed-out worker gets to dump its stacks before SIGKILL
_GRACE_S = 5.0
_RANGE_POLL_S = 0.05  # how often a worker running a range is checked for the input it runs  # how long a stopped task's worker gets to end on SIGTERM (its @modal.exit methods) before SIGKILL


class Status(enum.Enum):
    OK = "ok"
    USER = "user"  # the function raised, or its process crashed
    TIMEOUT = "timeout"
    INFRA = "infra"
    FATAL = "fatal"  # an enter method raised: every remaining input fails with it


class Attempt:
    __slots__ = ("outcome", "retryable", "status", "summary")

    def __init__(self, status: Status, retryable: bool, summary: str, outcome: bytes) -> None:
        self.status = status
        self.retryable = retryable
        self.summary = summary
        self.outcome = outcome  # a pickled protocol.Outcome

    def __repr__(self) -> str:
        return (f"Attempt(status={self.status!r}, retryable={self.retryable!r}, summary={self.summary!r}, "
                f"outcome={self.outcome!r})")


class _Range:
    """The outcomes of consecutive inputs a worker ran with RUN_RANGE: one pickle of their values, and an
    ``Attempt`` for each input that is apart (failed, or not plain: retried one by one)."""

    __slots__ = ("apart", "count", "values")

    def __init__(self, count: int, values: bytes, apart: dict[int, Attempt]) -> None:
        self.count = count
        self.values = values
        self.apart = apart


def _attempts(results: list[Attempt | _Range]) -> list[Attempt]:
    out: list[Attempt] = []
    for r in results:
        if isinstance(r, _Range):
            out.extend(r.apart.values())
        else:
            out.append(r)
    return out


def _counted(results: list[Attempt | _Range]) -> int:
    return sum(r.count if isinstance(r, _Range) else 1 for r in results)


_TIMED_OUT: tuple[bytes, bytearray] = (b"", bytearray())  # _range_message's answer (compared by identity)

# _attempt's answer "a fresh worker is ready and runs inputs in groups" (compared by identity).
_GROUPED = Attempt(Status.OK, False, "", b"")


class _Worker:
    """A forked worker process and the two pipes to it."""

    def __init__(self, opts: Options, call_body: bytes | None):
        cmd_r, cmd_w = os.pipe()
        msg_r, msg_w = os.pipe()
        self.progress = channel.Progress()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            os.close(cmd_w)
            os.close(msg_r)
            from . import worker

            worker.main(opts, call_body, cmd_r, msg_w, self.progress)
        os.close(cmd_r)
        os.close(msg_w)
        try:
            os.setpgid(pid, pid)  # also done by the child; whichever runs first wins the race
        except OSError:
            pass
        self.opts = opts
        self.pid = pid
        self.commands = cmd_w
        self.status: int | None = None
        self.receiver = channel.Receiver(msg_r, writer_alive=self.alive)

    def alive(self) -> bool:
        if self.status is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped already (a signal handler got there first)
                pid, status = self.pid, 0
            if pid:
                self.status = status
        return self.status is None

    def kill(self) -> None:
        for send in (os.killpg, os.kill):
            try:
                send(self.pid, signal.SIGKILL)
            except OSError:
                pass
        self.reap()

    def reap(self) -> int:
        """Wait for the worker to end; its wait status."""
        if self.status is None:
            try:
                self.status = os.waitpid(self.pid, 0)[1]
            except ChildProcessError:
                self.status = 0
        try:
            os.killpg(self.pid, signal.SIGKILL)  # anything the user's code left behind in its group
        except OSError:
            pass
        self.close()
        try:
            os.unlink(channel.stack_file(self.opts.result_dir, self.pid))
        except OSError:
            pass
        return self.status

    def stacks(self) -> str:
        """The worker's threads' stacks, dumped by faulthandler on SIGUSR1 ("" if it cannot say)."""
        path = channel.stack_file(self.opts.result_dir, self.pid)
        try:
            os.kill(self.pid, signal.SIGUSR1)
        except OSError:
            return ""
        deadline = time.monotonic() + _STACKS_WAIT_S
        size = -1
        while time.monotonic() < deadline:
            time.sleep(0.02)
            try:
                now = os.path.getsize(path)
            except OSError:
                return ""
            if now and now == size:  # written and no longer growing
                break
            size = now
        with open(path, errors="replace") as fh:
            return fh.read()

    def close(self) -> None:
        for fd in (self.commands, self.receiver.fd):
            try:
                os.close(fd)
            except OSError:
                pass

    def quit(self, timeout_s: float) -> None:
        """Let the worker run its exit methods and end; kill it if that takes too long."""
        try:
            channel.send(self.commands, channel.QUIT)
            # The worker's end of the pipe closes when it exits: wait for that, not in a sleep loop.
            while self.receiver.receive(time.monotonic() + timeout_s) is not None:
                pass
        except (OSError, channel.Expired):
            pass
        self.kill()


def describe_exit(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"was killed by signal {name} ({-code})"
    return f"exited with code {code}"


class Supervisor:
    def __init__(self, opts: Options):
        self.opts = opts
        self.label = f"{opts.module}.{opts.qualname}"
        self.worker: _Worker | None = None
        self.count: int | None = None  # inputs in the call, known once a worker has read it
        self.group = 1  # inputs the worker runs at once, known once a worker has read the call
        self.stream = os.path.join(opts.result_dir, STREAM_FILE)
        self.serve: dict[str, object] | None = None  # a "serve" envelope's header (a warm worker)
        self.generator = opts.generator  # or the call's header asks for a stream (a generator method)

    # -- the whole run -------------------------------------------------------
    def run(self) -> int:
        os.makedirs(self.opts.result_dir, exist_ok=True)
        for stale in (RESULT_FILE, STREAM_FILE):  # a restarted task must not leave the last run's files
            try:
                os.unlink(os.path.join(self.opts.result_dir, stale))
            except FileNotFoundError:
                pass
        try:
            call_body = self._read_call()
        except (OSError, ProtocolError, ValueError) as exc:
            message = f"cannot read the call: {exc}"
            return self._finish([Attempt(Status.INFRA, False, message,
                                         outcomes.failure(exc, tb=f"{outcomes.type_name(exc)}: {message}\n"))])
        if self.serve is not None:
            from . import serve

            return serve.run(self.opts, self.serve, call_body or b"")
        if self.generator:
            open(self.stream, "wb").close()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._finish(self._run_inputs(call_body))
        finally:
            if self.worker is not None:
                self.worker.kill()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _read_call(self) -> bytes | None:
        if self.opts.call_path is None:
            return None
        with open(self.opts.call_path, "rb") as fh:
            data = fh.read()
        header, offset = read_header(data)
        if header.get("kind") == "blob":  # a large input, through the blob store (compiler/blob_store.py)
            from .blob_fetch import fetch

            data = fetch(header)
            header, offset = read_header(data)
        if header.get("kind") == "serve":  # a warm worker (serve.py): serves calls over HTTP until idle
            self.serve = header
            return data[offset:]
        if header.get("kind") != "call":
            raise ProtocolError(f"{self.opts.call_path} holds a {header.get('kind')!r} envelope, not a call")
        if header.get("stream") is True:
            self.generator = True
        return data[offset:]

    def _run_inputs(self, call_body: bytes | None) -> list[Attempt | _Range]:
        results: list[Attempt | _Range] = []
        index = 0
        while self.count is None or index < self.count:
            if self._ranged(index):
                assert self.count is not None
                part = self._run_range(call_body, index, self.count)
                results.extend(part)
                last = part[-1] if part else None
                if isinstance(last, Attempt) and last.status is Status.FATAL:
                    results.extend([last] * (self.count - _counted(results)))
                break
            if self._grouped(index):
                assert self.count is not None
                group = self._run_group(call_body, index, min(self.group, self.count - index))
                results.extend(group)
                index += len(group)
                stop = next((r for r in group if r.status in (Status.INFRA, Status.FATAL)), None)
                if stop is not None:
                    if stop.status is Status.FATAL:
                        results.extend([stop] * (self.count - len(results)))
                    break
                continue
            attempt = 1
            result = self._attempt(call_body, index, attempt)
            if result is _GROUPED:
                continue  # a fresh worker that runs groups: this input goes in the next group
            result = self._retried(call_body, index, result)
            if result is None:  # the call has no (more) inputs
                break
            results.append(result)
            if self.count is None:  # no worker ever read the call: nothing more is known to run
                break
            if result.status in (Status.INFRA, Status.FATAL):
                if result.status is Status.FATAL:
                    results.extend([result] * (self.count - len(results)))
                break
            index += 1
        if self.worker is not None:
            self.worker.quit(self.opts.timeout_s)
            self.worker = None
        return results

    def _retried(self, call_body: bytes | None, index: int, result: Attempt | None, attempt: int = 1
                 ) -> Attempt | None:
        """Retry a failed attempt of one input by Modal's rules; the last attempt."""
        while result is not None and result.status is not Status.OK and result.retryable \
                and attempt <= self.opts.retries:
            time.sleep(self.opts.retry_delay_s(attempt))
            attempt += 1
            result = self._attempt(call_body, index, attempt, single=True)
        return result

    # -- a plain function's inputs one after the other, answered in batches (RUN_RANGE) -----------
    def _ranged(self, index: int) -> bool:
        return (self.group == 1 and not self.generator and self.count is not None
                and self.count - index > 1)

    def _run_range(self, call_body: bytes | None, first: int, stop: int) -> list[Attempt | _Range]:
        """Inputs ``first``..``stop - 1``; each still has its own timeout, retries and outcome."""
        out: list[Attempt | _Range] = []
        retries: list[tuple[dict[int, Attempt], int, int]] = []  # (a range's inputs apart, offset, input index)
        stuck_retries: list[tuple[int, int]] = []  # (position in out, input index) of timed-out or crashed inputs
        index = first
        while index < stop:
            if self.worker is None:
                self.worker = _Worker(self.opts, call_body)
                started = self._await(index, 1, 0, starting=True)
                if started is not None:
                    out.append(started)
                    break
            worker = self.worker
            assert worker is not None
            try:
                channel.send(worker.commands, channel.RUN_RANGE, channel.RUN_RANGE_BODY.pack(index, stop - index))
            except BrokenPipeError:
                pass
            while index < stop:
                message = self._range_message(worker)
                if message is None or message is _TIMED_OUT:
                    running = worker.progress.get()
                    stuck = running if index <= running < stop else index
                    if message is _TIMED_OUT:
                        failed = self._timed_out(worker, "", retryable=True, attempt=1)
                    else:
                        text = f"the function's process {describe_exit(worker.reap())} while running input {stuck}"
                        self.worker = None
                        failed = Attempt(Status.USER, True, text,
                                         outcomes.runtime_failure("ExecutionError", text, attempts=1))
                    # The inputs it finished since its last answer are lost with it: they run again.
                    if stuck > index:
                        out.extend(self._run_range(call_body, index, stuck))
                    stuck_retries.append((len(out), stuck))
                    out.append(failed)
                    index = stuck + 1
                    break
                tag, payload = message
                if tag != channel.DONE_RANGE:
                    ok, retryable, summary, outcome = channel.unpack_outcome(payload)
                    worker.reap()
                    self.worker = None
                    out.append(Attempt(Status.INFRA if tag == channel.INFRA else Status.FATAL, False, summary,
                                       outcome))
                    index = stop
                    break
                start, count, values, apart = channel.unpack_range(payload)
                part = _Range(count, values, {})
                for off, packed in apart:
                    ok, retryable, summary, outcome = channel.unpack_outcome(packed)
                    part.apart[off] = Attempt(Status.OK if ok else Status.USER, retryable, summary, outcome)
                    if not ok:
                        retries.append((part.apart, off, start + off))
                out.append(part)
                index = start + count
        for holder, key, input_index in retries:  # the worker is idle now: retry one by one
            holder[key] = self._retried(call_body, input_index, holder[key]) or holder[key]
        for position, input_index in stuck_retries:
            first_try = out[position]
            assert isinstance(first_try, Attempt)
            out[position] = self._retried(call_body, input_index, first_try) or first_try
        return out

    def _range_message(self, worker: _Worker) -> tuple[bytes, bytearray] | None:
        """The worker's next message; ``_TIMED_OUT`` when the input it runs overran (timed from when this
        loop saw it start, within ``RANGE_POLL_S``); None when it died."""
        seen, since = worker.progress.get(), time.monotonic()
        while True:
            left = since + self.opts.timeout_s - time.monotonic()
            if left <= 0:
                return _TIMED_OUT
            readable, _, _ = select.select([worker.receiver.fd], [], [], min(left, _RANGE_POLL_S))
            if readable:
                return worker.receiver.receive()
            running = worker.progress.get()
            if running != seen:
                seen, since = running, time.monotonic()
            elif not worker.alive():  # a child the user started may hold the pipe open after the worker died
                return None

    # -- a group of inputs at once (@modal.concurrent, @modal.batched) ---------------
    def _grouped(self, index: int) -> bool:
        return self.group > 1 and self.count is not None and self.count - index > 1

    def _run_group(self, call_body: bytes | None, first: int, count: int) -> list[Attempt]:
        if self.worker is None:
            self.worker = _Worker(self.opts, call_body)
            started = self._await(first, 1, 0, starting=True)
            if started is not None:
                return [started]
        worker = self.worker
        assert worker is not None
        try:
            channel.send(worker.commands, channel.RUN_MANY, channel.RUN_MANY_BODY.pack(first, count))
        except BrokenPipeError:
            pass
        try:
            message = worker.receiver.receive(time.monotonic() + self.opts.timeout_s)
        except channel.Expired:
            attempts = [self._timed_out(worker, "", retryable=True, attempt=1)] * count
        else:
            if message is None:
                text = f"the function's process {describe_exit(worker.reap())} while running inputs " \
                       f"{first}-{first + count - 1}"
                self.worker = None
                attempts = [Attempt(Status.USER, True, text,
                                    outcomes.runtime_failure("ExecutionError", text, attempts=1))] * count
            elif message[0] == channel.DONE_MANY:
                attempts = []
                for part in channel.unpack_many(message[1]):
                    ok, retryable, summary, outcome = channel.unpack_outcome(part)
                    attempts.append(Attempt(Status.OK if ok else Status.USER, retryable, summary, outcome))
            else:
                ok, retryable, summary, outcome = channel.unpack_outcome(message[1])
                worker.reap()
                self.worker = None
                return [Attempt(Status.INFRA if message[0] == channel.INFRA else Status.FATAL, False, summary,
                                outcome)]
        return [self._retried(call_body, first + i, a) or a for i, a in enumerate(attempts)]

    # -- one attempt of one input ----------------------------------------------
    def _attempt(self, call_body: bytes | None, index: int, attempt: int, *, single: bool = False
                 ) -> Attempt | None:
        stream_size = os.path.getsize(self.stream) if self.generator else 0
        if self.worker is None:
            self.worker = _Worker(self.opts, call_body)
            started = self._await(index, attempt, stream_size, starting=True)
            if started is not None:
                return started
            if self.count is not None and index >= self.count:
                return None
            if not single and self._grouped(index):
                return _GROUPED
        assert self.worker is not None
        try:
            channel.send(self.worker.commands, channel.RUN, channel.RUN_BODY.pack(index, attempt))
        except BrokenPipeError:
            pass  # the worker died after READY: _await reads the end of its pipe and reports how
        return self._await(index, attempt, stream_size, starting=False)

    def _timed_out(self, worker: _Worker, suffix: str, *, retryable: bool, attempt: int) -> Attempt:
        """Kill a worker that ran past the per-attempt timeout; the attempt says where it was stuck."""
        stacks = worker.stacks()
        worker.kill()
        self.worker = None
        text = f"{self.label} timed out after {self.opts.timeout_s:g} seconds{suffix}"
        where = f"\nWhere it was when stopped:\n{outcomes.user_stacks(stacks)}" if stacks else ""
        return Attempt(Status.TIMEOUT, retryable, text, outcomes.runtime_failure(
            "FunctionTimeoutError", text, attempts=attempt, timed_out=True, details=where))

    def _await(self, index: int, attempt: int, stream_size: int, *, starting: bool) -> Attempt | None:
        """Wait for READY (``starting``) or DONE; None when the worker became ready."""
        worker = self.worker
        assert worker is not None
        doing = f"importing {self.opts.module}" if starting else f"running input {index}"
        try:
            message = worker.receiver.receive(time.monotonic() + self.opts.timeout_s)
        except channel.Expired:
            failed = self._timed_out(worker, f" while {doing}" if starting else "", retryable=False,
                                     attempt=attempt)
            # Repaired once the worker is gone: a generator that already yielded is not retried.
            failed.retryable = self._repair_stream(stream_size)
            return failed
        if message is None:
            how = describe_exit(worker.reap())
            self.worker = None
            text = f"the function's process {how} while {doing}"
            retryable = self._repair_stream(stream_size)
            return Attempt(Status.INFRA if starting else Status.USER, retryable and not starting, text,
                           outcomes.runtime_failure("ExecutionError", text, attempts=attempt))
        tag, payload = message
        if tag == channel.READY:
            self.count, self.group = channel.READY_BODY.unpack(payload)
            return None
        ok, retryable, summary, outcome = channel.unpack_outcome(payload)
        if tag == channel.DONE:
            return Attempt(Status.OK if ok else Status.USER, retryable, summary, outcome)
        worker.reap()
        self.worker = None
        return Attempt(Status.INFRA if tag == channel.INFRA else Status.FATAL, False, summary, outcome)

    def _repair_stream(self, size_before: int) -> bool:
        """Cut a frame torn by a killed worker; True when the attempt streamed nothing (so may be retried)."""
        if not self.generator:
            return True
        with open(self.stream, "r+b") as fh:
            fh.seek(size_before)
            end = size_before + frame_boundary(fh.read())
            fh.truncate(end)
        return end == size_before

    # -- the result --------------------------------------------------------------
    def _finish(self, parts: list[Attempt | _Range]) -> int:
        results = _attempts(parts)
        statuses = {r.status for r in results}
        if Status.INFRA in statuses:
            code = exitcodes.INFRA_ERROR
        elif Status.TIMEOUT in statuses:
            code = exitcodes.TIMEOUT
        elif statuses - {Status.OK}:
            code = exitcodes.USER_ERROR
        else:
            code = exitcodes.OK
        failed = [r for r in results if r.status is not Status.OK]
        error = ""
        if failed:
            total = self.count if self.count is not None else _counted(parts)
            error = f"{len(failed)} of {total} inputs failed; first: {failed[0].summary}"
            if Status.INFRA in statuses:
                error = failed[0].summary
        if any(isinstance(p, _Range) for p in parts):
            body: object = outcomes.ranges_body([
                (p.count, p.values, {off: a.outcome for off, a in p.apart.items()}) if isinstance(p, _Range)
                else p.outcome for p in parts])
        else:
            body = outcomes.result_body([r.outcome for r in results])
        path = os.path.join(self.opts.result_dir, RESULT_FILE)
        from .protocol import write_atomic

        write_atomic(path, encode("result", body, exit_code=code, error=error, inputs=_counted(parts)))
        if code != exitcodes.OK:
            print(f"agent_runtime: {self.label}: {error} (exit {code})", file=sys.stderr, flush=True)
        return code

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Nomad (or the local backend) stops the task: take the worker and what it started
        # down with us, and reap it, so no process outlives the task, not even as a zombie.
        worker = self.worker
        if worker is not None:
            for send in (os.killpg, os.kill):
                try:
                    send(worker.pid, signal.SIGTERM)
                except OSError:
                    pass
            deadline = time.monotonic() + _GRACE_S
            while worker.alive() and time.monotonic() < deadline:
                time.sleep(0.01)
            worker.kill()
        os._exit(128 + signum)


def run(opts: Options) -> int:
    return Supervisor(opts).run()

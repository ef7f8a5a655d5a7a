"""The local backend (the embedded default): compiled jobs run as processes on this machine.

Runs on the client. Each dispatch gets Nomad's allocation layout
(``alloc/data``, ``alloc/logs``, ``<task>/local``, ``<task>/secrets``,
``<task>/tmp``), its environment (``NOMAD_*``), the dispatch payload file and
rendered templates, and runs the task's command like ``raw_exec`` does (a
docker task runs its command with this machine's Python instead of the
image). Secrets come from the local store; volumes are directories under
``$MODALC_HOME/volumes`` made visible at each mount path. A service job (a
web endpoint) starts with the run as one long-running process on a free
local port (``NOMAD_PORT_<label>`` …, bound to 127.0.0.1); ``web_url`` waits
for its check to pass and returns ``http://127.0.0.1:<port>``.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from typing import IO

from agent_runtime.protocol import RESULT_FILE, STREAM_FILE

from .. import secret_store
from ..errors import UserError
from ..home import subdir
from ..ir import CompiledApp, FunctionJob, Task, Template
from ..lower.job import KILL_TIMEOUT_S
from .base import AllocResult, Backend, Dispatch
from .forking import RUNTIME_ROOT, ForkedProcess, ForkServer
from .listening import free_port, is_listening, port_env, service_of, wait_ready

_SECRET_VAR = re.compile(r'nomadVar "modalc/secrets/([^"]+)"')
_RUN_VAR = re.compile(r'nomadVar \(printf "modalc/runs/%s/([^"]+)"')
# A Variable path built from the task's environment: nomad/jobs/<parent job ID> (the warm workers' token).
_ENV_VAR = re.compile(r'nomadVar \(printf "([^"%]*)%s([^"%]*)" \(env "(\w+)"\)\)')
_INTERP = re.compile(r"\$\{(NOMAD_[A-Za-z0-9_]+)\}")


class LogSink:
    """Writes allocation output to the terminal, each line prefixed with ``[function]``."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.lock = threading.Lock()

    def line(self, prefix: str, text: str, stream: IO[str]) -> None:
        if self.quiet:
            return
        with self.lock:
            stream.write(f"[{prefix}] {text}")
            if not text.endswith("\n"):
                stream.write("\n")
            stream.flush()

    def note(self, text: str) -> None:
        """A note from modalc itself (not the allocation's output), on stderr."""
        with self.lock:
            sys.stderr.write(f"note: {text}\n")
            sys.stderr.flush()


@dataclass
class _Alloc:
    dispatch: Dispatch
    alloc_dir: str
    task_dir: str
    process: subprocess.Popen[bytes] | ForkedProcess
    logs_done: threading.Event = field(default_factory=threading.Event)  # both pipes drained


class _Output:
    """One pipe of an allocation being copied to its log file and the sink, line by line."""

    def __init__(self, pipe: IO[bytes], log_path: str, prefix: str, stream: IO[str], alloc: _Alloc,
                 open_pipes: list[int]):
        self.pipe = pipe
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed when the pipe ends
        self.prefix = prefix
        self.stream = stream
        self.alloc = alloc
        self.open_pipes = open_pipes  # shared by the allocation's two pipes: [how many are still open]
        self.partial = b""


class _LogPump:
    """Copies the output of every allocation of a backend in one long-lived thread.

    A thread per pipe cost each dispatch two thread starts (a few ms each on a
    busy machine, on the path of every ``.remote()``); this one starts once.
    """

    def __init__(self, sink: LogSink):
        self.sink = sink
        self._lock = threading.Lock()
        self._open()

    def _open(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread: threading.Thread | None = None
        self._closing = False
        self._released = False

    def add(self, alloc: _Alloc, pipes: list[tuple[IO[bytes], str, IO[str]]], prefix: str) -> None:
        open_pipes = [len(pipes)]
        with self._lock:
            if self._released:  # a dispatch that raced with stop(): its output is still copied
                self._open()
            self._closing = False
            for pipe, log_path, stream in pipes:
                self.selector.register(pipe, selectors.EVENT_READ, _Output(pipe, log_path, prefix, stream, alloc,
                                                                           open_pipes))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="modalc-local-logs", daemon=True)
                self._thread.start()
            os.write(self._wake_w, b"x")  # a selector that is not epoll may not see fds added while it waits

    def close(self) -> None:
        """End the thread once the pipes it still copies have ended (at once when there are none)."""
        with self._lock:
            if self._released:
                return
            self._closing = True
            if self._thread is None:
                self._release()
            else:
                os.write(self._wake_w, b"x")

    def _release(self) -> None:  # with the lock held
        self._released = True
        self.selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _run(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.data is None:
                    os.read(self._wake_r, 4096)
                    continue
                out: _Output = key.data
                try:
                    data = os.read(key.fd, 65536)
                except OSError:
                    data = b""
                if data:
                    self._copy(out, data)
                else:
                    self._close(out)
            with self._lock:
                if self._closing and len(self.selector.get_map()) == 1:  # only the wake-up pipe is left
                    self._release()
                    return

    def _copy(self, out: _Output, data: bytes) -> None:
        try:
            out.log.write(data)
            out.log.flush()
            lines = (out.partial + data).split(b"\n")
            out.partial = lines.pop()
            for raw in lines:
                self.sink.line(out.prefix, (raw + b"\n").decode("utf-8", "replace"), out.stream)
        except Exception:  # a closed terminal stream or a full disk must not stop the other allocations' logs
            out.partial = b""

    def _close(self, out: _Output) -> None:
        with self._lock:
            self.selector.unregister(out.pipe)
        try:
            if out.partial:
                self.sink.line(out.prefix, out.partial.decode("utf-8", "replace"), out.stream)
        except Exception:
            pass
        finally:
            out.log.close()
            out.pipe.close()
            out.open_pipes[0] -= 1
            if not out.open_pipes[0]:
                out.alloc.logs_done.set()


def interpolate(text: str, env: dict[str, str]) -> str:
    """Nomad's runtime interpolation of ``${NOMAD_*}`` in args and env values."""
    return _INTERP.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def _render_template(t: Template, run_secrets: dict[str, dict[str, str]],
                     variables: dict[str, dict[str, str]] | None = None,
                     env: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """(file text, env vars it contributes). Code templates are literal; secret templates read the store,
    run-scoped ones (``modalc/runs/<run>/<id>``) the values ``run_secrets`` holds in memory for this run,
    ``nomad/jobs/<parent job ID>`` the Variables this run wrote (``variables``)."""
    m = _SECRET_VAR.search(t.data) if t.left_delimiter is None else None
    run = _RUN_VAR.search(t.data) if t.left_delimiter is None else None
    by_env = _ENV_VAR.search(t.data) if t.left_delimiter is None and not (m or run) else None
    if by_env:
        items = (variables or {}).get(by_env.group(1) + (env or {}).get(by_env.group(3), "") + by_env.group(2), {})
        return "".join(f"{k}={v}\n" for k, v in sorted(items.items())), (items if t.env else {})
    if m or run:
        items = secret_store.read(m.group(1)) if m else run_secrets.get(run.group(1), {}) if run else {}
        text = "".join(f"{k}={v}\n" for k, v in sorted(items.items()))
        return text, (items if t.env else {})
    return t.data, {}


class LocalBackend(Backend):
    """Runs each dispatch as a local process with Nomad's allocation layout."""

    name = "local"
    max_payload_bytes = None
    supports_warm = True
    uses_call_broker = True

    def __init__(self, *, sink: LogSink | None = None, keep_allocs: bool = False,
                 ports: dict[str, int] | None = None):
        self.sink = sink or LogSink()
        self.keep_allocs = keep_allocs
        self.run_dir = ""
        self.run_id = ""
        self.app: CompiledApp | None = None
        self._allocs: dict[str, _Alloc] = {}
        self._lock = threading.Lock()
        self._links: list[str] = []
        self._stopped = False
        self.run_secrets: dict[str, dict[str, str]] = {}  # run-scoped secret ID -> values (compiler/run_secrets.py)
        self.variables: dict[str, dict[str, str]] = {}  # Variables the run wrote (put_job_variable), in memory only
        self._ports: dict[str, dict[str, int]] = {}  # a dispatched allocation's services -> its local ports
        self._pump = _LogPump(self.sink)
        self._forks = ForkServer()  # allocations start as its children: no interpreter start-up per dispatch
        self._services: dict[str, tuple[Dispatch, int]] = {}  # function tag -> (its allocation, its local port)
        self.preferred_ports = dict(ports or {})  # function tag -> port to reuse (modalc serve keeps its URLs)

    # -- lifecycle --------------------------------------------------------------
    def start(self, app: CompiledApp, *, run_id: str) -> None:
        self.app = app
        self.run_id = run_id
        self.run_dir = tempfile.mkdtemp(prefix=f"modalc-{run_id}-", dir=subdir("runs"))
        for fn in app.functions:
            for task in self._tasks(fn):
                self._link_volumes(fn, task)
                if task.config.network_mode == "none":
                    self.sink.note(f"{fn.tag}: block_network=True is not enforced by the local backend "
                                   "(on Nomad, docker runs the task with network_mode = \"none\")")
        for fn in app.functions:
            if is_listening(fn):
                self._start_service(fn)

    def add_function(self, fn: FunctionJob) -> None:
        for task in self._tasks(fn):
            self._link_volumes(fn, task)
        if is_listening(fn):
            self._start_service(fn)

    # -- listening allocations (service jobs) ------------------------------------
    def _start_service(self, fn: FunctionJob) -> None:
        """One allocation of a service job (locally one, whatever its count), on a free local port."""
        port = free_port(prefer=self.preferred_ports.get(fn.tag))
        env = {**port_env(service_of(fn).port, port), "MODALC_BIND_HOST": "127.0.0.1"}
        dispatch = self._launch(fn, b"", call_id=f"service-{fn.tag}", child_id=fn.job.id, extra_env=env, fork=False)
        with self._lock:
            self._services[fn.tag] = (dispatch, port)

    def web_url(self, fn: FunctionJob, timeout_s: float = 60.0) -> str:
        """``http://127.0.0.1:<port>`` of ``fn``'s endpoint, once its service check passes."""
        with self._lock:
            entry = self._services.get(fn.tag)
        if entry is None:
            raise UserError(f"{fn.tag} is not a web endpoint of this run")
        dispatch, port = entry
        alloc = self._get(dispatch)
        wait_ready(fn, "127.0.0.1", port, alive=lambda: alloc.process.poll() is None, timeout_s=timeout_s)
        return f"http://127.0.0.1:{port}"

    def service_ports(self) -> dict[str, int]:
        with self._lock:
            return {tag: port for tag, (_, port) in self._services.items()}

    def service_processes(self) -> dict[str, subprocess.Popen[bytes]]:
        """Function tag -> the process serving its endpoint."""
        with self._lock:
            return {tag: process for tag, (d, _) in self._services.items() if d.dispatch_id in self._allocs
                    and isinstance(process := self._allocs[d.dispatch_id].process, subprocess.Popen)}

    def _tasks(self, fn: FunctionJob) -> list[Task]:
        return [t for g in fn.job.groups for t in g.tasks]

    def _link_volumes(self, fn: FunctionJob, task: Task) -> None:
        sources = {v.name: v.source for g in fn.job.groups for v in g.volumes}
        for mount in task.volume_mounts:
            store = subdir("volumes", sources.get(mount.volume, mount.volume))
            dest = mount.destination
            if os.path.islink(dest):
                if os.path.realpath(dest) == os.path.realpath(store):
                    continue
                raise UserError(f"{dest} already links to {os.readlink(dest)}, not to volume {mount.volume!r}",
                                hint="remove the link, or mount the volume elsewhere")
            if os.path.exists(dest):
                raise UserError(f"cannot mount volume {mount.volume!r} at {dest}: the path exists on this machine",
                                hint="the local backend shows volumes by linking the mount path to "
                                f"{store}; choose a mount path that does not exist here")
            try:
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                os.symlink(store, dest)
            except OSError as exc:
                raise UserError(f"cannot mount volume {mount.volume!r} at {dest}: {exc.strerror}",
                                hint=f"the local backend links the mount path to {store}; "
                                "it needs write access to the parent folder") from None
            self._links.append(dest)

    def stop(self, *, detach: bool = False) -> None:
        if self._stopped:
            return
        self._stopped = True
        with self._lock:
            allocs = list(self._allocs.values())
        for alloc in allocs:
            self._kill(alloc)
        for alloc in allocs:
            alloc.logs_done.wait(timeout=5)
        self._pump.close()
        self._forks.close()
        for link in self._links:
            try:
                os.unlink(link)
            except OSError:
                pass
        if self.run_dir and not self.keep_allocs:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    # -- allocations ------------------------------------------------------------
    def dispatch(self, fn: FunctionJob, payload: bytes, *, call_id: str) -> Dispatch:
        if self._stopped:
            raise UserError("the app run has ended; no more calls can be made")
        if is_listening(fn):
            raise UserError(f"{fn.tag} is a web endpoint: call it over HTTP (its get_web_url())")
        # A dispatch that listens (a warm worker, compiler/warm_pool.py) gets its group's ports too.
        ports = {p.label: free_port() for g in fn.job.groups for p in g.network_ports}
        env = {k: v for label, port in ports.items() for k, v in port_env(label, port).items()}
        dispatch = self._launch(fn, payload, call_id=call_id, child_id=f"{fn.job.id}/dispatch-{call_id}",
                                extra_env={**env, "MODALC_BIND_HOST": "127.0.0.1"} if ports else None)
        if ports:
            with self._lock:
                self._ports[dispatch.dispatch_id] = {s.name: ports[s.port] for g in fn.job.groups
                                                     for s in g.services if s.port in ports}
        return dispatch

    def put_job_variable(self, fn: FunctionJob, items: dict[str, str]) -> None:
        self.variables[f"nomad/jobs/{fn.job.id}"] = dict(items)

    def endpoint(self, dispatch: Dispatch, service: str) -> tuple[str, int] | None:
        """The local port of ``dispatch``'s allocation for ``service``'s port label, while it runs."""
        with self._lock:
            alloc = self._allocs.get(dispatch.dispatch_id)
            port = self._ports.get(dispatch.dispatch_id, {}).get(service)
        if alloc is None or alloc.process.poll() is not None or port is None:
            return None
        return "127.0.0.1", port

    def _launch(self, fn: FunctionJob, payload: bytes, *, call_id: str, child_id: str,
                extra_env: dict[str, str] | None = None, fork: bool = True) -> Dispatch:
        """Start one allocation of ``fn`` as a local process (a service's: exec'd, a ``Popen`` to its owner)."""
        group = fn.job.groups[0]
        task = group.tasks[0]
        alloc_id = str(uuid.uuid4())
        alloc_dir = os.path.join(self.run_dir, alloc_id)
        task_dir = os.path.join(alloc_dir, task.name)
        for sub in ("alloc/data", "alloc/logs", "alloc/tmp", f"{task.name}/local", f"{task.name}/secrets",
                    f"{task.name}/tmp", f"{task.name}/private"):
            os.makedirs(os.path.join(alloc_dir, sub), exist_ok=True)
        env = self._environment(fn, task, alloc_id, child_id, alloc_dir, task_dir)
        env.update(extra_env or {})
        for t in task.templates:
            text, extra = _render_template(t, self.run_secrets, self.variables, env)
            dest = os.path.join(task_dir, t.destination)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "w", encoding="utf-8") as fh:
                fh.write(text)
            env.update(extra)
        if task.dispatch_payload_file and payload:
            with open(os.path.join(task_dir, "local", task.dispatch_payload_file), "wb") as fh:
                fh.write(payload)
        # raw_exec runs the command as given; a docker task runs here with this machine's Python.
        command = sys.executable if task.config.command in ("python", "python3") else task.config.command
        argv = [command, *(interpolate(a, env) for a in task.config.args)]
        process: subprocess.Popen[bytes] | ForkedProcess | None = (
            self._forks.spawn(argv, task_dir, env) if fork else None)
        if process is None:  # as the fork server would have started it
            process = subprocess.Popen(argv, cwd=task_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, start_new_session=True)
        dispatch = Dispatch(function=fn.tag, dispatch_id=alloc_id, call_id=call_id)
        alloc = _Alloc(dispatch=dispatch, alloc_dir=alloc_dir, task_dir=task_dir, process=process)
        logs = os.path.join(alloc_dir, "alloc", "logs")
        assert process.stdout is not None and process.stderr is not None
        self._pump.add(alloc, [(process.stdout, os.path.join(logs, f"{task.name}.stdout.0"), sys.stdout),
                               (process.stderr, os.path.join(logs, f"{task.name}.stderr.0"), sys.stderr)], fn.tag)
        with self._lock:
            self._allocs[alloc_id] = alloc
        return dispatch

    def _environment(self, fn: FunctionJob, task: Task, alloc_id: str, child_id: str, alloc_dir: str,
                     task_dir: str) -> dict[str, str]:
        job = fn.job
        group = job.groups[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOMAD_", "MODALC_"))}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (RUNTIME_ROOT, os.environ.get("PYTHONPATH", "")) if p)
        nomad = {
            "NOMAD_ALLOC_DIR": os.path.join(alloc_dir, "alloc"),
            "NOMAD_TASK_DIR": os.path.join(task_dir, "local"),
            "NOMAD_SECRETS_DIR": os.path.join(task_dir, "secrets"),
            "NOMAD_ALLOC_ID": alloc_id,
            "NOMAD_SHORT_ALLOC_ID": alloc_id[:8],
            "NOMAD_ALLOC_NAME": f"{child_id}.{group.name}[0]",
            "NOMAD_ALLOC_INDEX": "0",
            "NOMAD_TASK_NAME": task.name,
            "NOMAD_GROUP_NAME": group.name,
            "NOMAD_JOB_ID": child_id,
            "NOMAD_JOB_NAME": child_id,
            "NOMAD_JOB_PARENT_ID": job.id,
            "NOMAD_DC": job.datacenters[0] if job.datacenters and job.datacenters[0] != "*" else "local",
            "NOMAD_REGION": job.region or "global",
            "NOMAD_NAMESPACE": job.namespace or "default",
            "NOMAD_CPU_LIMIT": str(task.resources.cpu_mhz),
            "NOMAD_MEMORY_LIMIT": str(task.resources.memory_mib),
        }
        for key, value in job.meta:
            nomad[f"NOMAD_META_{key}"] = value
            nomad[f"NOMAD_META_{key.upper()}"] = value
        env.update(nomad)
        env.update(self.call_env)  # the run's call broker, for calls made inside the allocation
        env.update({k: interpolate(v, env) for k, v in task.env})
        return env

    def _get(self, dispatch: Dispatch) -> _Alloc:
        with self._lock:
            return self._allocs[dispatch.dispatch_id]

    def wait(self, dispatch: Dispatch, timeout: float | None = None) -> AllocResult | None:
        alloc = self._get(dispatch)
        try:
            code = alloc.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        alloc.logs_done.wait()
        result_path = os.path.join(alloc.alloc_dir, "alloc", "data", RESULT_FILE)
        result = None
        if os.path.exists(result_path):
            with open(result_path, "rb") as fh:
                result = fh.read()
        failure = ""
        if code < 0:
            failure = f"the allocation's process was killed by signal {signal.Signals(-code).name}"
        elif result is None:
            failure = f"the allocation's process exited with code {code} without writing a result"
        if not self.keep_allocs:
            with self._lock:
                self._allocs.pop(dispatch.dispatch_id, None)
            shutil.rmtree(alloc.alloc_dir, ignore_errors=True)
        return AllocResult(exit_code=code, result=result, failure=failure)

    def read_stream(self, dispatch: Dispatch, offset: int) -> tuple[bytes, bool]:
        alloc = self._get(dispatch)
        done = alloc.process.poll() is not None
        path = os.path.join(alloc.alloc_dir, "alloc", "data", STREAM_FILE)
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                return fh.read(), done
        except FileNotFoundError:
            return b"", done

    def cancel(self, dispatch: Dispatch) -> None:
        with self._lock:
            alloc = self._allocs.get(dispatch.dispatch_id)
        if alloc is not None:
            self._kill(alloc)

    @staticmethod
    def _kill(alloc: _Alloc) -> None:
        if alloc.process.poll() is not None:
            return
        try:
            os.killpg(alloc.process.pid, signal.SIGTERM)
            alloc.process.wait(timeout=KILL_TIMEOUT_S)  # as Nomad waits the task's kill_timeout
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(alloc.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            alloc.process.wait()
        except PermissionError:
            alloc.process.kill()

    def explain(self, exc: BaseException) -> None:
        """A missing module here is usually one the function's image would install (it is not used here)."""
        if isinstance(exc, ImportError) and exc.name and not getattr(exc, "__modalc_explained__", False):
            exc.__modalc_explained__ = True  # type: ignore[attr-defined]
            top = exc.name.split(".")[0]
            exc.add_note(f"note: the local backend runs functions with this machine's Python ({sys.executable}), "
                         f"not in their images: install the package that provides {top!r} here (pip install ...), "
                         "or run on Nomad, where the function runs in its image")

    def alloc_count(self) -> int:
        with self._lock:
            return len(self._allocs)



"""Starting the local backend's allocations through its fork server (agent_runtime/forkserver.py).

Runs on the client. ``ForkServer.spawn`` gives a ``ForkedProcess``, which
the local backend uses as it would a ``subprocess.Popen`` (``pid``,
``stdout``, ``stderr``, ``poll``, ``wait``, ``kill``): the allocation is the
server's child, so its exit status comes back over the connection that
started it. ``spawn`` returns None, and the backend execs the command as
before, when the fork server would not give the same process: a command
other than ``python -m agent_runtime`` with this interpreter, other
interpreter-start variables (``PYTHON*``), the server unable to start, or
``MODALC_LOCAL_FORK=0``. It starts with the first allocation (a build never
pays for it) and ends with the backend.
"""

from __future__ import annotations

import os
import pickle
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO

import agent_runtime
from agent_runtime.forkserver import WORD

READY_TIMEOUT_S = 10.0
RUNTIME_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(agent_runtime.__file__)))  # on allocations' path


def _start_vars(env: dict[str, str]) -> dict[str, str]:
    """The variables an interpreter reads when it starts: a forked child cannot take other values of them."""
    return {k: v for k, v in env.items() if k.startswith("PYTHON")}


class ForkedProcess:
    """An allocation the fork server started: what the local backend reads of a ``Popen``."""

    def __init__(self, conn: socket.socket, pid: int, stdout: IO[bytes], stderr: IO[bytes]):
        self._conn = conn
        self._lock = threading.Lock()
        self.pid = pid
        self.stdout: IO[bytes] | None = stdout
        self.stderr: IO[bytes] | None = stderr
        self.returncode: int | None = None

    def _read_status(self, timeout: float | None) -> int | None:
        if self.returncode is not None:
            return self.returncode
        # One thread reads the status; a poll meanwhile sees the process as running.
        start = time.monotonic()
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            return None
        try:
            if self.returncode is None:
                left = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
                ready, _, _ = select.select([self._conn], [], [], left)
                if not ready:
                    return None
                data = b""
                while len(data) < WORD.size:
                    part = self._conn.recv(WORD.size - len(data))
                    if not part:
                        break
                    data += part
                self._conn.close()
                # No status (the server died): reported as a killed process, as a lost allocation is.
                status = WORD.unpack(data)[0] if len(data) == WORD.size else None
                self.returncode = -signal.SIGKILL if status is None else os.waitstatus_to_exitcode(status)
            return self.returncode
        finally:
            self._lock.release()

    def poll(self) -> int | None:
        return self._read_status(0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._read_status(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(["agent_runtime"], timeout or 0)
        return code

    def kill(self) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class ForkServer:
    """One fork server per local backend, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._dir = ""
        self._path = ""
        self._start_env: dict[str, str] = {}
        self._failed = os.environ.get("MODALC_LOCAL_FORK", "1") == "0"

    def spawn(self, argv: list[str], cwd: str, env: dict[str, str]) -> ForkedProcess | None:
        if self._failed or argv[:3] != [sys.executable, "-m", "agent_runtime"]:
            return None
        if not self._ready(env) or _start_vars(env) != self._start_env:
            return None
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self._path)
            data = pickle.dumps((argv, cwd, env), protocol=pickle.HIGHEST_PROTOCOL)
            socket.send_fds(conn, [WORD.pack(len(data))], [null, out_w, err_w])
            conn.sendall(data)
            head = b""
            while len(head) < WORD.size:
                part = conn.recv(WORD.size - len(head))
                if not part:
                    raise ConnectionError("the fork server closed the connection")
                head += part
        except OSError:
            conn.close()
            for fd in (out_r, err_r):
                os.close(fd)
            self._failed = True  # exec from now on
            return None
        finally:
            for fd in (null, out_w, err_w):
                os.close(fd)
        (pid,) = WORD.unpack(head)
        return ForkedProcess(conn, pid, open(out_r, "rb"), open(err_r, "rb"))  # the log pump closes them

    def _ready(self, env: dict[str, str]) -> bool:
        with self._lock:
            if self._process is not None:
                return True
            if self._failed:
                return False
            self._dir = tempfile.mkdtemp(prefix="modalc-fork-")  # short: a socket path holds at most 107 bytes
            self._path = os.path.join(self._dir, "s")
            self._start_env = _start_vars(env)
            server_env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
                          **self._start_env}
            try:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "agent_runtime.forkserver", self._path], cwd=RUNTIME_ROOT, env=server_env,
                    stdin=subprocess.PIPE, start_new_session=True)
            except OSError:
                self._failed = True
                return False
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not os.path.exists(self._path):
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self._failed = True
                    self._process = None
                    return False
                time.sleep(0.002)
            return True

    def close(self) -> None:
        with self._lock:
            process, self._process = self._process, None
            self._failed = True
        if process is not None:
            assert process.stdin is not None
            process.stdin.close()  # the server kills what it still runs and exits
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

"""The local backend's fork server: starts each allocation's ``python -m agent_runtime`` by forking.

Runs on the machine of the local backend (compiler/backends/forking.py),
as the parent of its allocations; never inside a Nomad allocation. A fresh
interpreter costs ~45 ms before ``agent_runtime`` has read a byte, and its
imports ~25 ms more, on every ``.remote()`` and every ``.map`` chunk. This
process pays them once: it imports the runtime (and nothing of the user's),
then for each request forks a child that becomes what ``python -m
agent_runtime ARGS`` would have been: its own session, the request's standard
streams, working folder, environment, ``sys.argv`` and ``sys.path[0]``, the
signal dispositions of a fresh interpreter. The client falls back to a real
``exec`` whenever that would differ (another command, other ``PYTHON*``
variables, which the interpreter reads only at start). One difference stays,
and is documented: the children share this process's hash seed.

Protocol, one Unix-socket connection per child: the client sends a pickled
``(argv, cwd, env)`` with the child's stdin, stdout and stderr as ancillary
file descriptors; this process answers the child's pid (8 bytes), then its
wait status (8 bytes) when it ends, and closes the connection. It ends when
its stdin (a pipe from the client) closes.
"""

from __future__ import annotations

import os
import pickle
import selectors
import signal
import socket
import struct
import sys

WORD = struct.Struct(">q")
STOP_GRACE_S = 6.0  # a child's time to end after SIGTERM when the client is gone (the shim gives its worker 5 s)
REQUEST_LIMIT = 1 << 24  # bytes of one pickled request at most (an environment is a few KiB)


def _preload() -> None:
    """What every allocation imports before the user's module, imported once here (none of these read the
    environment when imported, so a child sees its own)."""
    import faulthandler
    import mmap
    import runpy

    import agent_runtime.args  # not agent_runtime.__main__: runpy runs that afresh in each child
    import agent_runtime.outcomes
    import agent_runtime.sdk
    import agent_runtime.sdk.binding
    import agent_runtime.shim
    import agent_runtime.worker

    del faulthandler, mmap, runpy, agent_runtime  # imported for the children, not used here


def _receive(conn: socket.socket) -> tuple[tuple[list[str], str, dict[str, str]], list[int]]:
    head, fds, _, _ = socket.recv_fds(conn, 8, 3)
    if len(head) < 8:
        raise EOFError("short request")
    (size,) = WORD.unpack(head)
    if not 0 < size <= REQUEST_LIMIT:
        raise ValueError(f"bad request size {size}")
    data = bytearray()
    while len(data) < size:
        part = conn.recv(size - len(data))
        if not part:
            raise EOFError("short request")
        data += part
    argv, cwd, env = pickle.loads(bytes(data))  # from the client that started this process, on its socket only
    return (list(argv), str(cwd), dict(env)), fds


def _become(request: tuple[list[str], str, dict[str, str]], fds: list[int], script_dir: str) -> None:
    """In the child: turn into ``python -m agent_runtime ARGS``; never returns."""
    argv, cwd, env = request
    code = 1
    try:
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        # As a fresh interpreter has them: SIGINT raises KeyboardInterrupt, SIGPIPE is ignored, the rest default.
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        if sys.path and sys.path[0] == script_dir:  # `python -m` puts the working folder first
            sys.path[0] = os.getcwd()
        import runpy

        sys.argv = [argv[0], *argv[3:]]
        try:
            runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(path: str) -> None:
    script_dir = sys.path[0] if sys.path else ""
    _preload()
    import gc

    gc.freeze()  # a child's collections then never write to (and so copy) the pages of what it inherited
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".new")
    listener.listen(64)
    os.rename(path + ".new", path)  # the client waits for the path: it then accepts connections
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake_w)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_r, selectors.EVENT_READ, "child")
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "client")
    children: dict[int, socket.socket] = {}
    while True:
        for key, _ in selector.select():
            if key.data == "client":  # the client is gone (or done): so are this process and its children
                _stop(children)
                os._exit(0)
            if key.data == "child":
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
                _reap(children)
                continue
            conn, _ = listener.accept()
            try:
                request, fds = _receive(conn)
            except (OSError, EOFError, ValueError, pickle.UnpicklingError):
                conn.close()
                continue
            pid = os.fork()
            if pid == 0:
                selector.close()
                listener.close()
                conn.close()
                for other in children.values():
                    other.close()
                os.close(wake_r)
                os.close(wake_w)
                _become(request, fds, script_dir)
            for fd in fds:
                os.close(fd)
            children[pid] = conn
            try:
                conn.sendall(WORD.pack(pid))
            except OSError:
                pass
        _reap(children)


def _stop(children: dict[int, socket.socket]) -> None:
    """Stop every child as Nomad stops a task: SIGTERM (its supervisor then stops the user's process group),
    SIGKILL after the grace."""
    import time

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in list(children):
            try:
                os.killpg(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + STOP_GRACE_S
        while children and time.monotonic() < deadline:
            _reap(children)
            time.sleep(0.01)


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            try:
                conn.sendall(WORD.pack(status))
            except OSError:
                pass
            conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])

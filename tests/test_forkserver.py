"""The local backend's fork server: a forked allocation is the process an exec would have started.

Real runs on the local backend: the function reports what its process sees
(working folder, ``sys.argv``, ``sys.path[0]``, environment, session, signal
dispositions) with the fork server and with ``MODALC_LOCAL_FORK=0``, and the
two must agree; the process tree shows which one started it; a function
whose environment sets a ``PYTHON*`` variable is exec'd (a fork cannot take
it); the server ends with the run, and with its client when that is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agent_runtime import protocol
from agent_runtime.protocol import Call, Inputs
from compiler.backends.local import LocalBackend, LogSink
from compiler.run import app_run
from tests.helpers import compile_for_run, running, stops_within

ROOT = Path(__file__).resolve().parents[1]

APP = textwrap.dedent('''
    import os
    import signal
    import sys

    import modal

    app = modal.App("forks")


    def _parent(pid):
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])


    def _report():
        supervisor = os.getppid()
        return {
            "cwd": os.getcwd(),
            "argv": sys.argv[1:],
            "argv0": os.path.basename(sys.argv[0]),
            "path0": sys.path[0],
            "alloc_dir": os.environ["NOMAD_ALLOC_DIR"],
            "task": os.environ["NOMAD_TASK_NAME"],
            "in_container": modal.is_local(),
            "own_session": os.getsid(supervisor) == supervisor,
            "sigint": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
            "sigpipe": signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN,
            "sigterm": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
            "starter": _parent(supervisor),
            "main": sys.modules["__main__"].__spec__.name if sys.modules["__main__"].__spec__ else None,
        }


    @app.function()
    def report():
        return _report()


    @app.function(env={"PYTHONHASHSEED": "0"})
    def seeded():
        return _report()


    @app.function()
    def sleeper(path):
        with open(path, "w") as fh:
            fh.write(str(os.getpid()))
        import time
        time.sleep(60)
''')


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fork: bool
         ) -> tuple[dict[str, Any], dict[str, Any], int, str]:
    monkeypatch.setenv("MODALC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODALC_LOCAL_FORK", "1" if fork else "0")
    data = compile_for_run(tmp_path, "forks", APP)
    module = data.script.module
    backend = LocalBackend(sink=LogSink(quiet=True))
    with app_run(data.compiled, data.graph, backend=backend, quiet=True):
        plain, seeded = module.report.remote(), module.seeded.remote()
        server = backend._forks._process
        server_pid = server.pid if server is not None else -1
    return plain, seeded, server_pid, backend._forks._dir


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on how the allocation started (paths are per allocation, so made relative)."""
    alloc = os.path.dirname(report["alloc_dir"])
    out = {k: v for k, v in report.items() if k not in ("starter", "alloc_dir")}
    out["cwd"] = os.path.relpath(report["cwd"], alloc)
    out["path0"] = os.path.relpath(report["path0"], alloc)
    out["argv"] = [os.path.relpath(a, alloc) if a.startswith(alloc) else a for a in report["argv"]]
    return out


def test_a_forked_allocation_sees_what_an_execd_one_sees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fork").mkdir()
    (tmp_path / "exec").mkdir()
    forked, _, server_pid, _ = _run(tmp_path / "fork", monkeypatch, fork=True)
    execd, _, no_server, _ = _run(tmp_path / "exec", monkeypatch, fork=False)
    assert server_pid > 0 and no_server == -1
    assert forked["starter"] == server_pid  # the supervisor is the fork server's child ...
    assert execd["starter"] == os.getpid()  # ... or, exec'd, this process's
    assert _comparable(forked) == _comparable(execd)
    assert forked["argv0"] == "__main__.py" and forked["main"] == "agent_runtime.__main__"
    assert forked["own_session"] and forked["sigint"] and forked["sigpipe"] and forked["sigterm"]
    assert forked["in_container"] is False


def test_an_interpreter_start_variable_in_the_environment_is_execd(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    plain, seeded, server_pid, _ = _run(tmp_path, monkeypatch, fork=True)
    assert plain["starter"] == server_pid
    assert seeded["starter"] == os.getpid()  # PYTHONHASHSEED=0 is read at start: this one was exec'd


def test_the_fork_server_ends_with_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, server_pid, folder = _run(tmp_path, monkeypatch, fork=True)
    assert stops_within(server_pid)
    assert folder and not os.path.exists(folder)  # its socket's folder too


CLIENT = textwrap.dedent('''
    import os, sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from compiler.backends.local import LocalBackend, LogSink
    from compiler.run import app_run
    from tests.helpers import compile_for_run

    tmp = Path(sys.argv[1])
    data = compile_for_run(tmp, "forks", {app!r})
    backend = LocalBackend(sink=LogSink(quiet=True))
    with app_run(data.compiled, data.graph, backend=backend, quiet=True):
        data.script.module.sleeper.spawn(str(tmp / "pid"))
        while not (tmp / "pid").exists() or not (tmp / "pid").read_text():
            time.sleep(0.02)
        print(backend._forks._process.pid, (tmp / "pid").read_text(), flush=True)
        time.sleep(120)
''')


def test_a_killed_client_takes_the_fork_server_and_its_allocations_along(tmp_path: Path) -> None:
    env = {**os.environ, "MODALC_HOME": str(tmp_path / "home"), "MODALC_LOCAL_FORK": "1"}
    env.pop("NOMAD_ADDR", None)
    client = subprocess.Popen([sys.executable, "-c", CLIENT.format(root=str(ROOT), app=APP), str(tmp_path)],
                              env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout is not None
        server_pid, alloc_pid = map(int, client.stdout.readline().split())
        assert running(server_pid) and running(alloc_pid)
        client.send_signal(signal.SIGKILL)  # no cleanup of its own: the server sees its stdin close
        client.wait(timeout=10)
        assert stops_within(server_pid, 10)
        assert stops_within(alloc_pid, 10)
    finally:
        client.kill()
        client.wait()
        if client.stdout is not None:
            client.stdout.close()


def test_map_inputs_travel_as_one_list_of_arguments_and_one_shared_dict() -> None:
    shared = {"scale": 3}
    inputs = Inputs([(1,), (2,), (3,)], shared)
    assert inputs == [((1,), shared), ((2,), shared), ((3,), shared)]
    assert list(inputs.slice(1, 3)) == [((2,), shared), ((3,), shared)]
    call = Call(inputs=inputs, method=None, params={})
    header, back = protocol.decode(protocol.encode("call", call))
    assert back == call and back.inputs.args == [(1,), (2,), (3,)]
    assert back.inputs[0][1] is back.inputs[2][1]  # one dict, not a copy per input
    assert header["kind"] == "call"

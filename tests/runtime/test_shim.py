"""The runtime shim end to end: real ``python -m agent_runtime`` processes, one per test."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

from runtime_harness import Shim

from agent_runtime import exitcodes, protocol

HEAD = """
import os
import modal
app = modal.App("t")
with open(os.environ["COUNTER"], "a") as fh:
    fh.write("i")
"""


def _dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            state = next(line for line in fh if line.startswith("State:"))
    except (FileNotFoundError, ProcessLookupError):
        return True
    return "Z" in state.split()[1]


def test_success(shim: Shim) -> None:
    shim.module(HEAD + """
@app.function()
def f(x, y=1):
    return {"sum": x + y, "local": modal.is_local()}
""")
    run = shim.run(call=protocol.Call(inputs=[((2,), {"y": 3})]))
    assert run.code == exitcodes.OK, run.stderr
    assert run.outcome.ok and run.outcome.value == {"sum": 5, "local": False}
    assert run.outcome.attempts == 1
    assert run.header["kind"] == "result" and run.header["exit_code"] == 0


def test_map_chunk_runs_in_one_process_importing_once(shim: Shim) -> None:
    shim.module(HEAD + """
@app.function()
def f(x):
    return (x * x, os.getpid())
""")
    run = shim.run(*range(20))
    assert run.code == 0, run.stderr
    assert [o.value[0] for o in run.outcomes] == [x * x for x in range(20)]
    assert len({o.value[1] for o in run.outcomes}) == 1
    assert shim.count() == 1


def test_raising_function_keeps_type_and_remote_traceback(shim: Shim) -> None:
    shim.module(HEAD + """
def helper(x):
    raise ValueError(f"bad {x}")

@app.function()
def f(x):
    if x == 1:
        helper(x)
    return x
""")
    run = shim.run(0, 1, 2)
    assert run.code == exitcodes.USER_ERROR
    first, bad, last = run.outcomes
    assert first.ok and last.ok and last.value == 2
    assert not bad.ok and isinstance(bad.exc, ValueError) and str(bad.exc) == "bad 1"
    assert bad.exc_type == "ValueError"
    tb = bad.traceback
    assert tb.startswith("Traceback") and "user.py" in tb and "helper(x)" in tb
    assert "agent_runtime" not in tb
    assert "1 of 3 inputs failed" in run.stderr and "ValueError: bad 1" in run.stderr


def test_timeout_kills_the_worker_and_what_it_started(shim: Shim, tmp_path: Path) -> None:
    shim.module(HEAD + """
import subprocess, time

@app.function()
def f(x):
    if x == 1:
        child = subprocess.Popen(["sleep", "30"])
        with open(os.environ["PIDS"], "w") as fh:
            fh.write(f"{os.getpid()} {child.pid}")
        time.sleep(30)
    return x
""")
    pids = tmp_path / "pids"
    run = shim.run(0, 1, 2, timeout=0.5, env=shim.env(PIDS=str(pids)))
    assert run.code == exitcodes.TIMEOUT
    assert run.elapsed_s < 10
    ok0, slow, ok2 = run.outcomes
    assert ok0.ok and ok2.ok and ok2.value == 2  # a fresh worker ran the rest
    assert not slow.ok and slow.timed_out
    assert type(slow.exc).__name__ == "FunctionTimeoutError"
    assert "timed out after 0.5 seconds" in str(slow.exc)
    assert "Where it was when stopped" in slow.traceback and 'user.py", line' in slow.traceback
    assert " in f" in slow.traceback  # faulthandler's dump of the stuck worker
    assert shim.count() == 2  # the module was imported again by the fresh worker
    worker, child = map(int, pids.read_text().split())
    assert _dead(worker) and _dead(child)


def test_process_exit_and_kill_are_reported_and_retried(shim: Shim, tmp_path: Path) -> None:
    shim.module(HEAD + """
import signal

@app.function()
def f(how):
    with open(os.environ["ATTEMPTS"], "a") as fh:
        fh.write("a")
    if how == "exit":
        os._exit(7)
    os.kill(os.getpid(), signal.SIGKILL)
""")
    attempts = tmp_path / "attempts"
    env = shim.env(ATTEMPTS=str(attempts))
    run = shim.run("exit", env=env)
    assert run.code == exitcodes.USER_ERROR
    assert "the function's process exited with code 7 while running input 0" in str(run.outcome.exc)
    attempts.unlink()
    run = shim.run("kill", env=env, extra=("--retries", "2", "--backoff", "1", "--initial-delay", "0.01",
                                           "--max-delay", "1"))
    assert "was killed by signal SIGKILL" in str(run.outcome.exc)
    assert "while running input 0" in str(run.outcome.exc)
    assert run.outcome.attempts == 3 and attempts.read_text() == "aaa"


def test_retries_back_off(shim: Shim, tmp_path: Path) -> None:
    shim.module(HEAD + """
import time

@app.function()
def f(x):
    with open(os.environ["ATTEMPTS"], "a") as fh:
        fh.write(f"{time.monotonic()}\\n")
    if x == "always":
        raise RuntimeError("still failing")
    n = len(open(os.environ["ATTEMPTS"]).read().splitlines())
    if n < 3:
        raise RuntimeError(f"attempt {n}")
    return n
""")
    attempts = tmp_path / "attempts"
    retry = ("--retries", "3", "--backoff", "2", "--initial-delay", "0.1", "--max-delay", "0.3")
    run = shim.run("flaky", env=shim.env(ATTEMPTS=str(attempts)), extra=retry)
    assert run.code == 0 and run.outcome.value == 3 and run.outcome.attempts == 3
    times = [float(t) for t in attempts.read_text().split()]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert 0.1 <= gaps[0] < 0.6 and 0.2 <= gaps[1] < 0.8  # 0.1, then 0.1 * 2

    attempts.unlink()
    run = shim.run("always", env=shim.env(ATTEMPTS=str(attempts)), extra=retry)
    assert run.code == exitcodes.USER_ERROR and run.outcome.attempts == 4
    times = [float(t) for t in attempts.read_text().split()]
    assert times[3] - times[2] >= 0.3  # 0.1 * 2**2 = 0.4, capped at max_delay 0.3
    assert shim.count() == 2  # user errors do not cost a new process


def test_no_retries_by_default(shim: Shim) -> None:
    shim.module(HEAD + """
@app.function()
def f(x):
    raise KeyError(x)
""")
    run = shim.run(1)
    assert run.code == 1 and run.outcome.attempts == 1 and isinstance(run.outcome.exc, KeyError)


def test_unpicklable_result_and_exception(shim: Shim) -> None:
    shim.module(HEAD + """
import threading

class Odd(Exception):
    def __init__(self, a, b):  # pickles, but cannot be rebuilt from its args
        super().__init__(f"{a}/{b}")

@app.function()
def f(x):
    if x == "result":
        return threading.Lock()
    if x == "exc-lock":
        err = RuntimeError("holds a lock")
        err.lock = threading.Lock()
        raise err
    raise Odd(1, 2)
""")
    run = shim.run("result", "exc-lock", "exc-odd")
    assert run.code == exitcodes.USER_ERROR
    result, lock, odd = run.outcomes
    assert not result.ok and "result of type _thread.lock could not be pickled" in str(result.exc)
    assert lock.exc is None and lock.exc_type == "RuntimeError" and "holds a lock" in lock.exc_repr
    assert "raise err" in lock.traceback
    assert odd.exc is None and odd.exc_type == "user.Odd" and "Odd('1/2')" in odd.exc_repr
    assert "raise Odd(1, 2)" in odd.traceback


def test_hundred_megabyte_result(shim: Shim) -> None:
    shim.module(HEAD + """
@app.function()
def f(n):
    return b"x" * n
""")
    size = 100 * 1024 * 1024
    run = shim.run(size)
    assert run.code == 0, run.stderr
    assert len(run.outcome.value) == size


def test_missing_module_is_an_infrastructure_error(shim: Shim) -> None:
    shim.module(HEAD + "import no_such_dependency_here\n")
    run = shim.run(1)
    assert run.code == exitcodes.INFRA_ERROR
    assert isinstance(run.outcome.exc, ModuleNotFoundError)
    assert "no_such_dependency_here" in run.header["error"]
    assert "user.py" in run.outcome.traceback
    assert "ModuleNotFoundError" in run.stderr

    run = shim.run(1, module="absent")
    assert run.code == exitcodes.INFRA_ERROR and "No module named 'absent'" in run.header["error"]


def test_version_mismatch_names_both_versions(shim: Shim) -> None:
    shim.module(HEAD + "@app.function()\ndef f(x):\n    return x\n")
    good = protocol.encode("call", protocol.Call(inputs=[((1,), {})]))
    bad = good.replace(b'"python": "3.11"', b'"python": "2.7"')
    assert bad != good
    run = shim.run(call_bytes=bad)
    assert run.code == exitcodes.INFRA_ERROR
    assert "Python 2.7 on the sender, 3.11 here" in run.header["error"]
    assert "2.7" in run.stderr and "3.11" in run.stderr
    assert shim.count() == 0  # refused before anything was imported or unpickled


def test_missing_call_file(shim: Shim) -> None:
    import subprocess
    import sys

    shim.module(HEAD)
    proc = subprocess.run([sys.executable, "-m", "agent_runtime", "--code", str(shim.code_dir), "--module", "user",
                           "--qualname", "f", "--result-dir", str(shim.result_dir), "--timeout", "5",
                           "--call", str(shim.tmp / "nope.pkl")], env=shim.env(), capture_output=True, text=True)
    assert proc.returncode == exitcodes.INFRA_ERROR
    header, (outcome,) = protocol.decode((shim.result_dir / protocol.RESULT_FILE).read_bytes())
    assert "cannot read the call" in header["error"] and isinstance(outcome.exc, FileNotFoundError)


def test_async_function(shim: Shim) -> None:
    shim.module(HEAD + """
import asyncio

@app.function()
async def f(x):
    await asyncio.sleep(0.01)
    return x + 1
""")
    run = shim.run(1, 2)
    assert run.code == 0 and [o.value for o in run.outcomes] == [2, 3]


def test_generator_streams_frames(shim: Shim) -> None:
    shim.module(HEAD + """
import time

@app.function()
def f(n):
    for i in range(n):
        yield {"i": i}
        if i == 1:
            # the first frames are on disk before the generator finishes
            data = open(os.path.join(os.environ["RESULT_DIR"], "stream.pkl"), "rb").read()
            assert len(__import__("agent_runtime.protocol").protocol.read_frames(data)[0]) == 2

@app.function()
async def g(n):
    for i in range(n):
        yield i
""")
    env = shim.env(RESULT_DIR=str(shim.result_dir))
    run = shim.run(4, extra=("--generator",), env=env)
    assert run.code == 0, run.outcome.traceback
    data = (run.result_dir / protocol.STREAM_FILE).read_bytes()
    values, end = protocol.read_frames(data)
    assert values == [{"i": i} for i in range(4)] and end == len(data)
    assert run.outcome.value == 4  # the frame count
    assert protocol.split_frames(data[:-3]) == (values[:3], data[protocol.frame_boundary(data[:-3]):-3])

    run = shim.run(3, qualname="g", extra=("--generator",))
    assert run.code == 0
    assert protocol.read_frames((run.result_dir / protocol.STREAM_FILE).read_bytes())[0] == [0, 1, 2]


def test_image_imports_raise_in_their_own_container(shim: Shim) -> None:
    shim.module(HEAD + """
image = modal.Image.debian_slim().pip_install("surely-missing")
with image.imports():
    import surely_missing_package

@app.function(image=image)
def f(x):
    return x
""")
    run = shim.run(1)
    assert run.code == 0  # another image's container: the failure is swallowed, as on the client

    key = _recipe_key(shim)
    run = shim.run(1, env=shim.env(MODALC_IMAGE=key))
    assert run.code == exitcodes.INFRA_ERROR
    assert "surely_missing_package" in run.header["error"]


def _recipe_key(shim: Shim) -> str:
    import subprocess
    import sys

    code = ("from agent_runtime.sdk.binding import bind_modal; bind_modal(); import sys; "
            f"sys.path.insert(0, {str(shim.code_dir)!r}); import user; print(user.image.recipe_key)")
    out = subprocess.run([sys.executable, "-c", code], env=shim.env(MODALC_IN_CONTAINER="0"), check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def test_class_with_enter_exit_and_params(shim: Shim, tmp_path: Path) -> None:
    shim.module(HEAD + """
@app.cls()
class Model:
    size: int = modal.parameter(default=1)

    @modal.enter()
    def load(self):
        self.log("enter")
        self.weights = self.size * 10

    @modal.method()
    def predict(self, x):
        self.log(f"predict {x}")
        return self.weights + x

    @modal.exit()
    def close(self):
        self.log("exit")

    def log(self, line):
        with open(os.environ["LOG"], "a") as fh:
            fh.write(line + "\\n")
""", name="pkg.models")
    log = tmp_path / "log"
    call = protocol.Call(inputs=[((1,), {}), ((2,), {})], method="predict", params={"size": 3})
    run = shim.run(call=call, qualname="Model", module="pkg.models", env=shim.env(LOG=str(log)))
    assert run.code == 0, run.stderr
    assert [o.value for o in run.outcomes] == [31, 32]
    assert log.read_text().split("\n") == ["enter", "predict 1", "predict 2", "exit", ""]


def test_failing_enter_fails_every_input(shim: Shim) -> None:
    shim.module(HEAD + """
@app.cls()
class Model:
    @modal.enter()
    def load(self):
        raise OSError("weights missing")

    @modal.method()
    def predict(self, x):
        return x
""")
    run = shim.run(call=protocol.Call(inputs=[((1,), {}), ((2,), {})], method="predict"), qualname="Model")
    assert run.code == exitcodes.USER_ERROR
    assert len(run.outcomes) == 2 and all(isinstance(o.exc, OSError) for o in run.outcomes)
    assert "weights missing" in run.outcomes[0].traceback


def test_no_input_runs_once(shim: Shim) -> None:
    import subprocess
    import sys

    shim.module(HEAD + "@app.function()\ndef f():\n    return 'scheduled'\n")
    proc = subprocess.run([sys.executable, "-m", "agent_runtime", "--code", str(shim.code_dir), "--module", "user",
                           "--qualname", "f", "--result-dir", str(shim.result_dir), "--timeout", "5",
                           "--no-input"], env=shim.env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    _, (outcome,) = protocol.decode((shim.result_dir / protocol.RESULT_FILE).read_bytes())
    assert outcome.value == "scheduled"


def test_stale_files_removed_and_time_measured(shim: Shim) -> None:
    shim.module(HEAD + "@app.function()\ndef f(x):\n    return x\n")
    shim.result_dir.mkdir()
    (shim.result_dir / protocol.STREAM_FILE).write_bytes(b"old")
    start = time.monotonic()
    run = shim.run(1)
    assert run.code == 0 and time.monotonic() - start < 10
    assert not (shim.result_dir / protocol.STREAM_FILE).exists()
    assert os.listdir(shim.result_dir) == [protocol.RESULT_FILE]


def test_generator_cut_short_keeps_its_frames_and_is_not_retried(shim: Shim) -> None:
    shim.module(HEAD + """
import time

@app.function()
def f(n):
    yield "a"
    yield "b"
    time.sleep(30)
""")
    run = shim.run(0, timeout=0.5, extra=("--generator", "--retries", "2", "--initial-delay", "0.01"))
    assert run.code == exitcodes.TIMEOUT and run.outcome.timed_out and run.outcome.attempts == 1
    data = (run.result_dir / protocol.STREAM_FILE).read_bytes()
    assert protocol.read_frames(data) == (["a", "b"], len(data))


def test_import_that_hangs_times_out(shim: Shim) -> None:
    shim.module(HEAD + "import time\ntime.sleep(30)\n")
    run = shim.run(1, timeout=0.5)
    assert run.code == exitcodes.TIMEOUT and run.outcome.timed_out
    assert "timed out after 0.5 seconds while importing user" in str(run.outcome.exc)


def test_sigterm_to_the_shim_takes_the_worker_down(shim: Shim, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    shim.module(HEAD + """
import time

@app.function()
def f(x):
    with open(os.environ["PIDS"], "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(30)
""")
    pids = tmp_path / "pids"
    (tmp_path / "call.pkl").write_bytes(protocol.encode("call", protocol.Call(inputs=[((1,), {})])))
    proc = subprocess.Popen([sys.executable, "-m", "agent_runtime", "--code", str(shim.code_dir), "--module", "user",
                             "--qualname", "f", "--result-dir", str(shim.result_dir), "--timeout", "30",
                             "--call", str(tmp_path / "call.pkl")], env=shim.env(PIDS=str(pids)))
    deadline = time.monotonic() + 20
    while not pids.exists() or not pids.read_text():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 128 + signal.SIGTERM
    worker = int(pids.read_text())
    deadline = time.monotonic() + 5
    while not _dead(worker):
        assert time.monotonic() < deadline, "the worker outlived the shim"
        time.sleep(0.02)

"""``modalc run`` end to end on the local backend: real ``modalc`` processes, real allocations.

Every example app runs with its expected output; failures in remote code
give a clear error and a non-zero exit; Ctrl-C and SIGTERM leave nothing
running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers import stops_within

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def modalc(*args: str, home: Path, cwd: Path = ROOT, timeout: float = 90, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODALC_HOME": str(home)}
    env.pop("NOMAD_ADDR", None)
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, **kw)  # type: ignore[call-overload, no-any-return]


EXPECTED = {
    "hello.py": ["square(7) = 49", "sum of squares below 10 = 285"],
    "gpu.py": ["285"],
    "built_image.py": ["hello, world"],
    "imports_guard.py": ["6.5"],
    "pipeline.py": ["'count': 10"],
    "retries_timeouts.py": ["4950"],
    "schedule.py": ["report for"],
    "sibling_module.py": ["('brown', 1)"],
    "model_class.py": ["map total: 1200", "async beta: 20", "tokens: [('alpha', 10), ('delta', 40)]",
                       "batched total: 1200", "batch of one: 50"],
}


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_example_runs_locally(example: str, tmp_path: Path) -> None:
    result = modalc("run", f"examples/{example}", home=tmp_path)
    assert result.returncode == 0, result.stderr
    for text in EXPECTED[example]:
        assert text in result.stdout, result.stdout


def test_secrets_and_volumes_example(tmp_path: Path) -> None:
    if os.path.exists("/data") and not os.path.islink("/data"):
        pytest.fail("/data exists on this machine; the example mounts its volume there")
    created = modalc("secret", "create", "db-credentials", "DB_USER=alice", "DB_PASSWORD=s3cr3t-value",
                     home=tmp_path)
    assert created.returncode == 0 and "s3cr3t-value" not in created.stdout + created.stderr
    result = modalc("run", "examples/secrets_volumes.py", "--rows", "4", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote /data/squares.csv: 4 rows" in result.stdout
    assert "s3cr3t-value" not in result.stdout + result.stderr
    # The volume is a real directory that outlives the run; the mount link does not.
    report = tmp_path / "volumes" / "shared-data" / "squares.csv"
    assert report.read_text().startswith("# written by alice")
    assert not os.path.lexists("/data")


def test_hello_prefixes_remote_logs(tmp_path: Path) -> None:
    result = modalc("run", "examples/hello.py", "--n", "3", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[square] squaring 7" in result.stdout
    assert "sum of squares below 3 = 5" in result.stdout


APP = textwrap.dedent('''
    import os
    import time
    from typing import Literal, Optional

    import modal

    app = modal.App("run-cases")


    @app.function()
    def boom(x: int) -> int:
        raise KeyError(f"missing {x}")


    @app.function(timeout=1)
    def slow(seconds: float) -> str:
        time.sleep(seconds)
        return "done"


    @app.function()
    def crash() -> None:
        os._exit(7)


    @app.function()
    def text(n: int = 3) -> str:
        return "x" * n


    @app.function()
    def sleeper(pidfile: str) -> None:
        with open(pidfile, "w") as fh:
            fh.write(str(os.getpid()))
        time.sleep(60)


    @app.function()
    def big(n: int) -> bytes:
        return b"\\x01" * n


    @app.local_entrypoint()
    def main(count: int, flag: bool = False, mode: Literal["a", "b"] = "a", label: Optional[str] = None):
        print(f"count={count} flag={flag} mode={mode} label={label}")


    @app.local_entrypoint()
    def raises() -> None:
        boom.remote(3)


    @app.local_entrypoint()
    def times_out() -> None:
        slow.remote(5)


    @app.local_entrypoint()
    def crashes() -> None:
        crash.remote()


    @app.local_entrypoint()
    def waits(pidfile: str) -> None:
        sleeper.remote(pidfile)


    @app.local_entrypoint()
    def large() -> None:
        data = big.remote(50_000_000)
        print("got", len(data))
''')


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "run_cases.py"
    path.write_text(APP)
    return path


def test_entrypoint_options_are_parsed(app_file: Path, tmp_path: Path) -> None:
    result = modalc("run", f"{app_file}::main", "--count", "3", "--flag", "--mode", "b", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "count=3 flag=True mode=b label=None" in result.stdout


def test_missing_required_option_is_a_usage_error(app_file: Path, tmp_path: Path) -> None:
    result = modalc("run", f"{app_file}::main", home=tmp_path)
    assert result.returncode == 2
    assert "--count" in result.stderr


def test_bad_choice_is_a_usage_error(app_file: Path, tmp_path: Path) -> None:
    result = modalc("run", f"{app_file}::main", "--count", "1", "--mode", "c", home=tmp_path)
    assert result.returncode == 2 and "'c' is not one of" in result.stderr


def test_function_as_entrypoint_and_write_result(app_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    # modalc's own options come before the script, the entrypoint's after it (as with `modal run`).
    result = modalc("run", "-w", str(out), f"{app_file}::text", "--n", "5", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.read_text() == "xxxxx"


def test_remote_exception_shows_remote_traceback(app_file: Path, tmp_path: Path) -> None:
    result = modalc("run", f"{app_file}::raises", home=tmp_path)
    assert result.returncode == 1
    assert "KeyError: 'missing 3'" in result.stderr
    assert "Remote traceback" in result.stderr and "in boom" in result.stderr
    assert "compiler/" not in result.stderr


def test_timeout_is_reported(app_file: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    result = modalc("run", f"{app_file}::times_out", home=tmp_path)
    assert result.returncode == 1
    assert "timed out" in result.stderr.lower()
    assert time.monotonic() - started < 30


def test_crash_is_reported(app_file: Path, tmp_path: Path) -> None:
    result = modalc("run", f"{app_file}::crashes", home=tmp_path)
    assert result.returncode == 1
    assert "7" in result.stderr and ("exited" in result.stderr or "crash" in result.stderr.lower())


def test_large_result(app_file: Path, tmp_path: Path) -> None:
    result = modalc("run", f"{app_file}::large", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "got 50000000" in result.stdout




@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_every_allocation(app_file: Path, tmp_path: Path, sig: signal.Signals) -> None:
    pidfile = tmp_path / "pid"
    env = {**os.environ, "MODALC_HOME": str(tmp_path)}
    env.pop("NOMAD_ADDR", None)
    proc = subprocess.Popen([sys.executable, "-m", "compiler", "run", f"{app_file}::waits", "--pidfile",
                             str(pidfile)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    proc.send_signal(sig)
    proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert stops_within(pid)
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_app_run_from_the_users_script(tmp_path: Path) -> None:
    script = tmp_path / "own_script.py"
    script.write_text(textwrap.dedent('''
        import modal

        app = modal.App("own-script")


        @app.function()
        def cube(x: int) -> int:
            return x ** 3


        if __name__ == "__main__":
            with app.run():
                print("cubes", list(cube.map(range(4))), cube.remote(5))
    '''))
    env = {**os.environ, "MODALC_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("NOMAD_ADDR", None)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "cubes [0, 1, 8, 27] 125" in result.stdout


def test_a_module_the_image_would_install_is_explained_locally(tmp_path: Path) -> None:
    script = tmp_path / "needs.py"
    script.write_text(textwrap.dedent("""
        import modal

        image = modal.Image.debian_slim().pip_install("modalc-test-absent-pkg")
        app = modal.App("needs", image=image)

        with image.imports():
            import modalc_test_absent_pkg


        @app.function()
        def f(x):
            return modalc_test_absent_pkg.go(x)


        @app.local_entrypoint()
        def main():
            f.remote(1)
    """))
    result = modalc("run", str(script), home=tmp_path)
    assert result.returncode == 1
    assert "ModuleNotFoundError: No module named 'modalc_test_absent_pkg'" in result.stderr
    assert "note: the local backend runs functions with this machine's Python" in result.stderr
    assert "'modalc_test_absent_pkg'" in result.stderr.split("note: the local backend")[1]

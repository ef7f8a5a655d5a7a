"""Calls made from inside running functions, on the local backend: real ``modalc run`` processes.

The app (``tests/apps/nested_calls.py``) calls other functions from inside its allocations in every call
form; those calls go back to the run's call broker (``compiler/call_broker.py``) and run as allocations
like any other. The same app runs against the Nomad test double in ``tests/test_nested_nomad.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import stops_within

ROOT = Path(__file__).resolve().parents[1]
APP = "tests/apps/nested_calls.py"

FANOUT = {
    "remote": "49",
    "map": "[0, 1, 4, 9]",
    "map_exc": "[4, 'ValueError', 9]",
    "unordered": "[0, 1, 4, 9, 16]",
    "starmap": "[3, 7]",
    "gather": "[0, 1, 4]",
    "from_id": "0",
    "raised": "negative input -5",
    "cls": "15",
    "gen": "[9, 4, 1]",
    "aio": "[16, [1, 4]]",
}


def run_local(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOMAD_")}
    env.update(MODALC_HOME=str(home), PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "compiler", "run", APP, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def lines(stdout: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line and not line.startswith("["))


def test_every_call_form_from_inside_a_function(tmp_path: Path) -> None:
    result = run_local(home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == FANOUT
    # The nested calls' own output is streamed with their function's prefix.
    assert "[square] square 7" in result.stdout
    # retries=2 of square: the failing input ran three times.
    assert result.stdout.count("[square] square -5") == 3


def test_three_level_recursion(tmp_path: Path) -> None:
    result = run_local("--what", "fact", "--n", "3", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "fact: 6" in result.stdout


def test_generator_making_nested_calls(tmp_path: Path) -> None:
    result = run_local("--what", "gen", "--n", "4", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "gen: [0, 2, 4, 6]" in result.stdout


def test_nested_timeout_and_cancel(tmp_path: Path) -> None:
    timed = run_local("--what", "timeout", home=tmp_path)
    assert timed.returncode == 0, timed.stderr
    assert "timeout: FunctionTimeoutError" in timed.stdout
    cancelled = run_local("--what", "cancel", home=tmp_path)
    assert cancelled.returncode == 0 and "cancel: cancelled" in cancelled.stdout, cancelled.stderr


def test_variant_from_inside_is_a_clear_error(tmp_path: Path) -> None:
    result = run_local("--what", "variant", home=tmp_path)
    assert result.returncode == 1
    assert "cannot be called from inside a running function" in result.stderr
    assert "call it from the local entrypoint" in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_the_client_mid_fan_out_stops_nested_allocations(tmp_path: Path, sig: signal.Signals) -> None:
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOMAD_")}
    env.update(MODALC_HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "compiler", "run", APP, "--what", "sleepy", "--n", "3",
                             "--pid-dir", str(pid_dir)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    names = ["outer", "inner-0", "inner-1", "inner-2"]
    deadline = time.monotonic() + 60
    while not all((pid_dir / n).exists() and (pid_dir / n).read_text() for n in names):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    pids = [int((pid_dir / n).read_text()) for n in names]
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert all(stops_within(pid) for pid in pids)
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir())

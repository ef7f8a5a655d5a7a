"""Helpers shared by the test modules: running ``modalc`` as a real process. Runs in the test process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from compiler.lower import BuildOptions
from compiler.phases import CompilerData
from compiler.refs import parse_import_ref
from tests.nomad_double import NomadDouble

ROOT = Path(__file__).resolve().parents[1]


def modalc_on(double: NomadDouble, home: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """``python -m compiler ARGS`` against the Nomad test double, with ``MODALC_HOME=home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOMAD_")}
    env.update(MODALC_HOME=str(home), NOMAD_ADDR=double.address, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def compile_for_run(folder: Path, module: str, source: str) -> CompilerData:
    """Write ``source`` as ``folder/module.py`` and compile the whole app as ``modalc run`` does."""
    path = folder / f"{module}.py"
    path.write_text(source)
    data = CompilerData(parse_import_ref(str(path)), BuildOptions(mode="run"), select_ref=False)
    data.compiled  # noqa: B018 - compile now, once
    return data


def running(pid: int) -> bool:
    """Whether ``pid`` still runs: any of its threads is not a zombie.

    A killed multi-threaded process shows its leader as a zombie while its other
    threads are still tearing down and holding its files (sockets included), so
    every thread is looked at, not only the leader.
    """
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return False
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as fh:
                state = next(line for line in fh if line.startswith("State:"))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
        if "Z" not in state.split()[1]:
            return True
    return False


def stops_within(pid: int, seconds: float = 5.0) -> bool:
    """Whether ``pid`` stops running within ``seconds``."""
    deadline = time.monotonic() + seconds
    while running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True

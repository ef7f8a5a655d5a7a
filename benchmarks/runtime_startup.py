"""How much ``python -m agent_runtime`` adds over a bare interpreter start, end to end.

Runs on a developer machine: ``python benchmarks/runtime_startup.py [N]``.
Each run executes a no-op Modal function (one input, plain-picklable) through
the real shim and writes result.pkl; the figure is the median over N runs of
that minus the median of ``python -c pass``, with bytecode caches warm (as
in a built image). Goal: at most 30 ms.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent_runtime import protocol  # noqa: E402

GOAL_MS = 30.0
NOOP = """\
import modal

app = modal.App("bench")


@app.function()
def noop():
    return None
"""


def _median_s(cmd: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system, the worker included)."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def measure(runs: int = 21) -> tuple[tuple[float, float], tuple[float, float]]:
    """(bare interpreter, shim), each as (wall, CPU) medians in seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp, "code")
        code.mkdir()
        (code / "bench_app.py").write_text(NOOP)
        call = Path(tmp, "call.pkl")
        call.write_bytes(protocol.encode("call", protocol.Call(inputs=[((), {})])))
        env = dict(os.environ, MODALC_IN_CONTAINER="1", PYTHONPATH=str(ROOT))
        # Images ship compiled bytecode; without it every module is compiled at each start.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp, "pycache"))
        shim = [sys.executable, "-m", "agent_runtime", "--code", str(code), "--module", "bench_app",
                "--qualname", "noop", "--result-dir", str(Path(tmp, "data")), "--timeout", "60",
                "--call", str(call)]
        bare = [sys.executable, "-c", "pass"]
        _median_s(shim, env, 2)  # warm the bytecode caches
        return _median_s(bare, env, runs), _median_s(shim, env, runs)


def main(runs: int | None = None) -> None:
    if runs is None:
        runs = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    (bare, bare_cpu), (shim, shim_cpu) = measure(runs)
    extra_ms = (shim - bare) * 1000
    verdict = "within" if extra_ms <= GOAL_MS else "OVER"
    print(f"python -c pass: {bare * 1000:.1f} ms; python -m agent_runtime (no-op call): {shim * 1000:.1f} ms")
    print(f"CPU time: {bare_cpu * 1000:.1f} ms vs {shim_cpu * 1000:.1f} ms (+{(shim_cpu - bare_cpu) * 1000:.1f} ms)")
    print(f"runtime start-up cost: {extra_ms:.1f} ms wall (median of {runs}), {verdict} the {GOAL_MS:.0f} ms goal")


if __name__ == "__main__":
    main()

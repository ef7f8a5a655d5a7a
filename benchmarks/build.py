"""Build-time benchmark: ``modalc build`` on generated apps of 10 and 200 functions.

Prints the median wall time of a real ``modalc build -o DIR`` process (the default
HCL output, and ``--format both``) and of an in-process compile for each size, and
the cost per added function, ``(t200 - t10) / 190``; the goal applies to the default.
Goal: 200 functions in under 1 s, under 2 ms per added function.

    python benchmarks/build.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = (10, 200)


def write_app(folder: Path, n: int) -> Path:
    lines = [f'"""A generated app of {n} functions."""', "", "import modal", "",
             f'app = modal.App("bench-{n}")', 'image = modal.Image.debian_slim(python_version="3.11")', ""]
    gpus = ('None', '"T4"', '"H100:2"', '["h100", "a100", "any"]')
    for i in range(n):
        lines += ["", f"@app.function(image=image, gpu={gpus[i % len(gpus)]}, memory={256 + i}, retries={i % 4},",
                  f"              timeout={60 + i}, env={{\"INDEX\": \"{i}\"}})",
                  f"def f{i}(x: int) -> int:", f"    return x * {i}", ""]
    path = folder / f"bench_{n}.py"
    path.write_text("\n".join(lines))
    return path


def time_process(script: Path, out: Path, runs: int, fmt: str = "hcl") -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "compiler", "build", str(script), "-o", str(out), "--format", fmt],
                       env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_in_process(script: Path, runs: int) -> float:
    sys.path.insert(0, str(ROOT))
    from compiler.lower import BuildOptions
    from compiler.phases import CompilerData
    from compiler.refs import parse_import_ref

    times = []
    for _ in range(runs):
        start = time.perf_counter()
        CompilerData(parse_import_ref(str(script)), BuildOptions(default_python="3.11")).outputs("both")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    proc: dict[int, float] = {}
    both: dict[int, float] = {}
    inproc: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for n in SIZES:
            script = write_app(folder, n)
            proc[n] = time_process(script, folder / f"out{n}", args.runs)
            both[n] = time_process(script, folder / f"both{n}", args.runs, "both")
            inproc[n] = time_in_process(script, args.runs)
    lo, hi = SIZES
    print(f"{'functions':>10} {'modalc build -o DIR':>20} {'... --format both':>18} {'in-process (both)':>18}")
    for n in SIZES:
        print(f"{n:>10} {proc[n] * 1000:>17.0f} ms {both[n] * 1000:>15.0f} ms {inproc[n] * 1000:>15.1f} ms")
    per_proc = (proc[hi] - proc[lo]) / (hi - lo) * 1000
    per_both = (both[hi] - both[lo]) / (hi - lo) * 1000
    per_in = (inproc[hi] - inproc[lo]) / (hi - lo) * 1000
    print(f"per added function: {per_proc:.2f} ms (modalc build), {per_both:.2f} ms (--format both), "
          f"{per_in:.2f} ms (in-process)")
    ok = proc[hi] < 1.0 and per_proc < 2.0
    print(f"goal (200 functions < 1 s, < 2 ms per added function): {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()

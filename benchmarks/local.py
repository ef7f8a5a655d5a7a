"""The local backend's figures: a ``.remote()`` round trip, ``.map`` throughput, runtime start-up.

Runs on a developer machine: ``python benchmarks/local.py [--inputs 20000] [--calls 30]``.
Prints:
- the median ``.remote()`` round trip of a no-op function, a fresh allocation
  (process) per call (goal: at most 120 ms);
- ``.map`` throughput over N no-op inputs, beside
  ``concurrent.futures.ProcessPoolExecutor(2).map`` in the same run (goal: at
  least 0.5x its throughput);
- the start-up cost of ``python -m agent_runtime`` over ``python -c pass``
  (goal: at most 30 ms), from benchmarks/runtime_startup.py.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from compiler.backends.local import LocalBackend, LogSink  # noqa: E402
from compiler.run import app_run  # noqa: E402
from tests.helpers import compile_for_run  # noqa: E402

APP = """\
import modal

app = modal.App("bench-local")


@app.function()
def noop(x=None):
    return x
"""


def noop(x: object = None) -> object:
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MODALC_HOME"] = os.path.join(tmp, "home")
        data = compile_for_run(Path(tmp), "bench_local", APP)
        module = data.script.module
        with app_run(data.compiled, data.graph, backend=LocalBackend(sink=LogSink(quiet=True)), quiet=True):
            module.noop.remote()  # warm the bytecode caches, as a built image has them
            times = []
            for _ in range(args.calls):
                start = time.perf_counter()
                module.noop.remote(1)
                times.append(time.perf_counter() - start)
            remote_ms = statistics.median(times) * 1000
            start = time.perf_counter()
            out = list(module.noop.map(range(args.inputs)))
            ours = time.perf_counter() - start
            assert out == list(range(args.inputs))
        start = time.perf_counter()
        with ProcessPoolExecutor(2) as pool:
            assert list(pool.map(noop, range(args.inputs))) == list(range(args.inputs))
        theirs = time.perf_counter() - start
    print(f".remote() round trip (no-op, fresh process per call): median {remote_ms:.1f} ms over "
          f"{args.calls} calls (goal <= 120 ms)")
    print(f".map over {args.inputs} no-op inputs: {args.inputs / ours:,.0f} inputs/s ({ours:.2f} s); "
          f"ProcessPoolExecutor(2).map: {args.inputs / theirs:,.0f} inputs/s ({theirs:.2f} s); "
          f"ratio {theirs / ours:.2f}x (goal >= 0.5x)")
    import runtime_startup

    runtime_startup.main(21)  # not from sys.argv: that holds this script's flags


if __name__ == "__main__":
    main()

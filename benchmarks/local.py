"""The local backend's figures: a ``.remote()`` round trip, ``.map`` throughput, runtime start-up.

Runs on a developer machine: ``python benchmarks/local.py [--inputs 20000] [--calls 30] [--generator]``
(``--inputs 1000000`` for the big map). Prints:
- the median ``.remote()`` round trip of a no-op function, a fresh allocation
  (process) per call (goal: at most 120 ms); the local backend forks its
  allocations from its fork server (agent_runtime/forkserver.py):
  ``MODALC_LOCAL_FORK=0`` measures them exec'd, as before it;
- ``.map`` throughput over N no-op inputs, beside, in the same run,
  ``concurrent.futures.ProcessPoolExecutor(os.cpu_count()).map`` with a tuned
  ``chunksize`` (N // (workers * 32), the fastest of the sizes tried on a
  2-core machine) and ``joblib.Parallel(n_jobs=os.cpu_count())`` with its
  default (automatic) batching, and the ratios (goal: at least 0.5x the pool);
- with ``--generator``: the map's inputs come from a generator, and the peak
  RSS of the client (``RUSAGE_SELF``) and of the allocations
  (``RUSAGE_CHILDREN``: the largest child) is printed (goal: client < 300 MB
  for 1,000,000 inputs);
- the start-up cost of ``python -m agent_runtime`` over ``python -c pass``
  (goal: at most 30 ms), from benchmarks/runtime_startup.py.
"""

from __future__ import annotations

import argparse
import os
import resource
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
    parser.add_argument("--generator", action="store_true",
                        help="feed the map from a generator (not a list) and report peak RSS")
    parser.add_argument("--no-startup", action="store_true", help="skip the runtime start-up figure")
    args = parser.parse_args()
    n = args.inputs
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
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            source = (x for x in range(n)) if args.generator else list(range(n))
            start = time.perf_counter()
            expected = 0
            for value in module.noop.map(source):
                assert value == expected
                expected += 1
            ours = time.perf_counter() - start
            assert expected == n
        client_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        workers = os.cpu_count() or 1
        # The baselines after ours: the peak RSS figures above are then the map's alone.
        chunksize = max(1, n // (workers * 32))
        start = time.perf_counter()
        with ProcessPoolExecutor(workers) as pool:
            assert sum(1 for _ in pool.map(noop, range(n), chunksize=chunksize)) == n
        pool_s = time.perf_counter() - start
        import joblib

        start = time.perf_counter()
        assert len(joblib.Parallel(n_jobs=workers)(joblib.delayed(noop)(x) for x in range(n))) == n
        joblib_s = time.perf_counter() - start
    how = "exec'd" if os.environ.get("MODALC_LOCAL_FORK") == "0" else "forked by the fork server"
    print(f".remote() round trip (no-op, fresh process per call, {how}): median {remote_ms:.1f} ms over "
          f"{args.calls} calls (goal <= 120 ms)")
    kind = "a generator of" if args.generator else "a list of"
    print(f".map over {kind} {n} no-op inputs: {n / ours:,.0f} inputs/s ({ours:.2f} s)")
    print(f"  ProcessPoolExecutor({workers}).map(chunksize={chunksize}): {n / pool_s:,.0f} inputs/s "
          f"({pool_s:.2f} s); ratio ours/pool {pool_s / ours:.2f}x (goal >= 0.5x)")
    print(f"  joblib.Parallel(n_jobs={workers}) default batching: {n / joblib_s:,.0f} inputs/s ({joblib_s:.2f} s); "
          f"ratio ours/joblib {joblib_s / ours:.2f}x")
    print(f"peak RSS: client {client_kb / 1024:.0f} MB (before the map {rss_before / 1024:.0f} MB; goal < 300 MB), "
          f"largest allocation {children_kb / 1024:.0f} MB (RUSAGE_CHILDREN)")
    if args.no_startup:
        return
    import runtime_startup

    runtime_startup.main(21)  # not from sys.argv: that holds this script's flags


if __name__ == "__main__":
    main()

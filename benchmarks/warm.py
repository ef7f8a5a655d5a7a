"""Warm workers' figures: the median ``.remote()`` round trip to a warm worker, beside a fresh allocation per call.

Runs on a developer machine:
``python benchmarks/warm.py [--calls 200] [--fresh-calls 20] [--map-inputs 1000]``.
For the local backend, and for the Nomad backend against the Nomad test double
(``tests/nomad_double``, served from a separate process so that its work is
not counted as the client's), prints the median round trip of a no-op:

- ``warm``: ``scaledown_window=60`` (a warm worker, ``compiler/warm_pool.py``),
  after one call that starts the worker (goal: under 10 ms);
- ``fresh``: the same no-op without warm options: one dispatched allocation per call;
- ``first``: the call that started the worker (dispatch, import, first answer);
- ``map``: the wall time per input of a ``.map`` of the no-op over the warm
  workers (after the calls above) and over fresh allocations (one per chunk).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent_runtime.sdk.functions import Target  # noqa: E402
from compiler.backends.base import Backend  # noqa: E402
from compiler.backends.local import LocalBackend, LogSink  # noqa: E402
from compiler.backends.nomad import NomadBackend  # noqa: E402
from compiler.backends.nomad_api import NomadSettings  # noqa: E402
from compiler.client import Invoker  # noqa: E402
from compiler.phases import CompilerData  # noqa: E402
from tests.helpers import compile_for_run  # noqa: E402

APP = """\
import modal

app = modal.App("bench-warm")


@app.function(scaledown_window=60)
def warm(x=None):
    return x


@app.function()
def fresh(x=None):
    return x
"""

DOUBLE = """\
import sys, time
from tests.nomad_double.double import NomadDouble
d = NomadDouble(root_dir=sys.argv[1], extra_env={"PATH": sys.argv[2], "PYTHONPATH": sys.argv[3]})
d.start()
print(d.address, flush=True)
sys.stdin.read()
d.stop()
"""


def _median_ms(fn: Callable[[], Any], n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _map_ms(invoker: Invoker, tag: str, n: int) -> float:
    start = time.perf_counter()
    out = list(invoker.map(Target(app_name=None, tag=tag), ((i,) for i in range(n)), {}))
    assert out == list(range(n))
    return (time.perf_counter() - start) * 1000 / n


def measure(name: str, backend: Backend, data: CompilerData, calls: int, fresh_calls: int, map_inputs: int) -> None:
    backend.start(data.compiled, run_id=f"bench-{os.urandom(3).hex()}")
    invoker = Invoker(backend, data.compiled, quiet=True)
    try:
        def call(tag: str) -> Callable[[], Any]:
            return lambda: invoker.call(Target(app_name=None, tag=tag), (), {})

        start = time.perf_counter()
        call("warm")()
        first = (time.perf_counter() - start) * 1000
        warm = _median_ms(call("warm"), calls)
        fresh = _median_ms(call("fresh"), fresh_calls)
        print(f"{name:6} warm {warm:7.2f} ms   fresh {fresh:7.1f} ms   first {first:7.1f} ms   "
              f"({calls} warm calls, {fresh_calls} fresh)")
        warm_map, fresh_map = _map_ms(invoker, "warm", map_inputs), _map_ms(invoker, "fresh", map_inputs)
        print(f"{name:6} map  warm {warm_map:6.3f} ms/input   fresh {fresh_map:6.3f} ms/input   "
              f"({map_inputs} inputs)")
    finally:
        invoker.close()
        backend.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--fresh-calls", type=int, default=20)
    parser.add_argument("--map-inputs", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MODALC_HOME"] = os.path.join(tmp, "home")
        data = compile_for_run(Path(tmp), "bench_warm", APP)
        measure("local", LocalBackend(sink=LogSink(quiet=True)), data, args.calls, args.fresh_calls, args.map_inputs)
        double = subprocess.Popen([sys.executable, "-c", DOUBLE, os.path.join(tmp, "double"),
                                   os.environ.get("PATH", ""), str(ROOT)], cwd=ROOT, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert double.stdout is not None
            address = double.stdout.readline().strip()
            backend = NomadBackend(NomadSettings.from_env({}, address=address), sink=LogSink(quiet=True))
            measure("double", backend, data, args.calls, args.fresh_calls, args.map_inputs)
        finally:
            assert double.stdin is not None
            double.stdin.close()
            double.wait(timeout=30)


if __name__ == "__main__":
    main()

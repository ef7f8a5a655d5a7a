"""Nested calls (made from inside a running function) beside the same calls made from the entrypoint.

    python benchmarks/nested.py [--calls 10] [--inputs 1000] [--backend local|double|both]

Prints, for the local backend and against the Nomad test double (a separate process; its allocations are
its processes): the median ``.remote()`` round trip of a no-op function and the time per input of a
``.map`` over N no-op inputs, each measured from the local entrypoint and from inside an allocation (the
nested call goes through the run's call broker locally, through the Task API socket on the double). The
nested figures are timed inside the calling allocation, so they leave out its own start-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler.backends.base import Backend  # noqa: E402
from compiler.backends.local import LocalBackend, LogSink  # noqa: E402
from compiler.backends.nomad import NomadBackend  # noqa: E402
from compiler.backends.nomad_api import NomadSettings  # noqa: E402
from compiler.run import app_run  # noqa: E402
from tests.helpers import compile_for_run  # noqa: E402

APP = textwrap.dedent("""
    import statistics
    import time

    import modal

    app = modal.App("bench-nested")

    @app.function()
    def noop(x=None):
        return x

    @app.function()
    def remote_from_inside(calls: int) -> float:
        noop.remote()  # the first call opens the channel
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            noop.remote(1)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    @app.function()
    def map_from_inside(n: int) -> float:
        start = time.perf_counter()
        assert list(noop.map(range(n))) == list(range(n))
        return time.perf_counter() - start
""")

DOUBLE = textwrap.dedent("""
    import sys
    from tests.nomad_double import NomadDouble
    d = NomadDouble(extra_env={"PATH": sys.argv[1], "PYTHONPATH": sys.argv[2]}).start()
    print(d.address, flush=True)
    sys.stdin.read()
    d.stop()
""")


def measure(backend: Backend, data: object, calls: int, inputs: int) -> dict[str, float]:
    module = data.script.module  # type: ignore[attr-defined]
    with app_run(data.compiled, data.graph, backend=backend, quiet=True):  # type: ignore[attr-defined]
        module.noop.remote()
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            module.noop.remote(1)
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        assert list(module.noop.map(range(inputs))) == list(range(inputs))
        outer_map = time.perf_counter() - start
        nested_remote = module.remote_from_inside.remote(calls)
        nested_map = module.map_from_inside.remote(inputs)
    return {"remote": statistics.median(times), "map": outer_map, "nested_remote": nested_remote,
            "nested_map": nested_map}


def report(name: str, figures: dict[str, float], inputs: int) -> None:
    print(f"{name}: .remote() round trip  entrypoint {figures['remote'] * 1000:.1f} ms, "
          f"nested {figures['nested_remote'] * 1000:.1f} ms (median)")
    print(f"{name}: .map over {inputs} inputs  entrypoint {figures['map'] / inputs * 1000:.2f} ms/input "
          f"({figures['map']:.2f} s), nested {figures['nested_map'] / inputs * 1000:.2f} ms/input "
          f"({figures['nested_map']:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--inputs", type=int, default=1000)
    parser.add_argument("--backend", choices=("local", "double", "both"), default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MODALC_HOME"] = os.path.join(tmp, "home")
        data = compile_for_run(Path(tmp), "bench_nested", APP)
        if args.backend in ("local", "both"):
            report("local", measure(LocalBackend(sink=LogSink(quiet=True)), data, args.calls, args.inputs),
                   args.inputs)
        if args.backend in ("double", "both"):
            proc = subprocess.Popen([sys.executable, "-c", DOUBLE, os.environ.get("PATH", ""), str(ROOT)],
                                    cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                assert proc.stdout is not None
                address = proc.stdout.readline().strip()
                backend = NomadBackend(NomadSettings.from_env({}, address=address), sink=LogSink(quiet=True))
                report("Nomad test double", measure(backend, data, args.calls, args.inputs), args.inputs)
            finally:
                assert proc.stdin is not None
                proc.stdin.close()
                proc.wait(30)


if __name__ == "__main__":
    main()

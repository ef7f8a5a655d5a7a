"""HTTP requests and client CPU of the Nomad backend, against the Nomad test double.

    python benchmarks/nomad_api.py [--calls 20] [--inputs 1000] [--generator]

The double runs in a separate process (its CPU is not counted); allocations
are processes of the double. Requests are counted in this (the client)
process by wrapping ``requests.Session.send``, so every HTTP request modalc
makes is seen, streaming ones included. Goals: at most 7 requests per
``.remote()`` (6 until issue 10: Nomad keeps a followed log stream open after
the task ended, so the end is read from the allocation and the rest of the
log once more), at most 0.1 per ``.map`` input over 1,000 inputs, at most 1 ms
client CPU per ``.map`` input (``time.process_time()`` of this process).
With ``--generator`` the map's inputs come from a generator, and the peak RSS
of the client (``RUSAGE_SELF``) and of the largest allocation (the double's
``RUSAGE_CHILDREN``) is printed (goal: client < 300 MB for 1,000,000 inputs).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent_runtime.sdk.functions import Target  # noqa: E402
from compiler.backends.local import LogSink  # noqa: E402
from compiler.backends.nomad import NomadBackend  # noqa: E402
from compiler.backends.nomad_api import NomadSettings  # noqa: E402
from compiler.client import Invoker  # noqa: E402
from tests.helpers import compile_for_run  # noqa: E402

APP = textwrap.dedent("""
    import modal

    app = modal.App("bench")

    @app.function()
    def inc(x: int) -> int:
        return x + 1
""")

DOUBLE = textwrap.dedent("""
    import sys
    from tests.nomad_double import NomadDouble
    d = NomadDouble(extra_env={"PATH": sys.argv[1], "PYTHONPATH": sys.argv[2]}).start()
    print(d.address, flush=True)
    sys.stdin.read()
    d.stop()
    import resource
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, flush=True)  # the allocations' peak (KiB)
""")

_count = 0
_lock = threading.Lock()
_send = requests.Session.send


def _counting_send(self: requests.Session, request: requests.PreparedRequest, **kw: object) -> requests.Response:
    global _count
    with _lock:
        _count += 1
    return _send(self, request, **kw)


def requests_made() -> int:
    with _lock:
        return _count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--inputs", type=int, default=1000)
    parser.add_argument("--generator", action="store_true",
                        help="feed the map from a generator (not a list) and report peak RSS")
    args = parser.parse_args()
    requests.Session.send = _counting_send  # type: ignore[method-assign]
    double = subprocess.Popen([sys.executable, "-c", DOUBLE, os.environ.get("PATH", ""), str(ROOT)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert double.stdout is not None and double.stdin is not None
    address = double.stdout.readline().strip()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = compile_for_run(Path(tmp), "bench_app", APP)
            backend = NomadBackend(NomadSettings.from_env({}, address=address), sink=LogSink(quiet=True))
            backend.start(data.compiled, run_id=f"bench-{os.urandom(3).hex()}")
            invoker = Invoker(backend, data.compiled, quiet=True)
            target = Target(app_name=None, tag="inc")
            try:
                assert invoker.call(target, (1,), {}) == 2  # warm-up
                per_call = []
                t0 = time.perf_counter()
                for i in range(args.calls):
                    before = requests_made()
                    assert invoker.call(target, (i,), {}) == i + 1
                    per_call.append(requests_made() - before)
                remote_wall = (time.perf_counter() - t0) / args.calls
                before, cpu0, t0 = requests_made(), time.process_time(), time.perf_counter()
                source = ((i,) for i in range(args.inputs)) if args.generator else [(i,) for i in range(args.inputs)]
                expected = 1
                for value in invoker.map(target, source, {}):
                    assert value == expected
                    expected += 1
                cpu, wall, n_req = time.process_time() - cpu0, time.perf_counter() - t0, requests_made() - before
                assert expected == args.inputs + 1
            finally:
                invoker.close()
                backend.stop()
    finally:
        double.stdin.close()
        children_kb = int(double.stdout.readline().strip() or 0)
        double.wait(timeout=30)
    mean = sum(per_call) / len(per_call)
    print(f".remote(): {mean:.2f} HTTP requests per call (max {max(per_call)}; goal <= 7), "
          f"{remote_wall * 1000:.0f} ms wall per call")
    print(f".map({args.inputs}): {n_req} HTTP requests = {n_req / args.inputs:.3f} per input (goal <= 0.1); "
          f"client CPU {cpu * 1000 / args.inputs:.3f} ms per input (goal <= 1 ms); wall {wall:.2f} s")
    if args.generator:
        client_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"peak RSS over a generator of {args.inputs} inputs: client {client_kb / 1024:.0f} MB "
              f"(goal < 300 MB), largest allocation {children_kb / 1024:.0f} MB (the double's RUSAGE_CHILDREN)")


if __name__ == "__main__":
    main()

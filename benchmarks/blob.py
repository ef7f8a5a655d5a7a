"""Large inputs through the blob store (compiler/blob_store.py): time and client memory, against the Nomad
double and moto's S3 server.

    python benchmarks/blob.py [--mib 100] [--calls 5]

The double and moto's server run in separate processes (their memory and CPU are not counted). Prints the
wall time and the client's peak RSS growth for one ``.remote()`` of a ``--mib`` MiB bytes input (upload,
dispatch of the reference, fetch and check in the allocation, result), and the overhead of the blob path
over the inline path: a 20 KiB input (over the 16 KiB dispatch limit: through the store) against a 15 KiB
input (inline), median of ``--calls`` calls each.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent_runtime.sdk.functions import Target  # noqa: E402
from compiler.backends.local import LogSink  # noqa: E402
from compiler.backends.nomad import NomadBackend  # noqa: E402
from compiler.backends.nomad_api import NomadSettings  # noqa: E402
from compiler.blob_store import BlobConfig  # noqa: E402
from compiler.client import Invoker  # noqa: E402
from tests.helpers import compile_for_run  # noqa: E402

APP = textwrap.dedent("""
    import modal

    app = modal.App("blobbench")

    @app.function()
    def size(data: bytes) -> int:
        return len(data)
""")

DOUBLE = textwrap.dedent("""
    import sys
    from tests.nomad_double import NomadDouble
    d = NomadDouble(extra_env={"PATH": sys.argv[1], "PYTHONPATH": sys.argv[2]}).start()
    print(d.address, flush=True)
    sys.stdin.read()
    d.stop()
""")

MOTO = textwrap.dedent("""
    import sys
    from moto.server import ThreadedMotoServer
    s = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
    s.start()
    print("up", flush=True)
    sys.stdin.read()
    s.stop()
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    port = _free_port()
    moto = subprocess.Popen([sys.executable, "-c", MOTO, str(port)], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    double = subprocess.Popen([sys.executable, "-c", DOUBLE, os.environ.get("PATH", ""), str(ROOT)], cwd=ROOT,
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert moto.stdout is not None and double.stdout is not None
        moto.stdout.readline()
        address = double.stdout.readline().strip()
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                          AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_DEFAULT_REGION="us-east-1")
        data_ = compile_for_run(Path(tempfile.mkdtemp()), "blob_bench_app", APP)
        backend = NomadBackend(NomadSettings.from_env({}, address=address), sink=LogSink(quiet=True),
                               blob=BlobConfig("bench", "b"))
        backend.start(data_.compiled, run_id=f"blobbench-{os.urandom(3).hex()}")
        assert backend.blobs is not None
        backend.blobs.store.client.create_bucket(Bucket="bench")
        invoker = Invoker(backend, data_.compiled, quiet=True)
        target = Target(app_name=None, tag="size")
        try:
            def call(n: int) -> float:
                payload = os.urandom(n)
                start = time.perf_counter()
                assert invoker.call(target, (payload,), {}) == n
                return time.perf_counter() - start

            call(20 << 10)  # warm-up: boto3 imported, the client made
            before = _rss_mib()
            big = call(args.mib << 20)
            grown = _rss_mib() - before
            print(f"{args.mib} MiB input through the blob store: {big:.2f} s for one .remote() "
                  f"({args.mib / big:.0f} MiB/s end to end), client peak RSS +{grown:.0f} MiB "
                  f"({_rss_mib():.0f} MiB peak)")
            inline = statistics.median(call(15 << 10) for _ in range(args.calls))
            blob = statistics.median(call(20 << 10) for _ in range(args.calls))
            print(f"blob path overhead: 20 KiB through the store {blob * 1000:.0f} ms vs 15 KiB inline "
                  f"{inline * 1000:.0f} ms per .remote() (+{(blob - inline) * 1000:.0f} ms, median of {args.calls})")
        finally:
            invoker.close()
            backend.stop()
    finally:
        for proc in (double, moto):
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()

"""Large inputs on Nomad through an S3-compatible blob store (compiler/blob_store.py, agent_runtime/blob_fetch.py).

Against real servers over HTTP: moto's S3 server (``ThreadedMotoServer``) on loopback and the Nomad double;
the allocations fetch their inputs with presigned URLs. After every test no blob and no job of the run remains.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_runtime import protocol
from agent_runtime.sdk.functions import Target
from compiler.backends.local import LogSink
from compiler.backends.nomad import NomadBackend
from compiler.backends.nomad_api import NomadSettings
from compiler.blob_store import BlobConfig, BlobStore, RunBlobs, expiry_s, parse_blob_url
from compiler.client import Invoker
from compiler.errors import UserError
from compiler.phases import CompilerData
from tests.helpers import compile_for_run, modalc_on
from tests.nomad_double import NomadDouble

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "modalc-blobs"
SECRET = "moto-secret-key-never-shown"

APP = textwrap.dedent("""
    import hashlib
    import os
    import time
    import modal

    app = modal.App("bl")

    @app.function()
    def digest(data: bytes) -> tuple[int, str]:
        return len(data), hashlib.sha256(data).hexdigest()

    @app.function()
    def size(data: bytes) -> int:
        return len(data)

    @app.function()
    def big(n: int) -> bytes:
        return os.urandom(16) * (n // 16)

    @app.function()
    def chunks(data: bytes, n: int):
        for i in range(n):
            yield i, data[:1 << 20] * 2

    @app.function()
    def sleepy(data: bytes) -> int:
        time.sleep(60)
        return len(data)
""")


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server on loopback; the AWS_* variables point boto3 at it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server._server.server_address[:2]  # type: ignore[attr-defined]
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _AWS}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY=SECRET, AWS_ENDPOINT_URL=endpoint,
                      AWS_DEFAULT_REGION="us-east-1")
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    try:
        _client().create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


_AWS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN",
        "AWS_PROFILE")


def _client() -> Any:
    return BlobStore(BlobConfig(BUCKET, "")).client


def _keys(prefix: str = "") -> list[str]:
    page = _client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for o in page.get("Contents") or ()]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> CompilerData:
    return compile_for_run(tmp_path_factory.mktemp("bl"), "bl_app", APP)


class Run:
    def __init__(self, double: NomadDouble, data: CompilerData, blob: BlobConfig | None):
        self.double = double
        settings = NomadSettings.from_env({}, address=double.address)
        self.backend = NomadBackend(settings, sink=LogSink(quiet=True), blob=blob)
        self.backend.api.backoff = 0.01
        self.run_id = f"bl-{os.urandom(3).hex()}"
        self.backend.start(data.compiled, run_id=self.run_id)
        self.invoker = Invoker(self.backend, data.compiled, quiet=True)

    def call(self, tag: str, *args: object) -> Any:
        return self.invoker.call(Target(app_name=None, tag=tag), args, {})

    def close(self, *, last: bool = True) -> None:
        self.invoker.close()
        self.backend.stop()
        assert not last or not self.double.jobs, f"jobs left registered: {list(self.double.jobs)}"


@pytest.fixture
def run(double: NomadDouble, compiled: CompilerData, s3: str) -> Iterator[Run]:
    r = Run(double, compiled, BlobConfig(BUCKET, "team/x"))
    try:
        yield r
    finally:
        r.close()
    assert not _keys(), "blobs left in the bucket"


def _children_payloads(double: NomadDouble) -> list[bytes]:
    import base64

    return [base64.b64decode(job.get("Payload") or "") for job in double.jobs.values() if job.get("ParentID")]


def test_a_5_mib_input_goes_through_the_store(run: Run) -> None:
    data = os.urandom(5 << 20)
    seen: list[list[str]] = []
    real_wait = run.backend._wait

    def wait(call: Any) -> Any:  # while the call runs: its blob is there, its dispatch carries a reference
        seen.append(_keys())
        payloads = _children_payloads(run.double)
        assert payloads and all(len(p) < 4096 for p in payloads)
        header, _ = protocol.read_header(payloads[0])
        assert header["kind"] == "blob" and header["size"] > len(data)
        return real_wait(call)

    run.backend._wait = wait  # type: ignore[method-assign]
    assert run.call("digest", data) == (len(data), hashlib.sha256(data).hexdigest())
    assert seen and len(seen[0]) == 1 and seen[0][0].startswith(f"team/x/modalc/{run.run_id}/")
    assert _keys() == [], "the call's blob is deleted once its result was read"
    for job in run.double.jobs.values():  # no credential or URL in any job spec
        spec = json.dumps({k: v for k, v in job.items() if k != "Payload"})
        assert SECRET not in spec and "X-Amz-Signature" not in spec and "testing" not in spec


def test_a_map_of_40_inputs_of_100_kib(run: Run) -> None:
    inputs = [os.urandom(100 << 10) for _ in range(40)]
    out = list(run.invoker.map(Target(app_name=None, tag="size"), [(x,) for x in inputs], {}))
    assert out == [len(x) for x in inputs]


def test_an_8_mib_result(run: Run) -> None:
    assert len(run.call("big", 8 << 20)) == 8 << 20


def test_a_generator_of_large_values_with_a_large_input(run: Run) -> None:
    values = list(run.invoker.call_generator(Target(app_name=None, tag="chunks"), (os.urandom(1 << 20), 3), {}))
    assert [i for i, _ in values] == [0, 1, 2] and all(len(v) == 2 << 20 for _, v in values)


def test_large_generator_values_written_before_the_end_was_seen_are_all_read(run: Run) -> None:
    real = run.backend.read_stream
    first = [True]

    def read_stream(dispatch: Any, offset: int) -> tuple[bytes, bool]:
        if first[0]:  # the end is seen before any value was read: all 6 MiB are left to read (1 MiB a read)
            first[0] = False
            alloc, _ = run.backend._placed(run.backend._call(dispatch))
            assert alloc is not None
            run.double.wait_alloc_terminal(alloc["ID"])
            return b"", True
        return real(dispatch, offset)

    run.backend.read_stream = read_stream  # type: ignore[method-assign]
    values = list(run.invoker.call_generator(Target(app_name=None, tag="chunks"), (os.urandom(1 << 20), 3), {}))
    assert [i for i, _ in values] == [0, 1, 2]


def test_the_same_input_twice_is_uploaded_once(run: Run) -> None:
    data = os.urandom(64 << 10)
    puts: list[str] = []
    store = run.backend.blobs.store  # type: ignore[union-attr]
    real_put = store.put
    store.put = lambda key, body: (puts.append(key), real_put(key, body))[1]  # type: ignore[method-assign]
    out = list(run.invoker.map(Target(app_name=None, tag="size"), [(data,)] * 2 + [(b"x",)], {}))
    assert out == [len(data), len(data), 1]
    calls = [run.invoker.spawn(Target(app_name=None, tag="size"), (data,), {}) for _ in range(2)]
    assert [run.invoker.get(c, 60) for c in calls] == [len(data)] * 2
    assert len(puts) == 2  # one chunk blob for the map, one blob for both spawns


def test_without_a_store_a_large_input_is_refused_naming_the_variable(double: NomadDouble,
                                                                      compiled: CompilerData) -> None:
    r = Run(double, compiled, None)
    try:
        with pytest.raises(UserError) as info:
            r.call("size", os.urandom(20 << 10))
        assert "16384 bytes" in info.value.message and "MODALC_BLOB_URL" in info.value.hint
        assert info.value.exit_code == 2
    finally:
        r.close()


def test_a_missing_bucket_and_a_denied_bucket_are_one_line_errors(double: NomadDouble, compiled: CompilerData,
                                                                  s3: str) -> None:
    r = Run(double, compiled, BlobConfig("no-such-bucket", ""))
    try:
        with pytest.raises(UserError) as info:
            r.call("size", os.urandom(20 << 10))
        assert "bucket 'no-such-bucket' does not exist" in info.value.message and info.value.exit_code == 2
    finally:
        r.close()
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": ["arn:aws:s3:::denied-bkt/*"]}]}
    _client().create_bucket(Bucket="denied-bkt")
    _client().put_bucket_policy(Bucket="denied-bkt", Policy=json.dumps(policy))
    r = Run(double, compiled, BlobConfig("denied-bkt", "p"))  # moto's server enforces the bucket policy
    try:
        with pytest.raises(UserError) as info:
            r.call("size", os.urandom(20 << 10))
    finally:
        r.close()
    text = info.value.format()
    assert "access denied (403)" in text and "s3:PutObject" in text and "\n" not in info.value.message
    assert SECRET not in text and info.value.exit_code == 2


def test_an_unreachable_endpoint_is_a_one_line_error(s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    store = BlobStore(BlobConfig(BUCKET, ""))
    with pytest.raises(UserError) as info:
        RunBlobs(store, "r2").reference(b"y" * 20000)
    assert "endpoint is unreachable" in info.value.message and "AWS_ENDPOINT_URL" in info.value.hint


def test_a_bad_blob_url_is_a_configuration_error() -> None:
    assert parse_blob_url("s3://b/p/q/") == BlobConfig("b", "p/q")
    for bad in ("b/p", "gs://b", "s3://"):
        with pytest.raises(UserError) as info:
            parse_blob_url(bad)
        assert info.value.exit_code == 2 and "MODALC_BLOB_URL" in info.value.hint
    assert expiry_s(300) == 900 and expiry_s(10**9) == 7 * 24 * 3600


class _Refusing(http.server.BaseHTTPRequestHandler):
    body = b""
    status = 403

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


def _serve(status: int, body: bytes) -> tuple[http.server.HTTPServer, str]:
    handler = type("H", (_Refusing,), {"status": status, "body": body})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/b/k?X-Amz-Signature=sig123"


def test_the_runtime_explains_an_expired_url_and_checks_size_and_hash() -> None:
    from agent_runtime.blob_fetch import BlobFetchError, fetch

    server, url = _serve(403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")
    try:
        with pytest.raises(BlobFetchError) as info:
            fetch({"url": url, "size": 3, "sha256": "0" * 64, "expires": int(time.time()) - 5})
        assert "expired" in str(info.value) and "sig123" not in str(info.value) and "127.0.0.1" not in str(info.value)
    finally:
        server.shutdown()
        server.server_close()
    server, url = _serve(200, b"abc")
    try:
        with pytest.raises(BlobFetchError, match="does not match its sha256"):
            fetch({"url": url, "size": 3, "sha256": "0" * 64})
        with pytest.raises(BlobFetchError, match="expected 4"):
            fetch({"url": url, "size": 4, "sha256": "0" * 64})
        assert fetch({"url": url, "size": 3, "sha256": hashlib.sha256(b"abc").hexdigest()}) == b"abc"
    finally:
        server.shutdown()
        server.server_close()


def test_a_small_run_and_build_do_not_import_boto3(tmp_path: Path) -> None:
    code = ("import sys\nfrom compiler.backends.nomad import NomadBackend\nfrom compiler.blob_store import config_from\n"
            "b = NomadBackend.from_env()\nassert b.blob_config is not None\n"
            "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules\n")
    env = {**os.environ, "MODALC_BLOB_URL": f"s3://{BUCKET}/p", "PYTHONPATH": str(ROOT), "MODALC_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def test_sigterm_deletes_the_runs_blobs_and_jobs(double: NomadDouble, s3: str, tmp_path: Path) -> None:
    script = tmp_path / "bl_term.py"
    script.write_text(APP + textwrap.dedent("""
        @app.local_entrypoint()
        def main():
            print(sleepy.remote(b"z" * (1 << 20)))
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOMAD_")}
    env.update(MODALC_HOME=str(tmp_path), NOMAD_ADDR=double.address, PYTHONPATH=str(ROOT),
               MODALC_BLOB_URL=f"s3://{BUCKET}/term")
    proc = subprocess.Popen([sys.executable, "-m", "compiler", "run", str(script)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while not (_keys("term/") and any(j.get("ParentID") for j in double.jobs.values())):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    time.sleep(1.0)  # the allocation has started and fetched its input
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode != 0
    assert _keys("term/") == [], err.decode()
    assert not double.jobs, f"left registered: {list(double.jobs)}"
    assert SECRET.encode() not in out + err and b"X-Amz-Signature" not in out + err


@pytest.mark.parametrize("flag", [True, False], ids=["blob-url", "recorded"])
def test_app_stop_deletes_a_detached_runs_blobs(double: NomadDouble, compiled: CompilerData, s3: str,
                                                flag: bool) -> None:
    """With --blob-url, or without: the run's jobs record their store in their meta."""
    from agent_runtime.protocol import Call
    from compiler import nomad_commands
    from compiler.backends.nomad_api import NomadAPI

    config = BlobConfig(BUCKET, "det")
    r = Run(double, compiled, config)
    fn = r.invoker.functions["sleepy"]
    payload = protocol.encode("call", Call(inputs=[((os.urandom(40 << 10),), {})]))
    r.backend.dispatch(fn, payload, call_id="c1")
    r.invoker.close()
    r.backend.stop(detach=True)  # the jobs keep running, and so their input stays
    assert len(_keys("det/")) == 1
    lines: list[str] = []
    with NomadAPI(NomadSettings.from_env({}, address=double.address)) as api:
        assert nomad_commands.app_stop(api, "bl", lines.append, run_id=r.run_id, blob=config if flag else None) == 0
    assert "deleted 1 blob(s) from s3://modalc-blobs/det" in lines
    assert _keys("det/") == [] and not double.jobs


def test_a_call_read_from_another_process_deletes_its_blob(double: NomadDouble, compiled: CompilerData,
                                                           s3: str) -> None:
    from agent_runtime.protocol import Call

    config = BlobConfig(BUCKET, "other")
    first, second = Run(double, compiled, config), Run(double, compiled, config)
    try:
        fn = first.invoker.functions["size"]
        payload = protocol.encode("call", Call(inputs=[((b"w" * (30 << 10),), {})]))
        dispatch = first.backend.dispatch(fn, payload, call_id="c2")
        assert len(_keys("other/")) == 1
        # FunctionCall.from_id(...).get() elsewhere: the key is read from the child's payload
        assert second.invoker.get(f"fc-{dispatch.dispatch_id}", 60) == 30 << 10
        assert _keys("other/") == []
    finally:
        second.close(last=False)
        first.close()


def test_run_blob_url_flag_is_checked(tmp_path: Path) -> None:
    script = tmp_path / "bl_flag.py"
    script.write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOMAD_")}
    env.update(MODALC_HOME=str(tmp_path), NOMAD_ADDR="http://127.0.0.1:9", PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "compiler", "run", "--blob-url", "gs://nope", f"{script}::size"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--blob-url='gs://nope' is not an s3:// URL" in result.stderr
    assert "Traceback" not in result.stderr


DEPLOYED = textwrap.dedent("""
    import time
    import modal

    app = modal.App("bld")

    @app.function()
    def size(data: bytes) -> int:
        return len(data)

    @app.function()
    def slow(data: bytes) -> int:
        time.sleep(2)
        return len(data)
""")

CALLER = textwrap.dedent("""
    import modal

    app = modal.App("caller")

    @app.local_entrypoint()
    def main(read: str = "", n: int = 40):
        if read:  # FunctionCall.from_id(...).get() of a call spawned by an earlier run
            print("read", modal.FunctionCall.from_id(read).get(timeout=60))
            return
        size = modal.Function.from_name("bld", "size")
        print("size", size.remote(b"a" * (n << 10)))
        print("call", modal.Function.from_name("bld", "slow").spawn(b"b" * (n << 10)).object_id)
""")


def test_a_deployed_apps_store_takes_its_callers_inputs_and_app_stop_deletes_them(
        double: NomadDouble, s3: str, tmp_path: Path) -> None:
    """deploy --blob-url records the store in the jobs' meta: callers without a store of their own put large
    inputs there (under deployed/<app>/), a call's blob is deleted once its result is read (by the caller, or
    by FunctionCall.from_id elsewhere), and `modalc app stop` deletes the unread ones with no flag."""
    (tmp_path / "bld.py").write_text(DEPLOYED)
    (tmp_path / "caller.py").write_text(CALLER)
    deployed = modalc_on(double, tmp_path, "deploy", str(tmp_path / "bld.py"), "--blob-url", f"s3://{BUCKET}/dep/")
    assert deployed.returncode == 0, deployed.stderr
    assert double.jobs[("default", "bld-size")]["Meta"]["modalc_blob_url"] == f"s3://{BUCKET}/dep"
    scope = "dep/modalc/deployed/bld/"
    plan = modalc_on(double, tmp_path, "plan", str(tmp_path / "bld.py"), "--blob-url", f"s3://{BUCKET}/dep")
    assert plan.returncode == 0, plan.stdout + plan.stderr  # the recorded store is part of the jobs: no change

    first = modalc_on(double, tmp_path, "run", str(tmp_path / "caller.py"))
    assert first.returncode == 0, first.stderr
    assert "size 40960" in first.stdout
    call_id = first.stdout.split("call ", 1)[1].split()[0]
    assert len(_keys(scope)) == 1, "the spawned call's input stays until its result is read"
    assert _keys() == _keys(scope), "nothing outside the deployed app's scope"

    read = modalc_on(double, tmp_path, "run", str(tmp_path / "caller.py"), "--read", call_id)
    assert read.returncode == 0, read.stderr
    assert "read 40960" in read.stdout
    assert _keys(scope) == []

    unread = modalc_on(double, tmp_path, "run", str(tmp_path / "caller.py"), "--n", "30")
    assert unread.returncode == 0, unread.stderr
    assert len(_keys(scope)) == 1
    stopped = modalc_on(double, tmp_path, "app", "stop", "bld")
    assert stopped.returncode == 0, stopped.stderr
    assert f"deleted 1 blob(s) from s3://{BUCKET}/dep" in stopped.stdout
    assert _keys() == [] and not double.jobs
    for out in (deployed, first, read, unread, stopped):
        assert SECRET not in out.stdout + out.stderr and "X-Amz-Signature" not in out.stdout + out.stderr


def test_build_records_the_store_and_a_bad_url_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bld.py").write_text(DEPLOYED)
    env = {k: v for k, v in os.environ.items() if k != "MODALC_BLOB_URL"}
    env.update(MODALC_HOME=str(tmp_path), PYTHONPATH=str(ROOT))

    def build(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "compiler", "build", str(tmp_path / "bld.py"), *args], cwd=ROOT,
                              env={**env, **extra}, capture_output=True, text=True, timeout=120)

    plain, flagged, from_env = build(), build("--blob-url", "s3://b/p"), build(MODALC_BLOB_URL="s3://b/p")
    assert plain.returncode == flagged.returncode == from_env.returncode == 0, plain.stderr + flagged.stderr
    assert "modalc_blob_url" not in plain.stdout
    assert len(re.findall(r'\n    modalc_blob_url += "s3://b/p"\n', flagged.stdout)) == 2, flagged.stdout
    assert flagged.stdout == from_env.stdout
    bad = build("--blob-url", "http://b")
    assert bad.returncode == 2 and "--blob-url='http://b' is not an s3:// URL" in bad.stderr
    assert "Traceback" not in bad.stderr

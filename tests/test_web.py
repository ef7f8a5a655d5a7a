"""Web endpoints: lowering to service jobs, real HTTP requests to served endpoints (local backend, ``modalc serve``
with reload, ``modalc run``'s ``get_web_url()``, ``modalc deploy`` on the Nomad test double)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from compiler.backends.local import LocalBackend, LogSink
from compiler.emit_hcl import emit_hcl
from compiler.emit_json import job_dict
from compiler.errors import ErrorList, UserError
from compiler.ir import Driver, JobType
from compiler.lower import BuildOptions
from compiler.phases import CompilerData
from compiler.refs import parse_import_ref
from compiler.run import app_run
from tests.helpers import modalc_on
from tests.nomad_double import NomadDouble
from tests.test_goldens import nomad_schema

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "web.py"


def request(url: str, data: dict | None = None, method: str | None = None) -> tuple[int, bytes]:
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def request_when_up(url: str, data: dict | None = None, timeout_s: float = 20) -> tuple[int, bytes]:
    """A registration appears when the task starts; its server listens a moment later."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return request(url, data)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def compile_example(path: Path, **opts: object) -> CompilerData:
    return CompilerData(parse_import_ref(str(path)), BuildOptions(default_python="3.11", **opts))  # type: ignore[arg-type]


# -- lowering ------------------------------------------------------------------------------------------

def test_web_functions_become_service_jobs() -> None:
    jobs = {fn.tag: fn.job for fn in compile_example(EXAMPLE).compiled.functions}
    greet = jobs["greet"]
    assert greet.type is JobType.SERVICE and greet.parameterized is None and greet.periodic is None
    group = greet.groups[0]
    assert group.count == 1 and jobs["plain_asgi"].groups[0].count == 2  # min_containers=2
    assert [(p.label, p.to) for p in group.network_ports] == [("http", 8000)]
    (service,) = group.services
    assert (service.name, service.port, service.provider) == ("web-greet", "http", "nomad")
    assert (service.checks[0].type, service.checks[0].path) == ("http", "/_modalc/health")
    task = group.tasks[0]
    assert task.dispatch_payload_file is None
    assert task.config.args[:4] == ("-m", "agent_runtime", "--serve", "web")
    assert task.config.args[-4:] == ("--port", "${NOMAD_PORT_http}", "--timeout", "300")
    assert task.config.ports == ("http",)  # docker maps the port into the container only when listed
    files = jobs["files"].groups[0]
    assert files.network_ports[0].to == 8765 and files.services[0].checks[0].type == "tcp"
    assert "label=adder" in jobs["add"].groups[0].services[0].tags


def test_raw_exec_uses_the_dynamic_port_and_validates(tmp_path: Path) -> None:
    data = compile_example(EXAMPLE, driver=Driver.RAW_EXEC)
    for fn in data.compiled.functions:
        assert fn.job.groups[0].network_ports[0].to is None and fn.job.groups[0].tasks[0].config.ports == ()
        hcl = emit_hcl(fn.job)
        assert 'port "http" {}' in hcl
        path = tmp_path / f"{fn.job.id}.nomad.hcl"
        path.write_text(hcl)
        assert nomad_schema.validate_hcl_file(str(path), warnings=True) == []
        job, problems = nomad_schema.hcl_to_api_job(str(path))
        assert problems == [] and job["TaskGroups"][0]["Networks"] == job_dict(fn.job)["TaskGroups"][0]["Networks"]


def test_web_image_installs_the_server() -> None:
    outputs = compile_example(EXAMPLE).outputs("hcl")
    (dockerfile,) = [v for k, v in outputs.items() if k.endswith("Dockerfile")]
    assert "'fastapi>=0.110,<1' 'uvicorn>=0.29,<1'" in str(dockerfile)


WEB_CLASS = """
import modal

app = modal.App("webcls")


@app.cls()
class Greeter:
    greeting: str = modal.parameter(default="Hello")

    @modal.enter()
    def load(self):
        self.entered = getattr(self, "entered", 0) + 1

    @modal.exit()
    def unload(self):
        open(EXIT_MARKER, "w").write("exited")

    @modal.fastapi_endpoint()
    def greet(self, name: str = "you"):
        return {"greeting": f"{self.greeting}, {name}!", "entered": self.entered}

    @modal.asgi_app()
    def api(self):
        from fastapi import FastAPI

        web_app = FastAPI()
        web_app.get("/ping")(lambda: {"pong": self.greeting})
        return web_app

    @modal.method()
    def shout(self, text: str):
        return text.upper()


@app.local_entrypoint()
def main():
    import urllib.request

    # one write per line: the allocations' log lines go to the same stdout from other threads
    url = Greeter().greet.get_web_url()
    print(f"url: {url}")
    print(f"body: {urllib.request.urlopen(url + '/?name=Ada', timeout=10).read().decode()}")
    print(f"again: {urllib.request.urlopen(url + '/?name=Bob', timeout=10).read().decode()}")
    print(f"shout: {Greeter().shout.remote('hi')}")
"""


def _web_class(tmp_path: Path) -> Path:
    script = tmp_path / "webcls.py"
    script.write_text(WEB_CLASS.replace("EXIT_MARKER", repr(str(tmp_path / "exited"))))
    return script


@pytest.mark.parametrize("driver", [Driver.DOCKER, Driver.RAW_EXEC])
def test_web_methods_of_a_class_become_service_jobs_that_validate(tmp_path: Path, driver: Driver) -> None:
    from tests.test_goldens import require_hclfmt

    hclfmt = require_hclfmt()
    data = compile_example(_web_class(tmp_path), driver=driver)
    jobs = {fn.tag: fn for fn in data.compiled.functions}
    assert sorted(jobs) == ["Greeter", "Greeter.api", "Greeter.greet"]  # the batch job runs shout
    greet = jobs["Greeter.greet"].job
    assert greet.id == "webcls-Greeter-greet" and greet.type is JobType.SERVICE and greet.parameterized is None
    assert greet.groups[0].services[0].name == "webcls-Greeter-greet"
    assert jobs["Greeter.api"].job.groups[0].tasks[0].config.args[:10] == (
        "-m", "agent_runtime", "--serve", "web", "--code", "${NOMAD_TASK_DIR}/code", "--module", "webcls",
        "--qualname", "Greeter.api")
    assert jobs["Greeter"].job.type is JobType.BATCH
    for fn in jobs.values():
        path = tmp_path / f"{fn.job.id}.nomad.hcl"
        path.write_text(emit_hcl(fn.job))
        subprocess.run([hclfmt, "-check", str(path)], capture_output=True, check=True)
        assert nomad_schema.validate_hcl_file(str(path), warnings=True) == []
        assert nomad_schema.validate_api_job({"Job": job_dict(fn.job)}, warnings=True) == []


def test_a_web_class_without_parameter_defaults_is_a_clear_error(tmp_path: Path) -> None:
    script = tmp_path / "webcls.py"
    script.write_text("import modal\napp = modal.App('wc')\n\n@app.cls()\nclass C:\n"
                      "    size: int = modal.parameter()\n\n"
                      "    @modal.fastapi_endpoint()\n    def hello(self):\n        return 'hi'\n")
    with pytest.raises((UserError, ErrorList)) as info:
        compile_example(script).compiled  # noqa: B018
    message = str(info.value) + "".join(str(e) for e in getattr(info.value, "errors", []))
    assert "C.hello: a class with web endpoints is built with its parameters' defaults, but 'size' has none" \
        in message


def test_a_class_fastapi_endpoint_serves_in_modalc_run(tmp_path: Path) -> None:
    script = _web_class(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOMAD_")}
    env.update(MODALC_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "compiler", "run", str(script)], env=env, capture_output=True,
                            text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    assert "url: http://127.0.0.1:" in result.stdout
    # one instance, entered once, serves every request
    assert 'body: {"greeting":"Hello, Ada!","entered":1}' in result.stdout
    assert 'again: {"greeting":"Hello, Bob!","entered":1}' in result.stdout
    assert "shout: HI" in result.stdout
    deadline = time.monotonic() + 10
    while not (tmp_path / "exited").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (tmp_path / "exited").read_text() == "exited"  # @modal.exit() ran at shutdown


# -- serving on the local backend --------------------------------------------------------------------------

SLOW = """
import asyncio
import time

import modal

app = modal.App("slowweb")


@app.function(timeout=1)
@modal.fastapi_endpoint()
def sync_slow(seconds: float = 0.0):
    time.sleep(seconds)
    return {"slept": seconds}


@app.function(timeout=1)
@modal.fastapi_endpoint()
async def async_slow(seconds: float = 0.0):
    await asyncio.sleep(seconds)
    return {"slept": seconds}
"""


def test_each_request_has_the_functions_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODALC_HOME", str(tmp_path / "home"))
    script = tmp_path / "slowweb.py"
    script.write_text(SLOW)
    data = CompilerData(parse_import_ref(str(script)), BuildOptions(mode="run"), select_ref=False)
    backend = LocalBackend(sink=LogSink(quiet=True))
    with app_run(data.compiled, data.graph, local=True, backend=backend):
        for fn in data.compiled.functions:
            url = backend.web_url(fn)
            assert request(url + "/?seconds=0.1") == (200, b'{"slept":0.1}')
            started = time.monotonic()
            status, body = request(url + "/?seconds=5")
            assert status == 504 and b"timed out after 1 s" in body and time.monotonic() - started < 4
            assert request(url + "/?seconds=0") == (200, b'{"slept":0.0}')  # still serving


def test_every_kind_of_endpoint_serves_real_requests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODALC_HOME", str(tmp_path / "home"))
    data = CompilerData(parse_import_ref(str(EXAMPLE)), BuildOptions(mode="run"),
                        select_ref=False)
    backend = LocalBackend(sink=LogSink(quiet=True))
    fns = {fn.tag: fn for fn in data.compiled.functions}
    with app_run(data.compiled, data.graph, local=True, backend=backend):
        urls = {tag: backend.web_url(fn) for tag, fn in fns.items()}
        processes = backend.service_processes()
        assert request(urls["greet"] + "/?name=Ada&excited=true") == (200, b'{"greeting":"Hello, Ada!"}')
        assert request(urls["greet"] + "/docs")[0] == 200  # docs=True
        assert request(urls["add"], {"numbers": [1, 2, 3]}) == (200, b'{"sum":6}')
        assert request(urls["add"])[0] == 405  # POST only
        assert request(urls["add"] + "/docs")[0] == 404  # docs=False
        assert request(urls["plain_asgi"] + "/x?y=1") == (200, b"asgi says GET /x")
        assert request(urls["plain_wsgi"] + "/y", {"a": 1}) == (200, b"wsgi says POST /y")
        status, body = request(urls["files"] + "/")
        assert status == 200 and b"Directory listing" in body  # the user's http.server, through the relay
        for tag in ("greet", "add", "plain_asgi", "plain_wsgi"):
            assert request(urls[tag] + "/_modalc/health") == (200, b"ok")
    assert all(p.poll() is not None for p in processes.values())
    for url in urls.values():
        with pytest.raises(OSError):
            urllib.request.urlopen(url + "/_modalc/health", timeout=2)


USE_URL = """
import urllib.request
import modal

app = modal.App("weburl")


@app.function()
@modal.fastapi_endpoint()
def hello(name: str = "you"):
    return {"hello": name}


@app.local_entrypoint()
def main():
    url = hello.get_web_url()
    print("url:", url)
    print("body:", urllib.request.urlopen(url + "/?name=nomad", timeout=10).read().decode())
    print("by name:", modal.Function.from_name("weburl", "hello").get_web_url() == url)
"""


def test_get_web_url_in_modalc_run_locally(tmp_path: Path) -> None:
    script = tmp_path / "weburl.py"
    script.write_text(USE_URL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOMAD_")}
    env.update(MODALC_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "compiler", "run", str(script)], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "url: http://127.0.0.1:" in result.stdout and 'body: {"hello":"nomad"}' in result.stdout
    assert "by name: True" in result.stdout


# -- modalc serve ----------------------------------------------------------------------------------------

SERVED = """
import modal

import helper

app = modal.App("served")


@app.function()
@modal.fastapi_endpoint()
def version():
    return {"version": helper.VERSION}
"""


def _running_under(folder: Path) -> list[int]:
    """Processes whose command line mentions ``folder`` (the endpoints' allocation dirs live under it)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(folder).encode() in cmdline:
            out.append(int(pid))
    return out


def _read_url(proc: subprocess.Popen[str], lines: list[str], deadline: float) -> str:
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("version: http://"):
            return line.split(": ", 1)[1].strip()
    raise AssertionError("no URL printed:\n" + "".join(lines))


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, Path]]:
    (tmp_path / "app").mkdir()
    script = tmp_path / "app" / "served.py"
    script.write_text(SERVED)
    (tmp_path / "app" / "helper.py").write_text("VERSION = 1\n")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOMAD_")}
    env.update(MODALC_HOME=str(home), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "compiler", "serve", str(script)], env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        yield proc, tmp_path / "app", home
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def test_serve_reloads_on_change_and_stops_cleanly(serving: tuple[subprocess.Popen[str], Path, Path]) -> None:
    proc, folder, home = serving
    lines: list[str] = []
    deadline = time.monotonic() + 40
    url = _read_url(proc, lines, deadline)
    assert request(url) == (200, b'{"version":1}')
    time.sleep(0.05)
    (folder / "helper.py").write_text("VERSION = 2\n")  # a sibling module changed
    again = _read_url(proc, lines, deadline)
    assert again == url  # the same port across reloads
    assert "change detected: reloading\n" in lines
    assert request(url) == (200, b'{"version":2}')
    assert _running_under(home)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    assert proc.stderr is not None and "stopped serving" in proc.stderr.read()
    assert not _running_under(home)
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)


# -- Nomad (the test double) -------------------------------------------------------------------------------

DEPLOYED = """
import modal

app = modal.App("webdeploy")


@app.function(min_containers=2)
@modal.fastapi_endpoint(method="POST")
def echo(item: dict):
    return {"echo": item}


@app.function()
@modal.web_server(port=8766, startup_timeout=20)
def files():
    import subprocess, sys
    subprocess.Popen([sys.executable, "-m", "http.server", "8766", "--bind", "127.0.0.1"])


@app.function()
def plain():
    return 1
"""

LOOKUP = """
import modal

app = modal.App("weblookup")


@app.local_entrypoint()
def main():
    for name in ("echo", "plain"):
        print(f"{name}-url:", modal.Function.from_name("webdeploy", name).get_web_url())
    modal.Function.from_name("webdeploy", "nope").get_web_url()
"""


def test_deploy_prints_registered_urls_that_serve(double: NomadDouble, tmp_path: Path) -> None:
    script = tmp_path / "webdeploy.py"
    script.write_text(DEPLOYED)
    deployed = modalc_on(double, tmp_path, "deploy", str(script))
    assert deployed.returncode == 0, deployed.stderr
    urls = dict(line.split("endpoint   ", 1)[1].split(": ", 1) for line in deployed.stdout.splitlines()
                if line.startswith("endpoint   "))
    assert sorted(urls) == ["echo", "files"], deployed.stdout
    # Nomad's service API: two registrations of the echo endpoint (min_containers=2), one of files.
    status, body = request(f"{double.address}/v1/service/webdeploy-echo")
    regs = json.loads(body)
    assert status == 200 and len(regs) == 2 and {r["JobID"] for r in regs} == {"webdeploy-echo"}
    assert {"Address", "Port", "ServiceName", "AllocID", "Namespace", "NodeID", "Tags"} <= set(regs[0])
    listed = json.loads(request(f"{double.address}/v1/services")[1])
    assert {s["ServiceName"] for s in listed[0]["Services"]} == {"webdeploy-echo", "webdeploy-files"}
    assert urls["echo"] in {f"http://{r['Address']}:{r['Port']}" for r in regs}
    for reg in regs:
        assert request_when_up(f"http://{reg['Address']}:{reg['Port']}/", {"n": 1}) == (200, b'{"echo":{"n":1}}')
    status, body = request_when_up(urls["files"] + "/")
    assert status == 200 and b"Directory listing" in body
    lookup = tmp_path / "weblookup.py"
    lookup.write_text(LOOKUP)
    looked = modalc_on(double, tmp_path, "run", str(lookup))  # Function.from_name(...).get_web_url()
    printed = dict(line.split(": ", 1) for line in looked.stdout.splitlines() if "-url: " in line)
    assert printed["echo-url"] in {f"http://{r['Address']}:{r['Port']}" for r in regs}, looked.stdout
    assert printed["plain-url"] == "None"
    assert looked.returncode == 2 and "no deployed function 'nope' of app 'webdeploy'" in looked.stderr
    stopped = modalc_on(double, tmp_path, "app", "stop", "webdeploy")
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(request(f"{double.address}/v1/service/webdeploy-echo")[1]) == []


def test_get_web_url_in_modalc_run_on_nomad(double: NomadDouble, tmp_path: Path) -> None:
    script = tmp_path / "weburl.py"
    script.write_text(USE_URL)
    result = modalc_on(double, tmp_path, "run", str(script))
    assert result.returncode == 0, result.stderr
    assert "url: http://127.0.0.1:" in result.stdout and 'body: {"hello":"nomad"}' in result.stdout
    assert "by name: True" in result.stdout
    assert not double.jobs

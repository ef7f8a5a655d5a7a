"""``@app.server`` (Modal 1.6): the SDK's checks, the service job it becomes, build notes, and real HTTP requests
to a server started by its ``@modal.enter()`` (local backend, ``modalc run``'s ``get_url()``, ``modalc deploy`` on
the Nomad double)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from compiler.backends.local import LocalBackend, LogSink
from compiler.errors import ModalcError
from compiler.ir import Driver, JobType
from compiler.lower import BuildOptions
from compiler.phases import CompilerData
from compiler.refs import parse_import_ref
from compiler.run import app_run
from tests.helpers import modalc_on
from tests.nomad_double import NomadDouble
from tests.test_goldens import nomad_schema
from tests.test_web import request, request_when_up

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "server.py"

BRIEF = """
import modal
app = modal.App("srv")
image = modal.Image.debian_slim().pip_install("fastapi")
@app.server(port=8000, image=image, min_containers=1, max_containers=4, target_concurrency=10, exit_grace_period=5,
            compute_region="us-east", startup_timeout=60)
class Web:
    @modal.enter()
    def start(self):
        import subprocess
        self.proc = subprocess.Popen(["python", "-m", "http.server", "8000"])
"""


def compile_path(path: Path, **opts: object) -> CompilerData:
    return CompilerData(parse_import_ref(str(path)), BuildOptions(default_python="3.11", **opts),  # type: ignore[arg-type]
                        select_ref=False)


def modalc(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOMAD_")}
    env.update(MODALC_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "compiler", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path)


def write(tmp_path: Path, source: str, name: str = "srv.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


# -- lowering ---------------------------------------------------------------------------------------------------

def test_a_server_becomes_a_service_job() -> None:
    (fn,) = compile_path(EXAMPLE).compiled.functions
    job = fn.job
    assert job.id == "server-example-FileServer" and job.type is JobType.SERVICE
    assert job.parameterized is None and dict(job.meta)["modalc_web"] == "server"
    assert dict(job.meta)["modalc_max_containers"] == "4"
    (group,) = job.groups
    assert group.count == 2  # min_containers
    assert [(p.label, p.to) for p in group.network_ports] == [("http", 8000)]
    (service,) = group.services
    assert (service.name, service.port, service.provider) == ("server-example-FileServer", "http", "nomad")
    assert "modalc-web=server" in service.tags
    (check,) = service.checks
    assert (check.type, check.path) == ("tcp", None)
    assert check.restart is not None and (check.restart.limit, check.restart.grace_s) == (3, 60)  # startup_timeout
    (task,) = group.tasks
    assert task.shutdown_delay_s == 5 and task.kill_timeout_s == 10  # exit_grace_period; @modal.exit's time
    assert task.dispatch_payload_file is None and task.config.ports == ("http",)
    args = task.config.args
    assert args[:4] == ("-m", "agent_runtime", "--serve", "web")
    assert args[args.index("--qualname") + 1] == "FileServer"


def test_defaults_and_raw_exec_validate(tmp_path: Path) -> None:
    script = write(tmp_path, """
        import modal
        app = modal.App("plain")
        @app.server(unauthenticated=True)
        class S:
            @modal.enter()
            def up(self):
                pass
    """)
    data = compile_path(script, driver=Driver.RAW_EXEC)
    (fn,) = data.compiled.functions
    group = fn.job.groups[0]
    assert group.count == 1 and [(p.label, p.to) for p in group.network_ports] == [("http", None)]
    check = group.services[0].checks[0]
    assert check.restart is not None and check.restart.grace_s == 30  # Modal's default startup_timeout
    assert group.tasks[0].shutdown_delay_s is None  # exit_grace_period=0
    assert data.compiled.warnings == ()  # unauthenticated=True: nothing to note
    out = tmp_path / "out"
    result = modalc(tmp_path, "build", str(script), "--driver", "raw_exec", "-o", str(out))
    assert result.returncode == 0, result.stderr
    (hcl,) = out.glob("*.nomad.hcl")
    assert nomad_schema.validate_hcl_file(str(hcl), warnings=True) == []


def test_build_prints_notes_for_options_without_nomad_effect(tmp_path: Path) -> None:
    script = write(tmp_path, BRIEF)
    out = tmp_path / "out"
    result = modalc(tmp_path, "build", str(script), "-o", str(out))
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    for option in ("target_concurrency", "max_containers", "compute_region"):
        assert any(f"Web: {option}= ignored: " in n for n in notes), (option, notes)
    assert any("proxy authentication" in n for n in notes)
    for acted_on in ("min_containers", "startup_timeout", "exit_grace_period", "port", "image"):
        assert not any(f"{acted_on}=" in n for n in notes), (acted_on, notes)
    hcl = (out / "srv-Web.nomad.hcl").read_text()
    assert 'shutdown_delay = "5s"' in hcl and 'grace = "60s"' in hcl and "to = 8000" in hcl
    json_out = tmp_path / "json"
    assert modalc(tmp_path, "build", str(script), "-o", str(json_out), "--format", "json").returncode == 0
    api = json.loads((json_out / "srv-Web.nomad.json").read_text())
    assert nomad_schema.validate_api_job(api, warnings=True) == []
    task = api["Job"]["TaskGroups"][0]["Tasks"][0]
    assert task["ShutdownDelay"] == 5 * 10**9
    assert api["Job"]["TaskGroups"][0]["Services"][0]["Checks"][0]["CheckRestart"] == {"Limit": 3,
                                                                                       "Grace": 60 * 10**9}


@pytest.mark.parametrize("decl, message", [
    ("@app.server()\ndef f():\n    pass", "The @app.server() decorator must be used on a class."),
    ("@app.server\nclass S:\n    pass", "Did you forget parentheses?"),
    ("@app.server()\nclass S:\n    pass", "Server class must have an @modal.enter() to setup the server."),
    ("@app.server()\nclass S:\n    @modal.enter()\n    def up(self): pass\n    @modal.method()\n    def m(self): pass",
     "Server class S cannot have `@modal.method()` decorated functions."),
    ("@app.server()\nclass S:\n    x: int = modal.parameter(default=1)\n    @modal.enter()\n    def up(self): pass",
     "Server class S cannot use modal.parameter()."),
    ("@app.server()\nclass S:\n    def __init__(self): pass\n    @modal.enter()\n    def up(self): pass",
     "Server class S cannot have a custom __init__ method."),
    ("@app.server()\n@modal.concurrent(max_inputs=2)\nclass S:\n    @modal.enter()\n    def up(self): pass",
     "cannot be decorated with `@modal.concurrent()`"),
    ("@app.server()\nclass S:\n    @modal.enter(snap=True)\n    def up(self): pass",
     "Server must have `enable_memory_snapshot=True`"),
    ("@app.server(port=0)\nclass S:\n    @modal.enter()\n    def up(self): pass",
     "Port must be a positive integer between 1 and 65535."),
    ("@app.server(startup_timeout=0)\nclass S:\n    @modal.enter()\n    def up(self): pass",
     "The `startup_timeout` argument must be positive."),
    ("@app.server(exit_grace_period=4000)\nclass S:\n    @modal.enter()\n    def up(self): pass",
     "must not exceed 3600 seconds"),
    ("@app.server(routing_region='')\nclass S:\n    @modal.enter()\n    def up(self): pass",
     "The `routing_region` argument must be passed."),
    ("@app.server(target_concurrency=5, max_concurrency=2)\nclass S:\n    @modal.enter()\n    def up(self): pass",
     "cannot be greater than `max_concurrency`"),
    ("@app.server(scaleup_window=0)\nclass S:\n    @modal.enter()\n    def up(self): pass",
     "`scaleup_window` must be > 0"),
    ("@app.server(portt=1)\nclass S:\n    @modal.enter()\n    def up(self): pass", "portt"),
    ("@app.server(proxy=modal.Proxy.from_name('p'))\nclass S:\n    @modal.enter()\n    def up(self): pass",
     "proxy= (modal.Proxy) is not supported by modalc"),
    ("@app.server(min_containers=3, max_containers=2)\nclass S:\n    @modal.enter()\n    def up(self): pass",
     "min_containers=3 is more than max_containers=2"),
])
def test_bad_declarations_are_user_errors(tmp_path: Path, decl: str, message: str) -> None:
    script = write(tmp_path, "import modal\napp = modal.App('bad')\n" + decl + "\n")
    result = modalc(tmp_path, "build", str(script), "-o", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert "srv.py:3" in result.stderr  # the decorator's line


def test_a_server_has_no_call_api(tmp_path: Path) -> None:
    script = write(tmp_path, """
        import modal
        app = modal.App("nocall")
        @app.server()
        class S:
            @modal.enter()
            def up(self):
                pass
    """)
    data = compile_path(script)
    server = data.script.apps["app"].registered_servers["S"]
    for name in ("remote", "spawn", "map", "local"):
        with pytest.raises(AttributeError, match=f"'Server' object has no attribute '{name}'"):
            getattr(server, name)
    from agent_runtime.sdk.exception import NotSupportedError
    from agent_runtime.sdk.server import Server

    with pytest.raises(NotSupportedError, match="nomad job scale"):
        server.update_autoscaler(min_containers=2)
    with pytest.raises(NotSupportedError):
        Server.from_id("fu-1")
    assert Server.from_name("nocall", "S").tag == "S"
    with pytest.raises(ModalcError):  # nothing to run: a server is not a runnable function
        CompilerData(parse_import_ref(str(script)), BuildOptions()).runnable  # noqa: B018


# -- real requests ----------------------------------------------------------------------------------------------

SERVED = """
import subprocess
import sys

import modal

app = modal.App("srvrun")


@app.server(port={port}, startup_timeout=20, unauthenticated=True)
class Files:
    @modal.enter()
    def start(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"])

    @modal.exit()
    def stop(self):
        self.proc.terminate()


@app.local_entrypoint()
def main():
    import urllib.request

    url = Files.get_url()
    print("url:", url)
    print("listing:", b"Directory listing" in urllib.request.urlopen(url + "/", timeout=10).read())
"""


def test_the_server_serves_real_requests_locally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODALC_HOME", str(tmp_path / "home"))
    script = write(tmp_path, SERVED.format(port=8791))
    data = CompilerData(parse_import_ref(str(script)), BuildOptions(mode="run"), select_ref=False)
    backend = LocalBackend(sink=LogSink(quiet=True))
    (fn,) = data.compiled.functions
    with app_run(data.compiled, data.graph, local=True, backend=backend):
        url = backend.web_url(fn)
        processes = backend.service_processes()
        status, body = request_when_up(url + "/")
        assert status == 200 and b"Directory listing" in body  # the user's http.server, through the relay
    assert all(p.poll() is not None for p in processes.values())
    with pytest.raises(OSError):
        request(url + "/")


def test_get_url_in_modalc_run_locally(tmp_path: Path) -> None:
    script = write(tmp_path, SERVED.format(port=8792))
    result = modalc(tmp_path, "run", str(script))
    assert result.returncode == 0, result.stderr
    assert "url: http://127.0.0.1:" in result.stdout and "listing: True" in result.stdout


LOOKUP = """
import modal

app = modal.App("srvlookup")


@app.local_entrypoint()
def main():
    print("url:", modal.Server.from_name("srvrun", "Files").get_url())
"""


def test_deploy_registers_the_server_and_from_name_finds_it(double: NomadDouble, tmp_path: Path) -> None:
    script = write(tmp_path, SERVED.format(port=8793))
    deployed = modalc_on(double, tmp_path, "deploy", str(script))
    assert deployed.returncode == 0, deployed.stderr
    urls = dict(line.split("endpoint   ", 1)[1].split(": ", 1) for line in deployed.stdout.splitlines()
                if line.startswith("endpoint   "))
    assert list(urls) == ["Files"], deployed.stdout
    status, body = request_when_up(urls["Files"] + "/")
    assert status == 200 and b"Directory listing" in body
    looked = modalc_on(double, tmp_path, "run", str(write(tmp_path, LOOKUP, "srvlookup.py")))
    assert looked.returncode == 0, looked.stderr
    assert f"url: {urls['Files']}" in looked.stdout
    stopped = modalc_on(double, tmp_path, "app", "stop", "srvrun")
    assert stopped.returncode == 0, stopped.stderr


def test_modalc_serve_serves_a_server(tmp_path: Path) -> None:
    import signal
    import time

    script = write(tmp_path, SERVED.format(port=8795))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOMAD_")}
    env.update(MODALC_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "compiler", "serve", str(script)], env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stderr is not None
        deadline, url, lines = time.monotonic() + 40, "", []
        while not url and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Files: http://"):
                url = line.split(": ", 1)[1].strip()
        assert url, "".join(lines)
        status, body = request_when_up(url + "/")
        assert status == 200 and b"Directory listing" in body
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()

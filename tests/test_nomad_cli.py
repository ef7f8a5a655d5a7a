"""``modalc run/deploy/plan/app`` on Nomad: real ``modalc`` processes, the Nomad test double over HTTP.

The double runs in the test process (so faults and state can be checked);
``modalc`` runs as a subprocess with NOMAD_ADDR pointing at it. After every
test no job of a run remains registered.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.nomad_double import NomadDouble

ROOT = Path(__file__).resolve().parents[1]


def env_for(double: NomadDouble, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOMAD_")}
    env.update(MODALC_HOME=str(home), NOMAD_ADDR=double.address, PYTHONPATH=str(ROOT), **extra)
    return env


def modalc(double: NomadDouble, home: Path, *args: str, timeout: float = 90,
           **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=ROOT, env=env_for(double, home, **extra),
                          capture_output=True, text=True, timeout=timeout)


def ephemeral_jobs(double: NomadDouble) -> list[str]:
    return [j for (_, j), job in double.jobs.items()
            if (job.get("Meta") or {}).get("modalc_ephemeral") == "true" or job.get("ParentID")]


@pytest.mark.parametrize(("example", "expected"), [
    ("hello.py", ["square(7) = 49", "sum of squares below 10 = 285", "[square] squaring 7"]),
    ("pipeline.py", ["'count': 10"]),
])
def test_example_runs_on_nomad(double: NomadDouble, tmp_path: Path, example: str, expected: list[str]) -> None:
    result = modalc(double, tmp_path, "run", f"examples/{example}")
    assert result.returncode == 0, result.stderr
    for text in expected:
        assert text in result.stdout, result.stdout
    assert double.count_requests("POST", r"/dispatch$") >= 2
    assert not double.jobs


def test_forbidden_token_is_explained_and_never_printed(double: NomadDouble, tmp_path: Path) -> None:
    double.token = "the-right-one"
    result = modalc(double, tmp_path, "run", "examples/hello.py", NOMAD_TOKEN="s3cret-wrong-token")
    assert result.returncode == 2
    assert "403" in result.stderr and "NOMAD_TOKEN" in result.stderr
    assert "s3cret-wrong-token" not in result.stdout + result.stderr
    assert not double.jobs
    ok = modalc(double, tmp_path, "run", "examples/hello.py", NOMAD_TOKEN="the-right-one")
    assert ok.returncode == 0, ok.stderr
    assert not double.jobs


def test_local_flag_ignores_nomad(double: NomadDouble, tmp_path: Path) -> None:
    result = modalc(double, tmp_path, "run", "--local", "examples/hello.py")
    assert result.returncode == 0, result.stderr
    assert not double.requests


def test_detach_then_app_list_and_stop(double: NomadDouble, tmp_path: Path) -> None:
    result = modalc(double, tmp_path, "run", "--detach", "examples/hello.py")
    assert result.returncode == 0, result.stderr
    assert "modalc app stop hello --run hello-" in result.stderr
    assert ephemeral_jobs(double)
    listed = modalc(double, tmp_path, "app", "list")
    assert listed.returncode == 0 and "hello" in listed.stdout and "run hello-" in listed.stdout
    logs = modalc(double, tmp_path, "app", "logs", "hello")
    assert "[square] squaring 7" in logs.stdout
    follower = subprocess.Popen([sys.executable, "-m", "compiler", "app", "logs", "hello", "-f"], cwd=ROOT,
                                env=env_for(double, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        assert follower.stdout is not None
        assert "[square]" in follower.stdout.readline()
        time.sleep(0.3)
        assert follower.poll() is None  # -f keeps following
        follower.send_signal(signal.SIGINT)
        follower.communicate(timeout=20)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert follower.returncode == 130
    run_id = result.stderr.split("--run ")[1].split()[0]
    stopped = modalc(double, tmp_path, "app", "stop", "hello", "--run", run_id)
    assert stopped.returncode == 0, stopped.stderr
    assert not double.jobs


DETACHED_SECRET = textwrap.dedent("""
    import os
    import modal

    app = modal.App("detsec")

    @app.function(secrets=[modal.Secret.from_dict({"GREETING": "hi"})])
    def greet() -> str:
        return os.environ["GREETING"]

    @app.local_entrypoint()
    def main():
        print("greeting", greet.remote())
""")


def test_app_stop_run_deletes_the_runs_variables(double: NomadDouble, tmp_path: Path) -> None:
    script = tmp_path / "detsec.py"
    script.write_text(DETACHED_SECRET)
    result = modalc(double, tmp_path, "run", "--detach", str(script))
    assert result.returncode == 0, result.stderr
    assert "greeting hi" in result.stdout
    run_id = result.stderr.split("--run ")[1].split()[0].rstrip("`")
    kept = [path for _, path in double.variables if path.startswith(f"modalc/runs/{run_id}/")]
    assert kept  # --detach keeps the run's secret for its jobs
    (parent,) = [job_id for (_, job_id), job in double.jobs.items() if not job.get("ParentID")]
    # a warm function's channel token of the run's job (what a warm run writes)
    double.variables[("default", f"nomad/jobs/{parent}")] = {
        "Namespace": "default", "Path": f"nomad/jobs/{parent}", "Items": {"token": "x"}, "CreateIndex": 1,
        "ModifyIndex": 1, "CreateTime": 0, "ModifyTime": 0}
    double.variables[("default", "modalc/runs/other-run/s1")] = {  # another run's: untouched
        "Namespace": "default", "Path": "modalc/runs/other-run/s1", "Items": {"A": "b"}, "CreateIndex": 1,
        "ModifyIndex": 1, "CreateTime": 0, "ModifyTime": 0}
    stopped = modalc(double, tmp_path, "app", "stop", "detsec", "--run", run_id)
    assert stopped.returncode == 0, stopped.stderr
    assert f"deleted Variable {kept[0]}" in stopped.stdout and f"deleted Variable nomad/jobs/{parent}" in stopped.stdout
    assert not double.jobs
    assert [path for _, path in double.variables] == ["modalc/runs/other-run/s1"], stopped.stdout + stopped.stderr


NAP = textwrap.dedent("""
    import time
    import modal

    app = modal.App("napper")

    @app.function()
    def nap(s: float) -> str:
        print("napping", flush=True)
        time.sleep(s)
        return "rested"

    @app.local_entrypoint()
    def main(s: float = 60):
        print(nap.remote(s))
""")


def test_sigterm_stops_and_purges_everything(double: NomadDouble, tmp_path: Path) -> None:
    script = tmp_path / "napper.py"
    script.write_text(NAP)
    proc = subprocess.Popen([sys.executable, "-m", "compiler", "run", str(script)], cwd=ROOT,
                            env=env_for(double, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not any(a["ClientStatus"] == "running" for a in list(double.allocs.values())):
            assert time.monotonic() < deadline and proc.poll() is None, "no allocation started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    assert not double.jobs


CALLER = textwrap.dedent("""
    import modal

    app = modal.App("caller")

    @app.local_entrypoint()
    def main(mode: str = "call", call_id: str = ""):
        square = modal.Function.from_name("nbd", "square")
        if mode == "call":
            print("remote:", square.remote(3))
        elif mode == "spawn":
            print("id:", square.spawn(5).object_id)
        else:
            print("got:", modal.FunctionCall.from_id(call_id).get())
""")

DEPLOYED = textwrap.dedent("""
    import modal

    app = modal.App("nbd")

    @app.function()
    def square(x: int) -> int:
        print(f"squaring {x}")
        return x * x
""")


def test_deploy_plan_from_name_from_id_history_logs_stop(double: NomadDouble, tmp_path: Path) -> None:
    script = tmp_path / "nbd.py"
    script.write_text(DEPLOYED)
    caller = tmp_path / "caller.py"
    caller.write_text(CALLER)

    first_plan = modalc(double, tmp_path, "plan", str(script))
    assert first_plan.returncode == 1, first_plan.stderr
    assert "+ job 'nbd-square': create" in first_plan.stdout
    assert not double.jobs  # plan changes nothing

    deployed = modalc(double, tmp_path, "deploy", str(script))
    assert deployed.returncode == 0, deployed.stderr
    assert "created    nbd-square (version 0)" in deployed.stdout
    assert modalc(double, tmp_path, "plan", str(script)).returncode == 0
    again = modalc(double, tmp_path, "deploy", str(script))
    assert "unchanged  nbd-square" in again.stdout
    changed = modalc(double, tmp_path, "plan", str(script), "--datacenter", "dc1")
    assert changed.returncode == 1 and "~ job 'nbd-square'" in changed.stdout
    updated = modalc(double, tmp_path, "deploy", str(script), "--datacenter", "dc1")
    assert "updated    nbd-square (version 1)" in updated.stdout

    called = modalc(double, tmp_path, "run", str(caller))
    assert called.returncode == 0, called.stderr
    assert "remote: 9" in called.stdout
    spawned = modalc(double, tmp_path, "run", str(caller), "--mode", "spawn")
    assert spawned.returncode == 0, spawned.stderr
    call_id = spawned.stdout.split("id: ")[1].split()[0]
    assert call_id.startswith("fc-nbd-square/dispatch-")
    got = modalc(double, tmp_path, "run", str(caller), "--mode", "get", "--call-id", call_id)
    assert got.returncode == 0, got.stderr
    assert "got: 25" in got.stdout

    history = modalc(double, tmp_path, "app", "history", "nbd")
    assert history.returncode == 0, history.stderr
    assert "version 1" in history.stdout and "version 0" in history.stdout and "call nbd-square/dispatch-" in \
        history.stdout
    logs = modalc(double, tmp_path, "app", "logs", "nbd")
    assert "[square] squaring 3" in logs.stdout and "[square] squaring 5" in logs.stdout
    assert ("default", "nbd-square") in double.jobs
    stopped = modalc(double, tmp_path, "app", "stop", "nbd")
    assert stopped.returncode == 0, stopped.stderr
    assert not double.jobs


def test_plan_error_exits_255(double: NomadDouble, tmp_path: Path) -> None:
    result = modalc(double, tmp_path, "plan", "examples/hello.py", "--address", "http://127.0.0.1:9")
    assert result.returncode == 255
    assert "Nomad" in result.stderr

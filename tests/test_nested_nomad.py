"""Calls made from inside running functions on Nomad: real ``modalc run`` processes against the test double.

The allocations of ``tests/apps/nested_calls.py`` call other functions through the Task API socket
(``${NOMAD_SECRETS_DIR}/api.sock``) with their workload identity (``agent_runtime/nested/nomad_channel.py``);
the double serves that socket, issues the identities and, with ACLs on, enforces the ACL policy attached to
the calling job (``JobACL``; a dispatched child is matched by its parent's ID, as nomad/auth/auth.go
``ResolvePoliciesForClaims`` does). No Nomad cluster ran these tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import modalc_on, stops_within
from tests.nomad_double import NomadDouble
from tests.test_nested import APP, FANOUT, lines

ROOT = Path(__file__).resolve().parents[1]


def run_on(double: NomadDouble, home: Path, *args: str, token: str | None = None,
           timeout: float = 180) -> subprocess.CompletedProcess[str]:
    extra = ["--token", token] if token else []
    return modalc_on(double, home, "run", *extra, APP, *args, timeout=timeout)


def test_every_call_form_from_inside_a_function_on_nomad(double: NomadDouble, tmp_path: Path) -> None:
    result = run_on(double, tmp_path)
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == FANOUT
    assert "[square] square 7" in result.stdout  # the nested call's output, relayed with its prefix
    assert not double.jobs, f"left registered: {list(double.jobs)}"


def test_three_level_recursion_and_a_generator_on_nomad(double: NomadDouble, tmp_path: Path) -> None:
    result = run_on(double, tmp_path, "--what", "fact", "--n", "3")
    assert result.returncode == 0, result.stderr
    assert "fact: 6" in result.stdout
    gen = run_on(double, tmp_path, "--what", "gen", "--n", "4")
    assert gen.returncode == 0, gen.stderr
    assert "gen: [0, 2, 4, 6]" in gen.stdout
    assert not double.jobs


def test_with_acls_the_run_attaches_each_jobs_policy_and_removes_it(double: NomadDouble, tmp_path: Path) -> None:
    double.token = "management-secret"
    result = run_on(double, tmp_path, "--what", "total", "--n", "5", token="management-secret")
    assert result.returncode == 0, result.stderr
    assert "total: 30" in result.stdout
    assert not double.jobs and not double.policies
    assert "management-secret" not in result.stdout + result.stderr


def test_without_the_policy_a_nested_call_is_refused_clearly_not_hung(double: NomadDouble, tmp_path: Path) -> None:
    double.token = "management-secret"
    double.faults.fail_next(100, r"/v1/acl/policy/", status=403, body="Permission denied")
    started = time.monotonic()
    result = run_on(double, tmp_path, "--what", "total", "--n", "3", token="management-secret")
    assert time.monotonic() - started < 120
    assert result.returncode == 1, result.stderr
    assert "nomad acl policy apply -namespace default -job nested-" in result.stderr  # told at the start
    assert "403" in result.stderr and "ACL policy 'modalc-nested-" in result.stderr  # and by the failing call
    assert "management-secret" not in result.stdout + result.stderr
    assert not double.jobs


def test_sigterm_mid_nested_fan_out_stops_and_purges_everything(double: NomadDouble, tmp_path: Path) -> None:
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOMAD_")}
    env.update(MODALC_HOME=str(tmp_path), NOMAD_ADDR=double.address, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "compiler", "run", APP, "--what", "sleepy", "--n", "3",
                             "--pid-dir", str(pid_dir)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    names = ["outer", "inner-0", "inner-1", "inner-2"]
    deadline = time.monotonic() + 90
    while not all((pid_dir / n).exists() and (pid_dir / n).read_text() for n in names):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    pids = [int((pid_dir / n).read_text()) for n in names]
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=90)
    assert proc.returncode != 0
    assert all(stops_within(pid) for pid in pids)
    assert not double.jobs, f"left registered: {list(double.jobs)}"


def test_deploy_attaches_each_jobs_policy_with_its_job_acl(double: NomadDouble, tmp_path: Path) -> None:
    double.token = "management-secret"
    result = modalc_on(double, tmp_path, "deploy", "--token", "management-secret", APP, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "policy     modalc-nested-square (attached to its job)" in result.stdout
    policy = double.policies["modalc-nested-fanout"]
    assert policy["JobACL"]["JobID"] == "nested-fanout" and policy["JobACL"]["Namespace"] == "default"
    assert '"dispatch-job"' in policy["Rules"]
    assert "management-secret" not in result.stdout + result.stderr

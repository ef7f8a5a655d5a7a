"""``Secret.from_dict`` in ``modalc build``/``deploy``: the app-scoped Variable ``modalc/apps/<app>/<id>``.

``modalc`` runs as a subprocess; the Nomad test double serves real HTTP in the test process, so its
Variables, jobs and ACL policies are checked afterwards, and deployed functions are called through it.
The values come from the environment of ``modalc`` (as a real app would read them), so they are not in
the script's text, which the specs ship; every test checks they appear in no spec, message or command.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.nomad_double import NomadDouble
from tests.test_goldens import require_hclfmt
from tests.test_secrets_volumes import ROOT, RUN_SCOPED_APP, modalc, out

sys.path.insert(0, str(ROOT.parent / "shared" / "nomad"))
import nomad_schema

VALUE_1 = "zq7-distinctive-VALUE-one"
VALUE_2 = "zq7-distinctive-VALUE-two"

APP = textwrap.dedent('''
    import os

    import modal

    app = modal.App("appsec")
    token = modal.Secret.from_dict({"APPSEC_TOKEN": os.environ.get("APPSEC_VALUE", "unset"),
                                    KEY2: "m" + "ode-1"})


    @app.function(secrets=[token])
    def show() -> str:
        return "|".join(os.environ.get(k, "-") for k in ("APPSEC_TOKEN", "APPSEC_MODE", "APPSEC_LEVEL"))


    @app.function(secrets=[token, modal.Secret.from_dict({})])
    def other() -> int:
        return 1
''')

CALLER = textwrap.dedent('''
    import modal

    app = modal.App("appsec-caller")


    @app.local_entrypoint()
    def main():
        print("seen", modal.Function.from_name("appsec", "show").remote())
''')


def write_app(tmp_path: Path, second_key: str = "APPSEC_MODE") -> Path:
    script = tmp_path / "appsec.py"
    script.write_text(APP.replace("KEY2", repr(second_key)))
    return script


def no_value(*texts: str) -> None:
    for text in texts:
        assert VALUE_1 not in text and VALUE_2 not in text


def test_build_prints_the_create_command_and_its_specs_hold_no_value(tmp_path: Path) -> None:
    script = write_app(tmp_path)
    first = modalc(tmp_path, "build", str(script), "-o", str(tmp_path / "o1"), "--acl-policy",
                   "--namespace", "prod", APPSEC_VALUE=VALUE_1)
    second = modalc(tmp_path, "build", str(script), "-o", str(tmp_path / "o2"), "--acl-policy",
                    "--namespace", "prod", APPSEC_VALUE=VALUE_2)
    assert first.returncode == 0 and second.returncode == 0, out(first) + out(second)
    no_value(out(first), out(second))
    commands = [line.strip() for line in first.stderr.splitlines() if "nomad var put" in line]
    assert len(commands) == 1, first.stderr  # one Variable: other()'s empty from_dict sets nothing
    command = commands[0]
    assert command.startswith("nomad var put -namespace prod modalc/apps/appsec/d")
    assert " APPSEC_MODE=... APPSEC_TOKEN=...    # from " in command and "appsec.py:7" in command
    assert "modalc deploy` writes them itself" in first.stderr
    path = command.split()[5]
    files = sorted(p.relative_to(tmp_path / "o1") for p in (tmp_path / "o1").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "o2") for p in (tmp_path / "o2").rglob("*") if p.is_file())
    for rel in files:  # the same build with another value: byte-identical
        assert (tmp_path / "o1" / rel).read_bytes() == (tmp_path / "o2" / rel).read_bytes(), rel
        no_value((tmp_path / "o1" / rel).read_bytes().decode(errors="replace"))
    for job in ("appsec-show", "appsec-other"):
        spec = tmp_path / "o1" / f"{job}.nomad.hcl"
        hcl = spec.read_text()
        assert hcl.count(f'nomadVar \\"{path}\\"') == 1, hcl
        assert f'destination = "secrets/app-{path.rsplit("/", 1)[1]}.env"' in hcl
        assert nomad_schema.validate_hcl_string(hcl) == []
        assert subprocess.run([require_hclfmt(), str(spec)], capture_output=True, check=True).stdout.decode() == hcl
    policy = (tmp_path / "o1" / "appsec.policy.hcl").read_text()
    assert f'    path "{path}" {{\n      capabilities = ["read"]\n    }}' in policy
    rerun = modalc(tmp_path, "build", str(script), "-o", str(tmp_path / "o1"), "--acl-policy", "--namespace", "prod",
                   "--check", APPSEC_VALUE=VALUE_2)
    assert rerun.returncode == 0, out(rerun)


def test_deploy_writes_the_variable_a_call_sees_it_and_redeploy_updates_it(double: NomadDouble,
                                                                            tmp_path: Path) -> None:
    script = write_app(tmp_path)
    caller = tmp_path / "caller.py"
    caller.write_text(CALLER)
    deployed = modalc(tmp_path, "deploy", str(script), double=double, APPSEC_VALUE=VALUE_1)
    assert deployed.returncode == 0, out(deployed)
    (path,) = [p for _, p in double.variables]
    assert path.startswith("modalc/apps/appsec/d")
    assert double.variables[("default", path)]["Items"] == {"APPSEC_TOKEN": VALUE_1, "APPSEC_MODE": "mode-1"}
    assert f"created    secret {path} (APPSEC_MODE, APPSEC_TOKEN)" in deployed.stdout
    for job_id in ("appsec-show", "appsec-other"):
        (task,) = double.jobs[("default", job_id)]["TaskGroups"][0]["Tasks"]
        assert [t["EmbeddedTmpl"] for t in task["Templates"] if "nomadVar" in t["EmbeddedTmpl"]] == [
            f'{{{{ with nomadVar "{path}" }}}}{{{{ range .Tuples }}}}{{{{ .K }}}}={{{{ .V | toJSON }}}}\n'
            "{{ end }}{{ end }}"]
    no_value(out(deployed), json.dumps(list(double.jobs.values()), default=str))

    called = modalc(tmp_path, "run", str(caller), double=double)
    assert called.returncode == 0, out(called)
    assert f"seen {VALUE_1}|mode-1|-" in called.stdout

    changed = modalc(tmp_path, "deploy", str(script), double=double, APPSEC_VALUE=VALUE_2)
    assert changed.returncode == 0, out(changed)
    assert f"updated    secret {path} (APPSEC_MODE, APPSEC_TOKEN)" in changed.stdout
    assert "unchanged  appsec-show" in changed.stdout  # the spec does not hold the value: the job is the same
    assert double.variables[("default", path)]["Items"]["APPSEC_TOKEN"] == VALUE_2
    no_value(out(changed), json.dumps(list(double.jobs.values()), default=str))
    called = modalc(tmp_path, "run", str(caller), double=double)
    assert f"seen {VALUE_2}|mode-1|-" in called.stdout, out(called)

    same = modalc(tmp_path, "deploy", str(script), double=double, APPSEC_VALUE=VALUE_2)
    assert f"unchanged  secret {path} (APPSEC_MODE, APPSEC_TOKEN)" in same.stdout, out(same)

    rekeyed = modalc(tmp_path, "deploy", str(write_app(tmp_path, "APPSEC_LEVEL")), double=double,
                     APPSEC_VALUE=VALUE_2)
    assert rekeyed.returncode == 0, out(rekeyed)
    (new,) = [p for _, p in double.variables if p != path]
    assert f"created    secret {new} (APPSEC_LEVEL, APPSEC_TOKEN)" in rekeyed.stdout
    assert f"stale      secret {path} (no longer in the app; delete it with: nomad var purge {path})" in rekeyed.stdout
    assert "updated    appsec-show" in rekeyed.stdout  # its template reads the new Variable
    called = modalc(tmp_path, "run", str(caller), double=double)
    assert f"seen {VALUE_2}|-|mode-1" in called.stdout, out(called)
    no_value(out(rekeyed))

    stopped = modalc(tmp_path, "app", "stop", "appsec", double=double)
    assert stopped.returncode == 0, out(stopped)
    assert f"deleted Variable {new}" in stopped.stdout and f"deleted Variable {path}" in stopped.stdout
    assert not double.variables and not double.jobs


def test_deploy_with_acls_lets_the_jobs_read_their_secret(double: NomadDouble, tmp_path: Path) -> None:
    double.token = "management-secret"
    script = write_app(tmp_path)
    caller = tmp_path / "caller.py"
    caller.write_text(CALLER)
    deployed = modalc(tmp_path, "deploy", "--token", "management-secret", str(script), double=double,
                      APPSEC_VALUE=VALUE_1)
    assert deployed.returncode == 0, out(deployed)
    (path,) = [p for _, p in double.variables]
    rules = double.policies["modalc-appsec-show"]["Rules"]
    assert f'path "{path}" {{' in rules
    called = modalc(tmp_path, "run", "--token", "management-secret", str(caller), double=double)
    assert called.returncode == 0, out(called)
    assert f"seen {VALUE_1}|mode-1|-" in called.stdout  # the double reads templates' Variables under the ACLs


def test_run_scoped_secrets_with_acls_are_in_the_runs_policy(double: NomadDouble, tmp_path: Path) -> None:
    double.token = "management-secret"
    script = tmp_path / "run_scoped.py"
    script.write_text(RUN_SCOPED_APP)
    (tmp_path / "app.env").write_text("RS_DOTENV=from-dotenv-value\n")
    result = modalc(tmp_path, "run", "--token", "management-secret", str(script), double=double,
                    RS_LOCAL="from-local-value")
    assert result.returncode == 0, out(result)
    assert "seen from-dotenv-value|from-local-value|dict-value" in result.stdout
    assert not double.variables and not double.policies and not double.jobs


def test_one_line_making_two_secrets_with_different_values_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "twice.py"
    script.write_text(textwrap.dedent('''
        import os
        import modal

        app = modal.App("twice")
        both = [modal.Secret.from_dict({"K": os.environ["APPSEC_VALUE"] + s}) for s in ("a", "b")]


        @app.function(secrets=[both[0]])
        def f():
            return 1


        @app.function(secrets=[both[1]])
        def g():
            return 2
    '''))
    result = modalc(tmp_path, "build", str(script), APPSEC_VALUE=VALUE_1)
    assert result.returncode == 2, out(result)
    assert "twice.py:6" in result.stderr and "made by the same line have different values" in result.stderr
    no_value(out(result))


def test_a_value_written_in_the_code_gets_a_note_naming_the_key(tmp_path: Path) -> None:
    script = tmp_path / "literal.py"
    script.write_text(textwrap.dedent(f'''
        import modal

        app = modal.App("literal")


        @app.function(secrets=[modal.Secret.from_dict({{"API_KEY": "{VALUE_1}", "SHORT": "ab"}})])
        def f():
            return 1
    '''))
    result = modalc(tmp_path, "build", str(script), "-o", str(tmp_path / "o"))
    assert result.returncode == 0, out(result)
    assert "note: the value of API_KEY (modal.Secret.from_dict at " in result.stderr
    assert "is written in literal.py, whose text the job spec ships" in result.stderr
    assert "SHORT" not in result.stderr.split("nomad var put")[0]
    no_value(result.stderr)

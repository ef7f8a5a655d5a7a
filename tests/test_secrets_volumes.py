"""Secrets and volumes on both backends: ``modalc secret/volume``, required_keys, run-scoped secrets, ACL policy.

``modalc`` runs as a subprocess; the Nomad test double serves real HTTP in the
test process, so its variables, volumes and jobs can be checked afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.nomad_double import NomadDouble
from tests.test_goldens import require_hclfmt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT.parent / "shared" / "nomad"))
import nomad_schema  # noqa: E402

SECRET_VALUE = "hunter2-s3cr3t"


def modalc(home: Path, *args: str, double: NomadDouble | None = None, cwd: Path = ROOT,
           **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOMAD_")}
    env.update(MODALC_HOME=str(home), PYTHONPATH=str(ROOT), **extra)
    if double is not None:
        env["NOMAD_ADDR"] = double.address
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=90)


def out(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def registered(double: NomadDouble) -> int:
    return double.count_requests(None, r"^/v1/jobs/?$") - double.count_requests("GET", r"^/v1/jobs/?$")


# -- modalc secret ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("on_nomad", [True, False])
def test_secret_cli(on_nomad: bool, double: NomadDouble, tmp_path: Path) -> None:
    dotenv = tmp_path / "db.env"
    dotenv.write_text(f"# comment\nexport DB_HOST='db.internal-{SECRET_VALUE}'\n")
    d = double if on_nomad else None
    created = modalc(tmp_path, "secret", "create", "db", f"PASSWORD={SECRET_VALUE}", "--from-dotenv", str(dotenv),
                     double=d)
    assert created.returncode == 0, out(created)
    assert "DB_HOST, PASSWORD" in created.stdout
    again = modalc(tmp_path, "secret", "create", "db", "X=1", double=d)
    assert again.returncode == 2 and "--force" in again.stderr
    listed = modalc(tmp_path, "secret", "list", double=d)
    assert listed.returncode == 0 and listed.stdout == "db\tDB_HOST, PASSWORD\n"
    local_file = tmp_path / "secrets" / "db.json"
    if on_nomad:
        var = double.variables[("default", "modalc/secrets/db")]
        assert var["Items"] == {"PASSWORD": SECRET_VALUE, "DB_HOST": f"db.internal-{SECRET_VALUE}"}
        assert not local_file.exists()
    else:
        assert local_file.exists() and oct(local_file.stat().st_mode & 0o777) == "0o600"
        assert not double.variables
    deleted = modalc(tmp_path, "secret", "delete", "db", double=d)
    assert deleted.returncode == 0, out(deleted)
    assert modalc(tmp_path, "secret", "list", double=d).stdout == ""
    missing = modalc(tmp_path, "secret", "delete", "db", double=d)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    for result in (created, again, listed, deleted, missing):
        assert SECRET_VALUE not in out(result)
    assert not double.variables


def test_secret_local_flag_ignores_nomad(double: NomadDouble, tmp_path: Path) -> None:
    result = modalc(tmp_path, "secret", "create", "only-here", "A=1", "--local", double=double)
    assert result.returncode == 0, out(result)
    assert not double.variables and (tmp_path / "secrets" / "only-here.json").exists()


# -- required_keys ---------------------------------------------------------------------------------------------
REQUIRED_APP = textwrap.dedent('''
    import os

    import modal

    app = modal.App("needs-db")
    db = modal.Secret.from_name("db", required_keys=["USER", "PASSWORD"])


    @app.function(secrets=[db])
    def user() -> str:
        return os.environ["USER"]


    @app.local_entrypoint()
    def main():
        print("user is", user.remote())
''')


@pytest.mark.parametrize("on_nomad", [True, False])
def test_required_keys_fail_before_submission(on_nomad: bool, double: NomadDouble, tmp_path: Path) -> None:
    script = tmp_path / "needs_db.py"
    script.write_text(REQUIRED_APP)
    d = double if on_nomad else None
    absent = modalc(tmp_path, "run", str(script), double=d)
    assert absent.returncode == 2, out(absent)
    assert "needs_db.py:7" in absent.stderr and "secret 'db' does not exist" in absent.stderr
    assert "modalc secret create db USER=... PASSWORD=..." in absent.stderr
    assert modalc(tmp_path, "secret", "create", "db", "USER=alice", double=d).returncode == 0
    partial = modalc(tmp_path, "run", str(script), double=d)
    assert partial.returncode == 2, out(partial)
    assert "needs_db.py:7" in partial.stderr and "missing required key: PASSWORD" in partial.stderr
    assert "--force" in partial.stderr
    assert registered(double) == 0 and not double.jobs
    assert modalc(tmp_path, "secret", "create", "db", "USER=alice", "PASSWORD=pw", "--force",
                  double=d).returncode == 0
    ok = modalc(tmp_path, "run", str(script), double=d)
    assert ok.returncode == 0, out(ok)
    assert "user is alice" in ok.stdout
    assert not double.jobs


def test_deploy_checks_required_keys(double: NomadDouble, tmp_path: Path) -> None:
    script = tmp_path / "needs_db.py"
    script.write_text(REQUIRED_APP)
    result = modalc(tmp_path, "deploy", str(script), double=double)
    assert result.returncode == 2, out(result)
    assert "needs_db.py:7" in result.stderr and "does not exist in Nomad" in result.stderr
    assert not double.jobs and double.count_requests("POST", r"/plan$") == 0


# -- run-scoped secrets ----------------------------------------------------------------------------------------
RUN_SCOPED_APP = textwrap.dedent('''
    import glob
    import os

    import modal

    app = modal.App("run-scoped")
    from_file = modal.Secret.from_dotenv(filename="app.env")
    from_env = modal.Secret.from_local_environ(["RS_LOCAL"])
    from_dict = modal.Secret.from_dict({"RS_DICT": "dict-" + "value"})


    @app.function(secrets=[from_file, from_env, from_dict])
    def show() -> str:
        rendered = "".join(open(p).read() for p in sorted(glob.glob(os.environ["NOMAD_SECRETS_DIR"] + "/run-*.env")))
        env = "|".join(os.environ.get(k, "-") for k in ("RS_DOTENV", "RS_LOCAL", "RS_DICT"))
        return env + " rendered:" + " ".join(sorted(line.split("=")[0] for line in rendered.splitlines()))


    @app.local_entrypoint()
    def main():
        print("seen", show.remote())
''')


@pytest.mark.parametrize("on_nomad", [True, False])
def test_run_scoped_secrets_reach_the_function(on_nomad: bool, double: NomadDouble, tmp_path: Path) -> None:
    script = tmp_path / "run_scoped.py"
    script.write_text(RUN_SCOPED_APP)
    (tmp_path / "app.env").write_text("RS_DOTENV=from-dotenv-value\n")
    result = modalc(tmp_path, "run", str(script), double=double if on_nomad else None, RS_LOCAL="from-local-value")
    assert result.returncode == 0, out(result)
    assert ("seen from-dotenv-value|from-local-value|dict-value rendered:RS_DICT RS_DOTENV RS_LOCAL"
            in result.stdout), out(result)
    assert "from-local-value" not in result.stderr and "from-dotenv-value" not in result.stderr
    if on_nomad:
        written = [r.path for r in double.requests if r.method == "PUT" and r.path.startswith("/v1/var/")]
        assert len(written) == 3 and all(p.startswith("/v1/var/modalc/runs/run-scoped-") for p in written)
        assert not double.variables, "the run-scoped Variables are deleted when the run ends"
        assert not double.jobs


def test_run_scoped_missing_environ_fails_before_submission(double: NomadDouble, tmp_path: Path) -> None:
    script = tmp_path / "run_scoped.py"
    script.write_text(RUN_SCOPED_APP)
    (tmp_path / "app.env").write_text("RS_DOTENV=x\n")
    result = modalc(tmp_path, "run", str(script), double=double)
    assert result.returncode == 2, out(result)
    assert "run_scoped.py:9" in result.stderr and "RS_LOCAL not set" in result.stderr
    assert registered(double) == 0 and not double.variables


def test_run_spec_references_run_scoped_secrets_without_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from compiler.emit_hcl import emit_hcl
    from tests.helpers import compile_for_run

    (tmp_path / "app.env").write_text("RS_DOTENV=from-dotenv-value\n")
    monkeypatch.setenv("RS_LOCAL", "from-local-value")
    data = compile_for_run(tmp_path, "run_scoped", RUN_SCOPED_APP)
    hcl = emit_hcl(data.compiled.functions[0].job)
    assert hcl.count('nomadVar (printf \\"modalc/runs/%s/s') == 3
    assert 'env \\"NOMAD_META_modalc_run\\"' in hcl
    assert "from-dotenv-value" not in hcl and "from-local-value" not in hcl
    assert nomad_schema.validate_hcl_string(hcl) == []
    assert hcl == emit_hcl(compile_for_run(tmp_path, "run_scoped", RUN_SCOPED_APP).compiled.functions[0].job)


# -- ACL policy ------------------------------------------------------------------------------------------------
def test_acl_policy(tmp_path: Path) -> None:
    out_dir = tmp_path / "deploy"
    result = modalc(tmp_path, "build", "examples/secrets_volumes.py", "-o", str(out_dir), "--acl-policy",
                    "--namespace", "prod")
    assert result.returncode == 0, out(result)
    policy = out_dir / "secrets-volumes.policy.hcl"
    text = policy.read_text()
    assert text.endswith(textwrap.dedent('''\
        namespace "prod" {
          capabilities = ["dispatch-job", "read-job", "read-logs", "read-fs", "alloc-lifecycle"]

          variables {
            path "modalc/secrets/db-credentials" {
              capabilities = ["read"]
            }
          }
        }
        '''))
    assert "nomad acl policy apply -namespace prod -job secrets-volumes-read-report " in text
    formatted = subprocess.run([require_hclfmt(), str(policy)], capture_output=True, check=True).stdout
    assert formatted.decode() == text
    check = modalc(tmp_path, "build", "examples/secrets_volumes.py", "-o", str(out_dir), "--acl-policy",
                   "--namespace", "prod", "--check")
    assert check.returncode == 0, out(check)


def test_acl_policy_without_secrets_still_grants_nested_calls(tmp_path: Path) -> None:
    result = modalc(tmp_path, "build", "examples/hello.py", "-o", str(tmp_path / "o"), "--acl-policy")
    assert result.returncode == 0, out(result)
    text = (tmp_path / "o" / "hello.policy.hcl").read_text()
    assert "variables" not in text
    assert 'capabilities = ["dispatch-job", "read-job", "read-logs", "read-fs", "alloc-lifecycle"]' in text
    assert "nomad acl policy apply -namespace default -job hello-square" in text
    assert "modalc-hello-square hello.policy.hcl" in text


# -- volumes ---------------------------------------------------------------------------------------------------
def test_volume_type_csi_hcl(tmp_path: Path) -> None:
    result = modalc(tmp_path, "build", "examples/secrets_volumes.py", "-o", str(tmp_path / "o"),
                    "--volume-type", "csi")
    assert result.returncode == 0, out(result)
    path = tmp_path / "o" / "secrets-volumes-write-report.nomad.hcl"
    hcl = path.read_text()
    assert textwrap.indent(textwrap.dedent('''\
        volume "shared-data" {
          type            = "csi"
          source          = "shared-data"
          read_only       = false
          access_mode     = "multi-node-multi-writer"
          attachment_mode = "file-system"
          per_alloc       = false
        }
        '''), "    ") in hcl
    assert nomad_schema.validate_hcl_string(hcl) == []
    formatted = subprocess.run([require_hclfmt(), str(path)], capture_output=True, check=True).stdout
    assert formatted.decode() == hcl


def test_volume_cli_local(tmp_path: Path) -> None:
    assert modalc(tmp_path, "volume", "create", "cache").returncode == 0
    assert (tmp_path / "volumes" / "cache").is_dir()
    assert modalc(tmp_path, "volume", "create", "cache").returncode == 2
    assert modalc(tmp_path, "volume", "list").stdout.startswith("cache\tlocal\t")
    assert modalc(tmp_path, "volume", "delete", "cache").returncode == 0
    assert not (tmp_path / "volumes" / "cache").exists()
    assert modalc(tmp_path, "volume", "delete", "cache").returncode == 2


def test_volume_cli_nomad(double: NomadDouble, tmp_path: Path) -> None:
    double.volumes.host_volumes["static-data"] = "/srv/static"
    csi = modalc(tmp_path, "volume", "create", "models", "--type", "csi", "--plugin-id", "double-csi", double=double)
    assert csi.returncode == 0, out(csi)
    assert double.volumes.csi[("default", "models")]["RequestedCapabilities"] == [
        {"AccessMode": "multi-node-multi-writer", "AttachmentMode": "file-system"}]
    no_plugin = modalc(tmp_path, "volume", "create", "other", "--type", "csi", double=double)
    assert no_plugin.returncode == 2 and "--plugin-id" in no_plugin.stderr
    host = modalc(tmp_path, "volume", "create", "scratch", "--node-pool", "default", double=double)
    assert host.returncode == 0, out(host)
    assert "host (dynamic)" in host.stdout
    listed = modalc(tmp_path, "volume", "list", double=double).stdout.splitlines()
    assert [line.split("\t")[:2] for line in listed] == [["scratch", "host (dynamic)"],
                                                          ["static-data", "host (static)"]]
    assert modalc(tmp_path, "volume", "list", "--type", "csi", double=double).stdout.startswith("models\tcsi\t")
    static = modalc(tmp_path, "volume", "delete", "static-data", double=double)
    assert static.returncode == 2 and "client configuration" in static.stderr
    assert modalc(tmp_path, "volume", "delete", "scratch", double=double).returncode == 0
    assert modalc(tmp_path, "volume", "delete", "models", "--type", "csi", double=double).returncode == 0
    assert not double.volumes.host and not double.volumes.csi
    assert not (tmp_path / "volumes").exists() or not list((tmp_path / "volumes").iterdir())


VOLUME_APP = textwrap.dedent('''
    import modal

    app = modal.App("vols")
    cache = modal.Volume.from_name("cache", create_if_missing=True)
    models = modal.Volume.from_name("models")


    @app.function(volumes={"/cache": cache})
    def uses_cache() -> str:
        return "ok"


    @app.function(volumes={"/models": models})
    def uses_models() -> str:
        return "ok"


    @app.local_entrypoint()
    def main():
        print("cache", uses_cache.remote())
''')


@pytest.mark.parametrize("volume_type", ["host", "csi"])
def test_create_if_missing_on_nomad(volume_type: str, double: NomadDouble, tmp_path: Path) -> None:
    script = tmp_path / "vols.py"
    script.write_text(VOLUME_APP)
    flags = ["--volume-type", volume_type] + (["--volume-plugin", "double-csi"] if volume_type == "csi" else [])
    missing = modalc(tmp_path, "run", *flags, str(script), double=double)
    assert missing.returncode == 2, out(missing)
    assert "vols.py:6" in missing.stderr and f"{volume_type} volume 'models' does not exist" in missing.stderr
    assert registered(double) == 0
    assert not double.volumes.csi and not double.volumes.host, "nothing is created when the run cannot start"
    if volume_type == "host":
        double.volumes.host_volumes["models"] = "/srv/models"
    else:
        created = modalc(tmp_path, "volume", "create", "models", "--type", "csi", "--plugin-id", "double-csi",
                         double=double)
        assert created.returncode == 0, out(created)
    ok = modalc(tmp_path, "run", *flags, str(script), double=double)
    assert ok.returncode == 0, out(ok)
    assert f"created {volume_type}" in ok.stderr and "cache ok" in ok.stdout
    table = double.volumes.csi if volume_type == "csi" else double.volumes.host
    assert "cache" in {v["Name"] for v in table.values()}
    again = modalc(tmp_path, "deploy", *flags, str(script), double=double)
    assert again.returncode == 0, out(again)
    assert f"created {volume_type} volume" not in again.stderr
    assert sum(v["Name"] == "cache" for v in table.values()) == 1


def test_run_scoped_secrets_deleted_on_error_kept_with_detach(double: NomadDouble, tmp_path: Path) -> None:
    script = tmp_path / "run_scoped.py"
    script.write_text(RUN_SCOPED_APP + "\n\n@app.local_entrypoint()\ndef fail():\n    show.remote()\n"
                      "    raise RuntimeError('entrypoint failed')\n")
    (tmp_path / "app.env").write_text("RS_DOTENV=x\n")
    failed = modalc(tmp_path, "run", f"{script}::fail", double=double, RS_LOCAL="y")
    assert failed.returncode == 1 and "entrypoint failed" in failed.stderr, out(failed)
    assert double.count_requests("PUT", r"^/v1/var/modalc/runs/") == 3
    assert not double.variables and not double.jobs
    detached = modalc(tmp_path, "run", "--detach", str(script) + "::main", double=double, RS_LOCAL="y")
    assert detached.returncode == 0, out(detached)
    kept = sorted(path for _, path in double.variables)
    assert len(kept) == 3 and all(p.startswith("modalc/runs/run-scoped-") for p in kept)
    assert f"nomad var purge {kept[0]}" in detached.stderr

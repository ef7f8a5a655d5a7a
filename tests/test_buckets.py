"""modal.CloudBucketMount as a Nomad CSI volume of an S3 CSI plugin (compiler/lower/buckets.py).

``modalc`` runs as a subprocess; deploy talks to the Nomad test double.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.nomad_double import NomadDouble
from tests.test_goldens import require_hclfmt
from tests.test_secrets_volumes import SECRET_VALUE, modalc, nomad_schema, out

HEAD = "import modal\n\napp = modal.App('bk')\ncreds = modal.Secret.from_name('aws', required_keys=['AWS_ACCESS_KEY_ID'])\n\n"
APP = HEAD + textwrap.dedent('''\
    @app.function(volumes={
        "/data": modal.CloudBucketMount("my-bucket", key_prefix="runs/2024/", secret=creds, read_only=True),
        "/out": modal.CloudBucketMount("my.out-bucket", bucket_endpoint_url="https://acc.r2.cloudflarestorage.com",
                                       secret=creds, force_path_style=True, requester_pays=True),
        "/pub": modal.CloudBucketMount("my-bucket", read_only=True),
    })
    def f():
        return 1
    ''')
RO_ID = "s3-my-bucket-runs-2024-ro-48e348dabc"
RW_ID = "s3-my-out-bucket-9c7cf3d603"


def _build(tmp_path: Path, source: str, *flags: str, **env: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    script = tmp_path / "bk.py"
    script.write_text(source)
    result = modalc(tmp_path, "build", str(script), "-o", str(tmp_path / "o"), *flags, **env)
    return result, tmp_path / "o"


def test_bucket_mounts_become_csi_volumes_and_volume_specs(tmp_path: Path) -> None:
    result, o = _build(tmp_path, APP)
    assert result.returncode == 0, out(result)
    job = (o / "bk-f.nomad.hcl").read_text()
    assert textwrap.indent(textwrap.dedent(f'''\
        volume "{RO_ID}" {{
          type            = "csi"
          source          = "{RO_ID}"
          read_only       = true
          access_mode     = "multi-node-reader-only"
          attachment_mode = "file-system"
          per_alloc       = false
        }}

        volume "{RW_ID}" {{
          type            = "csi"
          source          = "{RW_ID}"
          read_only       = false
          access_mode     = "multi-node-multi-writer"
          attachment_mode = "file-system"
          per_alloc       = false
        }}
        '''), "    ") in job
    assert textwrap.indent(textwrap.dedent(f'''\
        volume_mount {{
          volume      = "{RO_ID}"
          destination = "/data"
          read_only   = true
        }}
        '''), "      ") in job
    assert f'volume      = "{RW_ID}"\n        destination = "/out"\n        read_only   = false' in job
    assert nomad_schema.validate_hcl_string(job) == []
    ro = (o / f"{RO_ID}.volume.hcl").read_text()
    assert f'id          = "{RO_ID}"\n' in ro and f'external_id = "{RO_ID}"\n' in ro
    assert 'plugin_id   = "s3-csi"' in ro and 'type        = "csi"' in ro
    assert 'access_mode     = "multi-node-reader-only"' in ro and 'attachment_mode = "file-system"' in ro
    assert 'mount_flags = ["prefix runs/2024/", "read-only"]' in ro
    assert 'bucketName = "my-bucket"' in ro
    assert 'modalc secret "aws"' in ro and "secrets {" not in ro
    rw = (o / f"{RW_ID}.volume.hcl").read_text()
    assert ('mount_flags = ["endpoint-url https://acc.r2.cloudflarestorage.com", "force-path-style", '
            '"requester-pays", "allow-delete", "allow-overwrite"]') in rw
    assert 'access_mode     = "multi-node-multi-writer"' in rw and 'bucketName = "my.out-bucket"' in rw
    public = [p for p in o.glob("s3-my-bucket-ro-*.volume.hcl")]
    assert len(public) == 1 and "Credentials: none declared" in public[0].read_text()
    for path in [o / "bk-f.nomad.hcl", *o.glob("*.volume.hcl")]:
        formatted = subprocess.run([require_hclfmt(), str(path)], capture_output=True, check=True).stdout
        assert formatted.decode() == path.read_text(), path.name
    assert f"nomad volume register {RO_ID}.volume.hcl" in result.stderr
    again, _ = _build(tmp_path, APP)
    assert again.returncode == 0 and "already current" in again.stderr, "the IDs and specs are deterministic"


def test_bucket_build_to_stdout_shows_volume_specs(tmp_path: Path) -> None:
    script = tmp_path / "bk.py"
    script.write_text(APP)
    result = modalc(tmp_path, "build", str(script))
    assert result.returncode == 0, out(result)
    assert f"# {RO_ID}.volume.hcl\n" in result.stdout and "# bk-f.nomad.hcl\n" in result.stdout


@pytest.mark.parametrize("how", ["flag", "env"])
def test_s3_csi_plugin_flag_and_env(how: str, tmp_path: Path) -> None:
    if how == "flag":
        result, o = _build(tmp_path, APP, "--s3-csi-plugin", "mountpoint")
    else:
        result, o = _build(tmp_path, APP, MODALC_S3_CSI_PLUGIN="mountpoint")
    assert result.returncode == 0, out(result)
    assert 'plugin_id   = "mountpoint"' in (o / f"{RO_ID}.volume.hcl").read_text()
    assert "plugin 'mountpoint'" in result.stderr


def test_no_credential_value_anywhere(tmp_path: Path) -> None:
    assert modalc(tmp_path, "secret", "create", "aws", f"AWS_ACCESS_KEY_ID={SECRET_VALUE}").returncode == 0
    result, o = _build(tmp_path, APP)
    assert result.returncode == 0, out(result)
    assert SECRET_VALUE not in out(result)
    for path in o.rglob("*"):
        if path.is_file():
            assert SECRET_VALUE.encode() not in path.read_bytes(), path


FN = "@app.function(volumes={{'/b': {}}})  # <-\ndef f():\n    pass\n"


@pytest.mark.parametrize(("mount", "message", "hint"), [
    ("modal.CloudBucketMount('b', key_prefix='data')", "key_prefix='data' must end in '/'", "prefixed"),
    ("modal.CloudBucketMount('b', requester_pays=True)", "requester_pays=True needs credentials", ""),
    ("modal.CloudBucketMount('b', secret=creds, oidc_auth_role_arn='arn:aws:iam::1:role/r')",
     "oidc_auth_role_arn= (Modal's OIDC identity) is not supported", "node task the role"),
    (f"modal.CloudBucketMount('b', secret=modal.Secret.from_dict({{'AWS_SECRET_ACCESS_KEY': '{SECRET_VALUE}'}}))",
     "secret= must be a modal.Secret.from_name(...)", "modalc secret create"),
])
def test_bucket_errors(mount: str, message: str, hint: str, tmp_path: Path) -> None:
    result, _ = _build(tmp_path, HEAD + FN.format(mount))
    assert result.returncode == 2, out(result)
    assert "bk.py:6" in result.stderr and message in result.stderr and hint in result.stderr
    assert "Traceback" not in result.stderr and SECRET_VALUE not in out(result)


def test_bucket_mount_is_an_error_on_the_local_backend(tmp_path: Path) -> None:
    script = tmp_path / "bk.py"
    script.write_text(HEAD + FN.format("modal.CloudBucketMount('b', read_only=True)")
                      + "\n\n@app.local_entrypoint()\ndef main():\n    f.remote()\n")
    result = modalc(tmp_path, "run", str(script))
    assert result.returncode == 2, out(result)
    assert "bk.py:6" in result.stderr
    assert "modal.CloudBucketMount('b') needs a Nomad cluster with an S3 CSI plugin" in result.stderr
    assert not (tmp_path / "volumes").exists()


def test_deploy_registers_the_bucket_volume(double: NomadDouble, tmp_path: Path) -> None:
    script = tmp_path / "bk.py"
    script.write_text(HEAD + FN.format("modal.CloudBucketMount('b', key_prefix='p/', secret=creds)"))
    assert modalc(tmp_path, "secret", "create", "aws", f"AWS_ACCESS_KEY_ID={SECRET_VALUE}",
                  double=double).returncode == 0
    deployed = modalc(tmp_path, "deploy", "--s3-csi-plugin", "double-csi", str(script), double=double)
    assert deployed.returncode == 0, out(deployed)
    (vid, vol), = [(k[1], v) for k, v in double.volumes.csi.items()]
    assert vid.startswith("s3-b-p-") and f"registered CSI volume {vid!r}" in deployed.stderr
    assert vol["PluginID"] == "double-csi" and vol["ExternalID"] == vid
    assert vol["MountOptions"] == {"MountFlags": ["prefix p/", "allow-delete", "allow-overwrite"]}
    assert vol["Context"] == {"bucketName": "b"} and SECRET_VALUE not in repr(vol)
    assert vol["RequestedCapabilities"] == [{"AccessMode": "multi-node-multi-writer",
                                             "AttachmentMode": "file-system"}]
    again = modalc(tmp_path, "deploy", "--s3-csi-plugin", "double-csi", str(script), double=double)
    assert again.returncode == 0 and "registered CSI volume" not in again.stderr


def test_user_text_in_the_volume_spec_is_escaped(tmp_path: Path) -> None:
    evil = 'evil"\\n}\\nplugin_id = "x'
    result, o = _build(tmp_path, HEAD + FN.format(f"modal.CloudBucketMount('{evil}', key_prefix='a/${{x}}/')"))
    assert result.returncode == 0, out(result)
    (spec,) = o.glob("*.volume.hcl")
    text = spec.read_text()
    assert sum(line.startswith("plugin_id") for line in text.splitlines()) == 1
    assert '"prefix a/$${x}/"' in text
    formatted = subprocess.run([require_hclfmt(), str(spec)], capture_output=True, check=True).stdout
    assert formatted.decode() == text


def test_run_on_nomad_registers_the_bucket_volume(double: NomadDouble, tmp_path: Path) -> None:
    script = tmp_path / "bk.py"
    script.write_text(HEAD.replace(", required_keys=['AWS_ACCESS_KEY_ID']", "")
                      + FN.format("modal.CloudBucketMount('b', read_only=True)").replace("pass", "return 7")
                      + "\n\n@app.local_entrypoint()\ndef main():\n    print(f.remote())\n")
    ran = modalc(tmp_path, "run", str(script), double=double, MODALC_S3_CSI_PLUGIN="double-csi")
    assert ran.returncode == 0, out(ran)
    assert "7" in ran.stdout.split()
    (vol,) = double.volumes.csi.values()
    assert vol["PluginID"] == "double-csi" and vol["MountOptions"] == {"MountFlags": ["read-only"]}
    assert vol["RequestedCapabilities"][0]["AccessMode"] == "multi-node-reader-only"

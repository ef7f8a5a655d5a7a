"""``Image.run_function(f, ...)``: the build step's secrets (BuildKit build secrets), env, args, GPU and refusals.

``modalc build`` runs in-process (click's runner); ``modalc image build`` runs fake docker/podman executables
(tests/test_image_builder.py) that record their argv and the build secret files they are given.
"""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.modal_oracle import wheel as _wheel
from tests.test_image_builder import fake_path
from tests.test_secrets_volumes import SECRET_VALUE, modalc, out

HEAD = """import os

import modal

app = modal.App("rf")


def fetch(n, scale=1):
    with open(os.environ["OUT_FILE"], "w") as fh:
        fh.write(f"{n * scale} {os.environ['MODE']} {os.environ.get('HF_TOKEN') == os.environ['EXPECT']}")


"""
IMAGE = ("image = modal.Image.debian_slim().run_function(\n"
         "    fetch, {})  # <-\n\n\n@app.function(image=image)\ndef f():\n    pass\n")
SECRET = "secrets=[modal.Secret.from_name('hf', required_keys=['HF_TOKEN'])]"
FULL = IMAGE.format(SECRET + ", env={'MODE': \"it's\"}, args=(3,), kwargs={'scale': 2}, timeout=600")


def _build(tmp_path: Path, body: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    (tmp_path / "rf.py").write_text(HEAD + body)
    result = modalc(tmp_path, "build", "rf.py", "-o", "out", cwd=tmp_path)
    return result, tmp_path / "out"


def _context(o: Path) -> Path:
    (folder,) = (o / "images").iterdir()
    return folder


def test_secrets_are_build_secrets_never_values(tmp_path: Path) -> None:
    assert modalc(tmp_path, "secret", "create", "hf", f"HF_TOKEN={SECRET_VALUE}").returncode == 0
    result, o = _build(tmp_path, FULL)
    assert result.returncode == 0, out(result)
    dockerfile = (_context(o) / "Dockerfile").read_text()
    run = dockerfile.splitlines()[-1]
    assert run.startswith("RUN --mount=type=secret,id=hf,required=true set -a && . /run/secrets/hf && set +a && "
                          "MODE='it'\"'\"'s' MODALC_IN_CONTAINER=1 PYTHONUNBUFFERED=1 python -m agent_runtime "), run
    assert "--timeout 600 --call /tmp/modalc/files/1/call.pkl" in run
    assert "ENV MODE" not in dockerfile and "HF_TOKEN" not in dockerfile
    for path in o.rglob("*"):
        if path.is_file():
            assert SECRET_VALUE.encode() not in path.read_bytes(), path
    assert SECRET_VALUE not in out(result)
    assert "Image.run_function(fetch) reads build secret 'hf'" in result.stderr


def test_the_build_step_runs_with_its_args_env_and_secret_file(tmp_path: Path) -> None:
    """The RUN line's command, run here with the context's runtime, code and call file, and a secret file."""
    result, o = _build(tmp_path, FULL)
    assert result.returncode == 0, out(result)
    ctx = _context(o)
    run = (ctx / "Dockerfile").read_text().splitlines()[-1]
    command = run.split(" ", 2)[2]  # drop RUN and its --mount flag
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "hf").write_text(f"export HF_TOKEN='{SECRET_VALUE}'\n")
    command = (command.replace("/run/secrets/", f"{secrets}/").replace("/modalc/build-code", str(ctx / "code"))
               .replace("/tmp/modalc/files/", f"{ctx}/files/").replace("/tmp/modalc-build", str(tmp_path / "res")))
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ctx / "modalc-runtime"), "OUT_FILE": str(tmp_path / "o.txt"),
           "EXPECT": SECRET_VALUE, "HOME": str(tmp_path)}
    command = command.replace("python -m", f"{sys.executable} -m")
    ran = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (tmp_path / "o.txt").read_text() == "6 it's True"


FAKE = """#!/bin/sh
name=${0##*/}
echo "$name $*" >> "$FAKE_LOG"
for a in "$@"; do case "$a" in id=*,src=*) /bin/cat "${a#*,src=}" >> "$FAKE_SECRETS"; echo "$a" >> "$FAKE_SRCS";; esac; done
echo "DOCKER_BUILDKIT=$DOCKER_BUILDKIT" >> "$FAKE_LOG"
"""


def _image_build(tmp_path: Path, tools: tuple[str, ...]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = Path(fake_path(tmp_path, tools))
    for tool in tools:
        (bin_dir / tool).write_text(FAKE)
    log = tmp_path / "log"
    result = modalc(tmp_path, "image", "build", "rf.py", cwd=tmp_path,
                    PATH=f"{bin_dir}:{os.path.dirname(sys.executable)}", FAKE_LOG=str(log),
                    FAKE_SECRETS=str(tmp_path / "seen"), FAKE_SRCS=str(tmp_path / "srcs"))
    return result, log.read_text().splitlines() if log.exists() else []


def test_image_build_passes_build_secrets_from_the_local_store(tmp_path: Path) -> None:
    (tmp_path / "rf.py").write_text(HEAD + FULL)
    missing, calls = _image_build(tmp_path, ("docker",))
    assert missing.returncode == 2 and calls == [], out(missing)
    assert "rf.py:13" in missing.stderr and "build secret 'hf'" in missing.stderr
    assert modalc(tmp_path, "secret", "create", "hf", "OTHER=1").returncode == 0
    no_key, _ = _image_build(tmp_path, ("docker",))
    assert no_key.returncode == 2 and "missing required key: HF_TOKEN" in no_key.stderr
    assert modalc(tmp_path, "secret", "create", "hf", "--force", f"HF_TOKEN={SECRET_VALUE}").returncode == 0
    ok, calls = _image_build(tmp_path, ("docker",))
    assert ok.returncode == 0, out(ok)
    assert calls[0].startswith("docker build -t modalc:") and " --secret id=hf,src=" in calls[0]
    assert "DOCKER_BUILDKIT=1" in calls
    assert (tmp_path / "seen").read_text() == f"export HF_TOKEN={SECRET_VALUE}\n"
    src = (tmp_path / "srcs").read_text().strip().split(",src=")[1]
    assert not os.path.exists(src), "the secret file is removed after the build"
    assert SECRET_VALUE not in out(ok)


def test_gpu_step_is_noted_and_needs_podman_or_buildah(tmp_path: Path) -> None:
    result, o = _build(tmp_path, IMAGE.format("gpu='A100'"))
    assert result.returncode == 0, out(result)
    assert "asks for gpu=A100" in result.stderr and "podman or buildah" in result.stderr
    assert "# modalc: the next step asks for gpu=A100" in (_context(o) / "Dockerfile").read_text()
    refused, calls = _image_build(tmp_path, ("docker", "podman"))
    assert refused.returncode == 2 and calls == [], out(refused)
    assert "docker build cannot give a build step a GPU" in refused.stderr
    bin_dir = tmp_path / "bin"
    (bin_dir / "docker").unlink()
    ok, calls = _image_build(tmp_path, ("podman",))
    assert ok.returncode == 0, out(ok)
    assert calls[0].startswith("podman build -t modalc:") and " --device nvidia.com/gpu=all " in calls[0]


@pytest.mark.parametrize(("options", "message", "hint"), [
    ("volumes={'/data': modal.Volume.from_name('models')}",
     "Volume 'models' at '/data' cannot be mounted into an image build step", "mounts no volumes"),
    ("network_file_systems={'/n': modal.NetworkFileSystem.from_name('nfs')}",
     "NetworkFileSystem 'nfs' at '/n' cannot be mounted", ""),
    ("volumes={'/b': modal.CloudBucketMount('bkt')}", "CloudBucketMount 'bkt' at '/b' cannot be mounted", ""),
    (f"secrets=[modal.Secret.from_dict({{'K': '{SECRET_VALUE}'}})]",
     "secrets= holds a Secret of kind 'dict': only modal.Secret.from_name(...)", "modalc secret create --local"),
    ("gpu='Z9000'", "Z9000", ""),
    ("env={'1BAD': 'x'}", "env key '1BAD' is not a valid environment variable name", ""),
    ("cpu=-1", "cpu", ""),
])
def test_run_function_errors(options: str, message: str, hint: str, tmp_path: Path) -> None:
    result, _ = _build(tmp_path, IMAGE.format(options))
    assert result.returncode == 2, out(result)
    assert "rf.py:13" in result.stderr and message in result.stderr and hint in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and SECRET_VALUE not in out(result)


def test_lambda_is_refused(tmp_path: Path) -> None:
    (tmp_path / "rf.py").write_text(HEAD + "image = modal.Image.debian_slim().run_function(lambda: 1)\n")
    result = modalc(tmp_path, "build", "rf.py", cwd=tmp_path)
    assert result.returncode == 2 and "does not support lambda functions" in result.stderr, out(result)


def test_no_effect_options_are_accepted(tmp_path: Path) -> None:
    result, o = _build(tmp_path, IMAGE.format("cpu=2.0, memory=1024, cloud='aws', region='us-east-1', "
                                              "force_build=True, include_source=False"))
    assert result.returncode == 0, out(result)
    assert "--no-input" in (_context(o) / "Dockerfile").read_text()


def _real_keywords(path: str, cls: str, method: str) -> dict[str, Any]:
    with zipfile.ZipFile(_wheel()) as whl:
        tree = ast.parse(whl.read(path).decode())
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls)
    fn = next(n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == method)
    return {a.arg: eval(compile(ast.Expression(d), "<default>", "eval"), {})
            for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults, strict=True) if d is not None}


def test_run_function_keywords_and_defaults_match_modal() -> None:
    from agent_runtime.sdk.image import Image

    mine = {k: p.default for k, p in inspect.signature(Image.run_function).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert mine == _real_keywords("modal/_image.py", "_Image", "run_function")


def test_cloud_bucket_mount_fields_and_defaults_match_modal() -> None:
    from agent_runtime.sdk.objects import CloudBucketMount

    with zipfile.ZipFile(_wheel()) as whl:
        tree = ast.parse(whl.read("modal/cloud_bucket_mount.py").decode())
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "_CloudBucketMount")
    real = {s.target.id: (ast.literal_eval(s.value) if s.value is not None else inspect.Parameter.empty)
            for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}
    mine = {k: p.default for k, p in inspect.signature(CloudBucketMount.__init__).parameters.items() if k != "self"}
    assert mine == real

"""Images as build recipes: every builder → Dockerfile instructions, a build context, a content tag.

Every generated Dockerfile (a table of recipes covering each builder, and the
examples' goldens) is read with ``dockerfile-parse``: known instructions only,
FROM first, every COPY source present in the context written beside it.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from dockerfile_parse import DockerfileParser

from compiler.cli import main
from compiler.errors import UserError
from compiler.lower import BuildOptions
from compiler.phases import CompilerData
from compiler.refs import parse_import_ref

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
KNOWN = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
         "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER"}


def compile_outputs(script: Path) -> dict[str, str | bytes]:
    return CompilerData(parse_import_ref(str(script)), BuildOptions(default_python="3.11")).outputs("hcl")


def images(outputs: dict[str, str | bytes]) -> dict[str, tuple[str, set[str]]]:
    """hash → (Dockerfile text, context paths)."""
    out: dict[str, tuple[str, set[str]]] = {}
    for rel, content in outputs.items():
        parts = rel.split("/")
        if parts[0] == "images" and len(parts) == 3 and parts[2] == "Dockerfile":
            assert isinstance(content, str)
            ctx = {"/".join(r.split("/")[2:]) for r in outputs if r.startswith(f"images/{parts[1]}/")}
            out[parts[1]] = (content, ctx - {"Dockerfile"})
    return out


def check_dockerfile(text: str, context: set[str]) -> list[dict[str, str]]:
    parser = DockerfileParser(fileobj=__import__("io").BytesIO(text.encode()))
    structure = parser.structure
    assert structure and structure[0]["instruction"] == "FROM", text
    for item in structure:
        assert item["instruction"] in KNOWN, item
        if item["instruction"] not in ("COPY", "ADD"):
            continue
        value = item["value"]
        words = value.split()
        if any(w.startswith("--from") for w in words):
            continue
        words = [w for w in words if not w.startswith("--")]
        paths = json.loads(" ".join(words)) if words[0].startswith("[") else words
        for source in paths[:-1]:
            if "://" in source:
                continue
            src = source.rstrip("/")
            assert src in context or any(c.startswith(src + "/") for c in context), (source, sorted(context))
    return structure


# -- a project with every kind of local file ---------------------------------------------------------

@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "assets" / "sub").mkdir(parents=True)
    (tmp_path / "assets" / "a.txt").write_text("a\n")
    (tmp_path / "assets" / "sub" / "b.bin").write_bytes(bytes(range(256)))
    (tmp_path / "requirements.txt").write_text("requests\n")
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""
        [project]
        name = "x"
        dependencies = ["attrs>=23"]
        [project.optional-dependencies]
        dev = ["pytest"]
    """))
    (tmp_path / "env.yml").write_text("dependencies: [numpy]\n")
    (tmp_path / "helper.py").write_text("X = 1\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("Y = 2\n")
    (tmp_path / "ctx" / "conf").mkdir(parents=True)
    (tmp_path / "ctx" / "app.cfg").write_text("cfg\n")
    (tmp_path / "ctx" / "conf" / "c.ini").write_text("ini\n")
    (tmp_path / "Dockerfile.base").write_text(
        "# a user Dockerfile\nFROM ubuntu:24.04 AS base\nRUN apt-get update && \\\n    apt-get install -y python3\n"
        "COPY app.cfg /etc/app.cfg\nCOPY [\"conf\", \"/etc/conf\"]\nCOPY --from=base /etc/hosts /tmp/hosts\n"
        "ADD https://example.com/x.tar.gz /opt/\n")
    return tmp_path


RECIPES = {
    "debian_slim": 'modal.Image.debian_slim(python_version="3.12")',
    "from_registry_add_python": 'modal.Image.from_registry("nvidia/cuda:12.2.0-devel-ubuntu22.04", '
                                'add_python="3.11", setup_dockerfile_commands=["RUN apt-get update"])',
    "micromamba": 'modal.Image.micromamba(python_version="3.11").micromamba_install("numpy", '
                  'channels=["conda-forge"]).micromamba_install(spec_file="env.yml")',
    "pip_install": 'modal.Image.debian_slim().pip_install("torch==2.3", "numpy<2", index_url="https://i.example", '
                   'extra_index_url="https://x.example", find_links="https://f.example", pre=True, '
                   'extra_options="--no-deps")',
    "uv_pip_install": 'modal.Image.debian_slim().uv_pip_install("fastapi", requirements=["requirements.txt"], '
                      'extra_index_url="https://x.example", pre=True, extra_options="--no-build-isolation", '
                      'uv_version="0.4.0")',
    "requirements": 'modal.Image.debian_slim().pip_install_from_requirements("requirements.txt", '
                    'index_url="https://i.example")',
    "pyproject": 'modal.Image.debian_slim().pip_install_from_pyproject("pyproject.toml", '
                 'optional_dependencies=["dev"])',
    "apt_run_env": 'modal.Image.debian_slim().apt_install("git", "curl").run_commands("echo one", '
                   '"if true; then\\n  echo two\\nfi").env({"A": "x y", "B": "$HOME \\"q\\" \\\\ z"})',
    "workdir_entrypoint_shell_cmd": 'modal.Image.debian_slim().workdir("/app").shell(["/bin/bash", "-c"])'
                                    '.entrypoint(["/bin/sh", "-c"]).cmd(["echo", "hi"])',
    "dockerfile_commands": 'modal.Image.debian_slim().dockerfile_commands(["RUN echo a", "COPY app.cfg /etc/"], '
                           'context_dir="ctx")',
    "from_dockerfile": 'modal.Image.from_dockerfile("Dockerfile.base", context_dir="ctx", add_python="3.11")',
    "add_local": 'modal.Image.debian_slim().add_local_file("assets/a.txt", "/opt/a.txt", copy=True)'
                 '.add_local_dir("assets", "/opt/assets", ignore=["*.txt"]).add_local_python_source("helper", "pkg")',
    "run_function": 'modal.Image.debian_slim().pip_install("six").run_function(setup).env({"AFTER": "1"})',
}


def write_script(project: Path, expr: str, name: str = "app.py") -> Path:
    script = project / name
    script.write_text(textwrap.dedent(f"""
        import modal

        def setup():
            open("/tmp/setup-ran", "w").write("yes")

        image = {expr}
        app = modal.App("images-test", image=image)

        @app.function()
        def f(x):
            return x
    """))
    return script


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_builder_makes_a_valid_dockerfile(project: Path, name: str) -> None:
    outputs = compile_outputs(write_script(project, RECIPES[name]))
    ((tag, (dockerfile, context)),) = images(outputs).items()
    structure = check_dockerfile(dockerfile, context)
    assert f'image   = "modalc:{tag}"' in str(outputs["images-test-f.nomad.hcl"])
    # The runtime is in every image, with its ABI.
    assert "COPY modalc-runtime/ /opt/modalc-runtime/" in dockerfile
    assert "modalc-runtime/agent_runtime/__main__.py" in context
    assert str(project) not in dockerfile
    instructions = [s["instruction"] for s in structure]
    assert instructions.count("FROM") >= 1


def dockerfile_of(project: Path, expr: str) -> tuple[str, set[str]]:
    ((_, found),) = images(compile_outputs(write_script(project, expr))).items()
    return found


def test_builders_render_their_options(project: Path) -> None:
    pip, _ = dockerfile_of(project, RECIPES["pip_install"])
    assert ("RUN python -m pip install --no-cache-dir --index-url https://i.example --extra-index-url "
            "https://x.example --find-links https://f.example --pre --no-deps torch==2.3 'numpy<2'") in pip
    uv, ctx = dockerfile_of(project, RECIPES["uv_pip_install"])
    assert "python -m pip install --no-cache-dir uv==0.4.0 && python -m uv pip install --system" in uv
    assert "-r /tmp/modalc/files/1/requirements-0.txt" in uv and "files/1/requirements-0.txt" in ctx
    py, _ = dockerfile_of(project, RECIPES["pyproject"])
    assert "pip install --no-cache-dir 'attrs>=23' pytest" in py
    mamba, ctx = dockerfile_of(project, RECIPES["micromamba"])
    assert "RUN micromamba install -y -n base -c conda-forge numpy" in mamba
    assert "-f /tmp/modalc/files/2/env.yml" in mamba and "files/2/env.yml" in ctx
    reg, _ = dockerfile_of(project, RECIPES["from_registry_add_python"])
    assert reg.startswith("FROM nvidia/cuda:12.2.0-devel-ubuntu22.04\nRUN apt-get update\n"
                          "COPY --from=python:3.11-slim-bookworm /usr/local/ /usr/local/\n")
    misc, _ = dockerfile_of(project, RECIPES["workdir_entrypoint_shell_cmd"])
    assert 'WORKDIR /app\nSHELL ["/bin/bash", "-c"]\nENTRYPOINT ["/bin/sh", "-c"]\nCMD ["echo", "hi"]' in misc


def test_env_and_multiline_commands_survive_the_dockerfile(project: Path) -> None:
    text, _ = dockerfile_of(project, RECIPES["apt_run_env"])
    env = {}
    for item in DockerfileParser(fileobj=__import__("io").BytesIO(text.encode())).structure:
        if item["instruction"] == "ENV":
            key, _, value = item["value"].partition("=")
            env[key] = value
    assert env["A"] == '"x y"'
    assert env["B"] == '"\\$HOME \\"q\\" \\\\ z"'
    (multi,) = [line for line in text.splitlines() if "base64 -d" in line]
    encoded = shlex.split(multi)[2]
    out = subprocess.run(f"echo {encoded} | base64 -d | sh", shell=True, capture_output=True, text=True)
    assert out.stdout == "two\n"


def test_user_dockerfile_copies_are_moved_into_the_context(project: Path) -> None:
    text, ctx = dockerfile_of(project, RECIPES["from_dockerfile"])
    assert "COPY files/0/app.cfg /etc/app.cfg" in text
    assert 'COPY ["files/0/conf", "/etc/conf"]' in text
    assert "COPY --from=base /etc/hosts /tmp/hosts" in text  # another stage: unchanged
    assert "ADD https://example.com/x.tar.gz /opt/" in text
    assert {"files/0/app.cfg", "files/0/conf/c.ini"} <= ctx
    assert "RUN apt-get update && apt-get install -y python3" in text


def test_copy_of_a_missing_file_is_a_user_error(project: Path) -> None:
    script = write_script(project, 'modal.Image.debian_slim().dockerfile_commands(["COPY nope.txt /x"])')
    with pytest.raises(UserError, match=r"nope\.txt: no such file"):
        compile_outputs(script)
    script = write_script(project, 'modal.Image.debian_slim().dockerfile_commands(["COPY ../x /x"])')
    with pytest.raises(UserError, match="outside the build context"):
        compile_outputs(script)


# -- run_function --------------------------------------------------------------------------------------

def test_run_function_runs_with_the_runtime_in_the_build(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    out = compile_outputs(write_script(project, RECIPES["run_function"]))
    ((tag, (text, ctx)),) = images(out).items()
    lines = text.splitlines()
    run = next(i for i, line in enumerate(lines) if "python -m agent_runtime" in line)
    assert lines.index("COPY modalc-runtime/ /opt/modalc-runtime/") < run
    assert lines.index("COPY code/ /modalc/build-code/") < run
    assert lines[run + 1] == 'ENV AFTER="1"'
    assert text.count("COPY modalc-runtime/") == 1
    assert "code/app.py" in ctx
    # Run the step's command against the written context, as the image build would.
    context = tmp_path_factory.mktemp("ctx")
    for rel, content in out.items():
        if rel.startswith(f"images/{tag}/"):
            path = context / rel.split("/", 2)[2]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)
    marker = context / "ran"
    (context / "code" / "app.py").write_text((context / "code" / "app.py").read_text().replace(
        "/tmp/setup-ran", str(marker)))
    argv = shlex.split(lines[run].removeprefix("RUN ").split(" && rm")[0])
    argv = [a.replace("/modalc/build-code", str(context / "code")).replace("/tmp/modalc-build", str(context / "r"))
            for a in argv]
    env_vars = dict(a.split("=", 1) for a in argv[:2])
    proc = subprocess.run([sys.executable, *argv[3:]], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env_vars, "PYTHONPATH": str(context / "modalc-runtime")})
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text() == "yes"


def test_run_function_with_arguments_gets_a_call_file(project: Path) -> None:
    script = write_script(project, 'modal.Image.debian_slim().run_function(setup, args=(1,))')
    out = compile_outputs(script)
    (tag,) = images(out)
    assert f"images/{tag}/files/1/call.pkl" in out
    assert "--call /tmp/modalc/files/1/call.pkl" in str(out[f"images/{tag}/Dockerfile"])


def test_run_function_image_changes_with_the_code(project: Path) -> None:
    script = write_script(project, RECIPES["run_function"])
    before = set(images(compile_outputs(script)))
    script.write_text(script.read_text() + "\n# changed\n")
    assert set(images(compile_outputs(script))) != before


# -- the tag ------------------------------------------------------------------------------------------

def test_tag_is_stable_and_follows_copied_files(project: Path) -> None:
    script = write_script(project, RECIPES["add_local"])
    first = set(images(compile_outputs(script)))
    assert set(images(compile_outputs(script))) == first  # unchanged: same tag
    (project / "assets" / "sub" / "b.bin").write_bytes(b"changed")
    changed = set(images(compile_outputs(script)))
    assert changed != first
    (project / "helper.py").write_text("X = 2\n")
    assert set(images(compile_outputs(script))) not in (first, changed)


def test_different_recipes_have_different_tags(project: Path) -> None:
    tags = [set(images(compile_outputs(write_script(project, expr)))) for expr in RECIPES.values()]
    assert len({frozenset(t) for t in tags}) == len(RECIPES)


def test_tag_does_not_follow_the_checkout_location(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    import shutil

    other = tmp_path_factory.mktemp("elsewhere") / "proj"
    shutil.copytree(project, other)
    a = images(compile_outputs(write_script(project, RECIPES["from_dockerfile"])))
    b = images(compile_outputs(write_script(other, RECIPES["from_dockerfile"])))
    assert a.keys() == b.keys()


# -- goldens ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.py")))
def test_golden_dockerfiles_parse(name: str) -> None:
    found = images(compile_outputs(EXAMPLES / f"{name}.py"))
    for text, context in found.values():
        check_dockerfile(text, context)
    for path in (EXAMPLES / "golden" / name).glob("images/*/Dockerfile"):
        assert path.parent.name in found


# -- modalc build -o DIR: contexts, stale image folders, --check ---------------------------------------

def test_build_writes_contexts_and_removes_stale_image_folders(project: Path, tmp_path: Path) -> None:
    script = write_script(project, RECIPES["add_local"])
    other = write_script(project, 'modal.Image.debian_slim().apt_install("jq")', name="other.py")
    other.write_text(other.read_text().replace('"images-test"', '"other-app"'))
    out = tmp_path / "deploy"
    runner = CliRunner()
    assert runner.invoke(main, ["build", str(other), "-o", str(out)]).exit_code == 0
    first = runner.invoke(main, ["build", str(script), "-o", str(out)])
    assert first.exit_code == 0, first.output
    folders = {p.name for p in (out / "images").iterdir()}
    assert len(folders) == 2
    (tag,) = set(images(compile_outputs(script)))
    assert (out / "images" / tag / "files" / "2" / "sub" / "b.bin").read_bytes() == bytes(range(256))
    check = ["build", str(script), "-o", str(out), "--check"]
    assert runner.invoke(main, check).exit_code == 0
    (project / "assets" / "sub" / "b.bin").write_bytes(b"\xff\xfe new")
    stale = runner.invoke(main, check)
    assert stale.exit_code == 1
    assert "+++ b/images/" in stale.stdout and "Binary files" in stale.stdout
    second = runner.invoke(main, ["build", str(script), "-o", str(out)])
    assert second.exit_code == 0, second.output
    assert f"removed {out}/images/{tag}/ (" in second.stderr  # one line per build context, with its file count
    assert f"wrote {out}/images/" in second.stderr and "files of an image's build context)" in second.stderr
    assert not (out / "images" / tag).exists()
    assert len({p.name for p in (out / "images").iterdir()}) == 2  # the other app's image stays
    assert runner.invoke(main, check).exit_code == 0

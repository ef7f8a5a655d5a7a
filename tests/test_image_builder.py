"""``modalc image build``: fake docker/podman/buildah executables on a temporary PATH record their argv."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from compiler.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "examples" / "built_image.py")
FAKE = """#!/bin/sh
name=${0##*/}
echo "$name $*" >> "$FAKE_LOG"
if [ "$name" = "$FAKE_FAIL" ]; then
  echo "step 1/9: pulling base" ; echo "Cannot connect to the daemon" >&2 ; exit 7
fi
if [ "$1" = build ] || [ "$1" = bud ]; then test -f "$4/Dockerfile" || exit 9; fi
"""


def fake_path(tmp_path: Path, tools: tuple[str, ...]) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in tools:
        exe = bin_dir / tool
        exe.write_text(FAKE)
        exe.chmod(0o755)
    return str(bin_dir)


def invoke(tmp_path: Path, tools: tuple[str, ...], *args: str, fail: str = "") -> tuple[object, list[str]]:
    log = tmp_path / "log"
    env = {"PATH": fake_path(tmp_path, tools), "FAKE_LOG": str(log), "FAKE_FAIL": fail}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # shutil.which and the subprocess read the real environment
    try:
        result = CliRunner().invoke(main, ["image", "build", SCRIPT, *args])
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    lines = log.read_text().splitlines() if log.exists() else []
    return result, lines


def golden_tag() -> str:
    (folder,) = (ROOT / "examples" / "golden" / "built_image" / "images").iterdir()
    return folder.name


@pytest.mark.parametrize(("tools", "expected"), [
    (("docker", "podman", "buildah"), "docker build"),
    (("podman", "buildah"), "podman build"),
    (("buildah",), "buildah bud"),
])
def test_first_tool_on_path_builds(tmp_path: Path, tools: tuple[str, ...], expected: str) -> None:
    result, lines = invoke(tmp_path, tools)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    (line,) = lines
    tag = f"modalc:{golden_tag()}"
    assert line.startswith(f"{expected} -t {tag} ")
    assert line.endswith(f"/{golden_tag()}")
    assert result.stdout.strip() == tag  # type: ignore[attr-defined]


def test_push_pushes_after_building(tmp_path: Path) -> None:
    result, lines = invoke(tmp_path, ("podman",), "--push", "--image-registry", "reg.example/team")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    tag = f"reg.example/team/modalc:{golden_tag()}"
    assert [line.split()[:3] for line in lines] == [["podman", "build", "-t"], ["podman", "push", tag]]
    assert lines[0].split()[3] == tag


def test_push_needs_a_registry(tmp_path: Path) -> None:
    result, lines = invoke(tmp_path, ("docker",), "--push")
    assert result.exit_code == 2
    assert "--push needs --image-registry" in result.stderr  # type: ignore[attr-defined]
    assert lines == []


def test_no_tool_on_path(tmp_path: Path) -> None:
    result, _ = invoke(tmp_path, ())
    assert result.exit_code == 2
    err = result.stderr  # type: ignore[attr-defined]
    assert "no container image builder found: install docker, podman or buildah" in err
    assert "Traceback" not in result.output  # type: ignore[attr-defined]


def test_failing_tool_shows_its_output_tail(tmp_path: Path) -> None:
    result, lines = invoke(tmp_path, ("docker",), "--push", "--image-registry", "r.example", fail="docker")
    assert result.exit_code == 1
    err = result.stderr  # type: ignore[attr-defined]
    assert "`docker build` failed with exit code 7" in err
    assert "  | Cannot connect to the daemon" in err
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    assert len(lines) == 1  # no push after a failed build


def test_output_folder_keeps_the_contexts(tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    result, _ = invoke(tmp_path, ("docker",), "-o", str(out))
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    folder = out / golden_tag()
    assert (folder / "Dockerfile").read_bytes() == (
        ROOT / "examples" / "golden" / "built_image" / "images" / golden_tag() / "Dockerfile").read_bytes()
    assert (folder / "modalc-runtime" / "agent_runtime" / "__main__.py").is_file()
    assert (folder / "files" / "5" / "greeting.txt").is_file()

"""Golden tests: every ``examples/*.py`` compiles to exactly the files in ``examples/golden/<name>/``.

Regenerate after an intended change with ``MODALC_UPDATE_GOLDENS=1 python -m pytest tests/test_goldens.py``.
Every golden is also checked with HashiCorp's ``hclfmt`` and the shared Nomad validator, and read back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from compiler.cli import main
from compiler.lower import BuildOptions
from compiler.phases import CompilerData
from compiler.refs import parse_import_ref

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
GOLDEN = EXAMPLES / "golden"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(ROOT.parent / "shared" / "nomad"))
import nomad_schema  # noqa: E402

UPDATE = os.environ.get("MODALC_UPDATE_GOLDENS") == "1"
EXAMPLE_NAMES = sorted(p.stem for p in EXAMPLES.glob("*.py"))
FORBIDDEN = ("/work/", "/tmp/", "/home/", str(ROOT), sys.version.split()[0])


def compile_script(path: Path, fmt: str = "both") -> dict[str, bytes]:
    """The build's files as bytes, without the runtime's sources (they follow agent_runtime, not the app)."""
    data = CompilerData(parse_import_ref(str(path)), BuildOptions(default_python="3.11"))
    return without_runtime({rel: v.encode() if isinstance(v, str) else v for rel, v in data.outputs(fmt).items()})


def without_runtime(files: dict[str, bytes]) -> dict[str, bytes]:
    return {rel: v for rel, v in files.items() if "/modalc-runtime/" not in rel}


def read_folder(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def golden_files(suffix: str) -> list[Path]:
    return sorted(GOLDEN.rglob(f"*{suffix}"))


def require_hclfmt() -> str:
    path = shutil.which("hclfmt")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("hclfmt is not installed (CI is set); run ../shared/tools/install-hcl-tools")
        pytest.skip("hclfmt is not installed and CI is not set (CI fails here instead); "
                    "run ../shared/tools/install-hcl-tools")
    return path


def strip_heredoc_newline(job: dict) -> dict:
    # python-hcl2 drops the final newline of a heredoc, so template data read back from HCL
    # may lack the one trailing "\n" the JSON has; compare EmbeddedTmpl modulo that newline.
    for group in job.get("TaskGroups") or []:
        for task in group.get("Tasks") or []:
            for tpl in task.get("Templates") or []:
                if isinstance(tpl.get("EmbeddedTmpl"), str):
                    tpl["EmbeddedTmpl"] = tpl["EmbeddedTmpl"].removesuffix("\n")
    return job


# -- goldens ---------------------------------------------------------------------------------------

def test_there_are_enough_examples() -> None:
    assert len(EXAMPLE_NAMES) >= 8


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_golden(name: str) -> None:
    outputs = compile_script(EXAMPLES / f"{name}.py")
    folder = GOLDEN / name
    if UPDATE:
        shutil.rmtree(folder, ignore_errors=True)
        for rel, data in outputs.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
    current = read_folder(folder)
    assert sorted(current) == sorted(outputs), "file set differs; regenerate with MODALC_UPDATE_GOLDENS=1"
    for rel, data in outputs.items():
        assert current[rel] == data, f"{name}/{rel} is stale; regenerate with MODALC_UPDATE_GOLDENS=1"
        for bad in FORBIDDEN:
            assert bad.encode() not in data, f"{name}/{rel} contains the machine-specific {bad!r}"


def test_no_stray_golden_folders() -> None:
    assert sorted(p.name for p in GOLDEN.iterdir() if p.is_dir()) == EXAMPLE_NAMES


# -- checks over every golden ----------------------------------------------------------------------

HCL_GOLDENS = golden_files(".nomad.hcl")
JSON_GOLDENS = golden_files(".nomad.json")


def _id(p: Path) -> str:
    return p.relative_to(GOLDEN).as_posix()


@pytest.mark.parametrize("path", HCL_GOLDENS, ids=_id)
def test_hclfmt_identical(path: Path) -> None:
    hclfmt = require_hclfmt()
    out = subprocess.run([hclfmt, str(path)], capture_output=True, check=True)
    assert out.stdout == path.read_bytes()
    subprocess.run([hclfmt, "-check", str(path)], capture_output=True, check=True)


@pytest.mark.parametrize("path", HCL_GOLDENS, ids=_id)
def test_hcl_valid_and_reads_back_as_json(path: Path) -> None:
    assert nomad_schema.validate_hcl_file(str(path), warnings=True) == []
    job, problems = nomad_schema.hcl_to_api_job(str(path))
    assert problems == []
    expected = json.loads(path.with_name(path.name.replace(".hcl", ".json")).read_text())["Job"]
    assert strip_heredoc_newline(job) == strip_heredoc_newline(expected)


@pytest.mark.parametrize("path", JSON_GOLDENS, ids=_id)
def test_json_valid(path: Path) -> None:
    assert nomad_schema.validate_api_job(json.loads(path.read_text()), warnings=True) == []


# -- determinism, --check, stale files, formats ----------------------------------------------------

def test_in_process_builds_are_identical() -> None:
    for name in EXAMPLE_NAMES:
        assert compile_script(EXAMPLES / f"{name}.py") == compile_script(EXAMPLES / f"{name}.py")


def test_subprocess_build_from_other_cwd_matches_golden(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "compiler", "build", str(EXAMPLES / "built_image.py"), "-o", str(out),
         "--format", "both"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    written = read_folder(out)
    assert any("/modalc-runtime/agent_runtime/" in rel for rel in written)  # the build context is complete
    assert without_runtime(written) == read_folder(GOLDEN / "built_image")


def test_check_detects_stale_and_current(tmp_path: Path) -> None:
    folder = tmp_path / "deploy"
    runner = CliRunner()
    args = ["build", str(EXAMPLES / "hello.py"), "-o", str(folder), "--format", "both", "--check"]
    missing = runner.invoke(main, args)
    assert missing.exit_code == 1 and "+++ b/images/" in missing.stdout
    assert runner.invoke(main, args[:-1]).exit_code == 0
    assert without_runtime(read_folder(folder)) == read_folder(GOLDEN / "hello")
    ok = runner.invoke(main, args)
    assert ok.exit_code == 0, ok.output
    spec = folder / "hello-square.nomad.hcl"
    spec.write_text(spec.read_text().replace('memory = 128', 'memory = 64'))
    stale = runner.invoke(main, args)
    assert stale.exit_code == 1
    assert "--- a/hello-square.nomad.hcl" in stale.stdout
    assert "+++ b/hello-square.nomad.hcl" in stale.stdout
    assert "\n-        memory = 64\n" in stale.stdout
    assert "\n+        memory = 128\n" in stale.stdout
    assert "is stale" in stale.stderr


def test_removed_function_removes_its_file(tmp_path: Path) -> None:
    script = tmp_path / "shrinking.py"
    two = ('import modal\napp = modal.App("shrink")\n\n@app.function()\ndef a():\n    return 1\n\n'
           '@app.function()\ndef b():\n    return 2\n')
    script.write_text(two)
    out = tmp_path / "deploy"
    (out).mkdir()
    (out / "unrelated.nomad.hcl").write_text('job "x" {}\n')
    runner = CliRunner()
    first = runner.invoke(main, ["build", str(script), "-o", str(out)])
    assert first.exit_code == 0, first.output
    assert (out / "shrink-b.nomad.hcl").exists()
    script.write_text(two.split("@app.function()\ndef b")[0] + "# b was removed\n")
    second = runner.invoke(main, ["build", str(script), "-o", str(out)])
    assert second.exit_code == 0, second.output
    assert "removed" in second.stderr
    assert not (out / "shrink-b.nomad.hcl").exists()
    assert (out / "shrink-a.nomad.hcl").exists()
    assert (out / "unrelated.nomad.hcl").exists()  # not this app's file


def test_format_json_only(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["build", str(EXAMPLES / "pipeline.py"), "-o", str(tmp_path),
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    specs = sorted(p.name for p in tmp_path.glob("*.nomad.*"))
    assert specs == sorted(p.name for p in (GOLDEN / "pipeline").glob("*.nomad.json"))
    for p in tmp_path.glob("*.nomad.json"):
        assert p.read_text() == (GOLDEN / "pipeline" / p.name).read_text()


# -- escaping --------------------------------------------------------------------------------------

def test_escaping(tmp_path: Path) -> None:
    script = FIXTURES / "escaping_app.py"
    outputs = compile_script(script)
    (hcl_name,) = [n for n in outputs if n.endswith(".nomad.hcl")]
    path = tmp_path / hcl_name
    path.write_bytes(outputs[hcl_name])
    if shutil.which("hclfmt") or os.environ.get("CI"):
        out = subprocess.run([require_hclfmt(), str(path)], capture_output=True, check=True)
        assert out.stdout == path.read_bytes()
    assert nomad_schema.validate_hcl_file(str(path), warnings=True) == []
    job, problems = nomad_schema.hcl_to_api_job(str(path))
    assert problems == []
    namespace: dict[str, object] = {}
    # Read the fixture's expected strings without importing it as a module.
    source = script.read_text(encoding="utf-8")
    exec(compile(source.split("app = modal.App")[0].replace("import modal", ""), str(script), "exec"), namespace)
    env = job["TaskGroups"][0]["Tasks"][0]["Env"]
    for key, value in namespace["TRICKY_ENV"].items():  # type: ignore[attr-defined]
        assert env[key] == value, key
    assert job["Meta"]["modalc_app"] == 'esc"ape\\${x}%{y}{{ z }}'
    (code,) = [t for t in job["TaskGroups"][0]["Tasks"][0]["Templates"] if t["DestPath"].endswith(".py")]
    # python-hcl2 drops a heredoc's final newline (see strip_heredoc_newline).
    assert code["EmbeddedTmpl"].removesuffix("\n") == source.removesuffix("\n")
    api = json.loads(outputs[hcl_name.replace(".hcl", ".json")])
    assert nomad_schema.validate_api_job(api, warnings=True) == []
    assert strip_heredoc_newline(job) == strip_heredoc_newline(api["Job"])

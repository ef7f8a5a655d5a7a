"""The files ``modalc run`` accepts, as ``modal run`` does: real ``modalc`` processes on the local backend.

A script whose file name is not an identifier (``long-training.py``) runs; a
module inside a package with relative imports runs with ``-m``; the same file
run by its path gets a clear error pointing at ``-m`` (Modal imports a script
as a top-level module: modal/cli/import_refs.py); a further period in the
name is refused as Modal refuses it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modalc(*args: str, home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -P -m compiler`` from ``cwd`` (not the checkout), with this checkout's code on the path.

    ``-P`` keeps the working folder off ``sys.path``, as it is for the installed ``modalc`` console script.
    """
    env = {**os.environ, "MODALC_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("NOMAD_ADDR", None)
    return subprocess.run([sys.executable, "-P", "-m", "compiler", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=90)

APP = textwrap.dedent('''
    import modal
    {extra}
    app = modal.App({name})


    @app.function()
    def work(x: int) -> int:
        return {body}


    @app.local_entrypoint()
    def main() -> None:
        print("result", work.remote(7))
''')


def _package(tmp_path: Path) -> Path:
    pkg = tmp_path / "proj" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text("def scale(x: int) -> int:\n    return x * 3\n")
    (pkg / "mod.py").write_text(APP.format(extra="from .helpers import scale\n", name='"pkg-app"', body="scale(x)"))
    return pkg


def test_a_dashed_file_name_runs_and_names_the_app(tmp_path: Path) -> None:
    script = tmp_path / "long-training.py"
    script.write_text(APP.format(extra="", name="", body="x * 2"))
    result = modalc("run", str(script), home=tmp_path / "home", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "result 14" in result.stdout
    built = modalc("build", str(script), "-o", str(tmp_path / "out"), home=tmp_path / "home", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "out" / "long-training-work.nomad.hcl").is_file()


def test_a_package_module_with_relative_imports_runs_with_dash_m(tmp_path: Path) -> None:
    _package(tmp_path)
    result = modalc("run", "-m", "pkg.mod", home=tmp_path / "home", cwd=tmp_path / "proj")
    assert result.returncode == 0, result.stderr
    assert "result 21" in result.stdout


def test_a_package_module_run_by_path_points_at_dash_m(tmp_path: Path) -> None:
    _package(tmp_path)
    result = modalc("run", "proj/pkg/mod.py", home=tmp_path / "home", cwd=tmp_path)
    assert result.returncode == 2
    assert "proj/pkg/mod.py:3: relative import" in result.stderr
    assert "`modalc run -m pkg.mod`" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_further_period_in_the_file_name_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "train.v2.py"
    script.write_text(APP.format(extra="", name="", body="x"))
    result = modalc("build", str(script), home=tmp_path / "home", cwd=tmp_path)
    assert result.returncode == 2
    assert "must not contain a period" in result.stderr and "Traceback" not in result.stderr

"""Table-driven error tests (vyper's fail_list style): one fixture app per failure mode.

Each row: the fixture in ``tests/fixtures/``, the line the error must point at (0: the file
itself), text the message must contain, and text the hint must contain ("" when none). Every
failure exits 2 and prints no modalc traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from compiler.cli import main
from compiler.errors import UserError
from compiler.loader import load
from compiler.refs import parse_import_ref, resolve_runnable

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"

fail_list = [
    ("bad_syntax.py", 8, "syntax error: invalid syntax", "fix the syntax error"),
    ("no_app.py", 0, "the script defines no modal.App", 'app = modal.App("my-app")'),
    ("misspelled_keyword.py", 6, "@app.function got an unexpected keyword argument `gpo`", "did you mean `gpu=`?"),
    ("unknown_gpu.py", 6, "unknown GPU type 'H1000'", "did you mean 'H100'?"),
    ("fractional_gpu.py", 6, "gpu='A100:0.5': fractional GPUs do not exist", 'request whole GPUs, e.g. "A100:1"'),
    ("zero_memory.py", 6, "memory must be positive, got 0", ""),
    ("negative_cpu.py", 6, "cpu must be positive, got -1", ""),
    ("bad_timeout.py", 6, "timeout must be positive, got 0", ""),
    ("bad_retries.py", 6, "retries=11: must be an integer from 0 to 10", ""),
    ("bad_cron.py", 6, "invalid cron expression '0 9 * *': expected 5 fields", 'modal.Cron("0 9 * * 1-5")'),
    ("unknown_timezone.py", 6, "unknown time zone 'Mars/Olympus'", "IANA name"),
    ("bad_period.py", 6, "modal.Period(hours=5) cannot be expressed as a Nomad periodic job", "modal.Cron(...)"),
    ("proxy.py", 6, "proxy= (modal.Proxy) is not supported by modalc", "static egress IP"),
    ("raises_at_import.py", 7, "RuntimeError raised while importing", "guard client-only code"),
    ("empty_app.py", 0, "the app has no functions to build", "decorate a function with @app.function()"),
]

_MODALC_FRAME = re.compile(r'File "[^"]*/(compiler|agent_runtime)/[^"]*", line')


def assert_no_modalc_traceback(text: str) -> None:
    assert not _MODALC_FRAME.search(text), text


@pytest.mark.parametrize(("fixture", "line", "message", "hint"), fail_list, ids=[row[0] for row in fail_list])
def test_build_fails(fixture: str, line: int, message: str, hint: str) -> None:
    result = CliRunner().invoke(main, ["build", str(FIXTURES / fixture)])
    err = result.stderr
    assert result.exit_code == 2, result.output
    assert err.startswith("Error: "), err
    assert message in err
    if hint:
        assert "\n  hint: " in err and hint in err.split("\n  hint: ", 1)[1]
    where = f"{fixture}:{line}: " if line else f"{fixture}: "
    assert where in err.splitlines()[0], err
    assert_no_modalc_traceback(err)
    assert result.stdout == ""


def test_user_traceback_starts_in_user_file() -> None:
    err = CliRunner().invoke(main, ["build", str(FIXTURES / "raises_at_import.py")]).stderr
    frames = re.findall(r'File "([^"]+)", line (\d+)', err)
    assert frames and all(f.endswith("raises_at_import.py") for f, _ in frames), err
    assert [int(n) for _, n in frames] == [10, 7]
    assert "RuntimeError: config server unreachable" in err


# -- command-line and reference errors ------------------------------------------------------------

cli_fail_list = [
    (["build", "does_not_exist.py"], "no such file: does_not_exist.py", "give the path of a Python script"),
    (["build", "examples/hello.py:square"], "Invalid object reference: examples/hello.py:square. "
     "Did you mean '::' instead of ':'?", "run examples/hello.py::square"),
    (["build", "examples/hello.py::nope"], "'nope' is not a Modal Function or local entrypoint in examples/hello.py",
     "square"),
    (["build", "examples.hello"], "'examples.hello' is not a file; it looks like a module path", "use -m"),
    (["build", "examples/hello.py", "--check"], "--check needs -o DIR", "modalc build app.py -o deploy/ --check"),
]


@pytest.mark.parametrize(("args", "message", "hint"), cli_fail_list, ids=[" ".join(r[0]) for r in cli_fail_list])
def test_cli_fails(args: list[str], message: str, hint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert hint in result.stderr.split("hint:", 1)[1]
    assert_no_modalc_traceback(result.stderr)


def _resolve(fixture: str, object_path: str = "") -> None:
    script = load(parse_import_ref(str(FIXTURES / fixture)))
    resolve_runnable(script.apps, object_path, fixture)


def test_ambiguous_reference_lists_candidates() -> None:
    with pytest.raises(UserError) as info:
        _resolve("two_entrypoints.py")
    assert info.value.message == ("Specify a Modal Function or local entrypoint to run. "
                                  "E.g. `run two_entrypoints.py::my_function [..args]`")
    assert info.value.detail == "candidates:\n  first\n  second"
    assert info.value.exit_code == 2


def test_empty_app_has_nothing_to_run() -> None:
    with pytest.raises(UserError) as info:
        _resolve("empty_app.py")
    assert info.value.message == "'empty_app.py' has no functions or local entrypoints."


def test_explicit_reference_resolves_among_several() -> None:
    script = load(parse_import_ref(str(FIXTURES / "two_entrypoints.py")))
    assert resolve_runnable(script.apps, "app.second", "two_entrypoints.py").tag == "second"


# -- real processes --------------------------------------------------------------------------------

def _modalc(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=FIXTURES, env=env,
                          capture_output=True, text=True, timeout=60)


def test_process_unknown_gpu() -> None:
    proc = _modalc("build", "unknown_gpu.py")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == "Error: unknown_gpu.py:6: unknown GPU type 'H1000'\n  hint: did you mean 'H100'?\n"


def test_process_raises_at_import() -> None:
    proc = _modalc("build", "raises_at_import.py")
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: raises_at_import.py:7: RuntimeError raised while importing")
    assert "Traceback (most recent call last):" in proc.stderr
    assert_no_modalc_traceback(proc.stderr)

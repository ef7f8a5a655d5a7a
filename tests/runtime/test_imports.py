"""The shim starts light: only the standard library, agent_runtime and the user's module load,
and cloudpickle only when a value needs it (click's and Modal's import tests do the same)."""

from __future__ import annotations

import subprocess
import sys

from runtime_harness import ROOT, Shim

BANNED = ("compiler", "click", "jinja2", "requests", "nomad", "hcl2", "cloudpickle")
# Standard-library modules that cost the start-up milliseconds and that the runtime does without
# (dataclasses brings inspect, ast, dis and tokenize; argparse brings gettext and locale).
HEAVY_STDLIB = ("dataclasses", "argparse", "inspect", "json", "asyncio", "gettext")
# pickle probes for Jython's org.python.core (the import fails, but -X importtime lists it).
ALLOWED = ("agent_runtime", "user", "org")


def _imported(args: list[str], env: dict[str, str]) -> set[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self [us]" not in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def _shim_args(shim: Shim) -> list[str]:
    return ["-m", "agent_runtime", "--code", str(shim.code_dir), "--module", "user", "--qualname", "f",
            "--result-dir", str(shim.result_dir), "--timeout", "10", "--call", str(shim.tmp / "call.pkl")]


def test_a_plain_call_loads_only_the_stdlib_and_the_runtime(shim: Shim) -> None:
    shim.module("import modal\napp = modal.App('t')\n\n@app.function()\ndef f(x):\n    return [x]\n")
    run = shim.run(1)  # also writes call.pkl
    assert run.code == 0 and run.outcome.value == [1]
    env = shim.env()
    loaded = _imported(_shim_args(shim), env)
    # Both processes were traced (importlib.import_module of the user's module is not timed, so it is not listed).
    assert "agent_runtime.shim" in loaded and "agent_runtime.sdk.functions" in loaded
    for name in loaded:
        assert name.split(".")[0] not in BANNED, name
        assert name.split(".")[0] not in HEAVY_STDLIB, name
    baseline = _imported(["-c", "pass"], env)  # whatever site and .pth files load anyway
    foreign = {name for name in loaded - baseline
               if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] not in ALLOWED}
    assert not foreign


def test_cloudpickle_is_loaded_when_a_value_needs_it(shim: Shim) -> None:
    shim.module("import modal\napp = modal.App('t')\n\n@app.function()\ndef f(x):\n    return lambda: x\n")
    run = shim.run(5)
    assert run.code == 0 and run.outcome.value() == 5
    assert "cloudpickle" in _imported(_shim_args(shim), shim.env())


def test_help_loads_nothing_heavy() -> None:
    proc = subprocess.run([sys.executable, "-c", "import sys, runpy\nsys.argv = ['agent_runtime', '--help']\n"
                           "try:\n    runpy.run_module('agent_runtime', run_name='__main__')\n"
                           "except SystemExit:\n    pass\nprint(sorted(sys.modules))"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "--generator" in proc.stdout
    modules = eval(proc.stdout.strip().splitlines()[-1])
    assert not [m for m in modules if m.split(".")[0] in BANNED]
    assert not [m for m in modules if m.split(".")[0] in HEAVY_STDLIB]
    assert "agent_runtime.sdk" not in modules  # the supervisor leaves the SDK to the worker


def test_bad_usage_exits_3_with_the_usage() -> None:
    proc = subprocess.run([sys.executable, "-m", "agent_runtime", "--code", "x", "--timeout", "soon"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert proc.stderr.startswith("usage: python -m agent_runtime")
    assert "error: argument --timeout: invalid float value: 'soon'" in proc.stderr

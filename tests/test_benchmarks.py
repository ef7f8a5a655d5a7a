"""The benchmark scripts still run (tiny sizes, figures not judged): they are not part of the
measured test run, so nothing else would notice when one breaks. Runs real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CASES = [
    (["benchmarks/build.py", "--runs", "1"], "per added function"),
    (["benchmarks/local.py", "--inputs", "200", "--calls", "2"], ".remote() round trip"),
    (["benchmarks/runtime_startup.py", "3"], "runtime start-up cost"),
    (["benchmarks/nomad_api.py", "--calls", "2", "--inputs", "100"], "HTTP requests per call"),
    (["benchmarks/warm.py", "--calls", "5", "--fresh-calls", "1", "--map-inputs", "20"], "warm"),
    (["benchmarks/nested.py", "--calls", "2", "--inputs", "20"], "nested"),
    (["benchmarks/blob.py", "--mib", "2", "--calls", "1"], "blob path overhead"),
]


@pytest.mark.parametrize(("argv", "expected"), CASES, ids=[c[0][0].split("/")[1] for c in CASES])
def test_benchmark_runs(argv: list[str], expected: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOMAD_")}
    env["MODALC_HOME"] = str(tmp_path)
    result = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert expected in result.stdout, result.stdout

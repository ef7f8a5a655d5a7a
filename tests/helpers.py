"""Helpers shared by the test modules: running ``modalc`` as a real process. Runs in the test process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.nomad_double import NomadDouble

ROOT = Path(__file__).resolve().parents[1]


def modalc_on(double: NomadDouble, home: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """``python -m compiler ARGS`` against the Nomad test double, with ``MODALC_HOME=home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOMAD_")}
    env.update(MODALC_HOME=str(home), NOMAD_ADDR=double.address, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)

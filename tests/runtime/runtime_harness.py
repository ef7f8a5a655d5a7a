"""The runtime tests' harness: write a user module and a call, run the real shim, read its result."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_runtime import protocol

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    code: int
    stderr: str
    header: dict[str, Any]
    outcomes: list[protocol.Outcome]
    result_dir: Path
    elapsed_s: float

    @property
    def outcome(self) -> protocol.Outcome:
        (only,) = self.outcomes
        return only


class Shim:
    """Runs ``python -m agent_runtime`` against a module written into ``tmp_path/code``."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.code_dir = tmp_path / "code"
        self.code_dir.mkdir()
        self.result_dir = tmp_path / "data"

    def module(self, source: str, name: str = "user") -> None:
        path = self.code_dir / (name.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, MODALC_IN_CONTAINER="1", PYTHONPATH=str(ROOT), COUNTER=str(self.tmp / "counter"))
        env.update(extra)
        return env

    def run(self, *inputs: Any, qualname: str = "f", module: str = "user", timeout: float = 10,
            call: protocol.Call | None = None, call_bytes: bytes | None = None, extra: tuple[str, ...] = (),
            env: dict[str, str] | None = None) -> Run:
        import time

        call_path = self.tmp / "call.pkl"
        if call_bytes is None:
            if call is None:
                call = protocol.Call(inputs=[((i,), {}) for i in inputs] or [((), {})])
            call_bytes = protocol.encode("call", call)
        call_path.write_bytes(call_bytes)
        cmd = [sys.executable, "-m", "agent_runtime", "--code", str(self.code_dir), "--module", module,
               "--qualname", qualname, "--result-dir", str(self.result_dir), "--timeout", str(timeout),
               "--call", str(call_path), *extra]
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, env=env or self.env(), capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - start
        data = (self.result_dir / protocol.RESULT_FILE).read_bytes()
        header, body = protocol.decode(data)
        outcomes = protocol.as_outcomes(body)
        return Run(proc.returncode, proc.stderr, header, outcomes, self.result_dir, elapsed)

    def count(self) -> int:
        path = self.tmp / "counter"
        return len(path.read_text()) if path.exists() else 0

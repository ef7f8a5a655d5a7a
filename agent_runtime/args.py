"""The command line of ``python -m agent_runtime``, as ``compiler/lower/job.py`` emits it.

Runs inside allocations; standard library only.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    code_dir: str
    module: str
    qualname: str
    result_dir: str
    timeout_s: float
    retries: int
    backoff: float
    initial_delay_s: float
    max_delay_s: float
    call_path: str | None  # None with --no-input: one input with no arguments
    generator: bool

    def retry_delay_s(self, retry: int) -> float:
        """Modal's rule: the k-th retry waits initial_delay * backoff**(k-1), capped at max_delay."""
        return float(min(self.initial_delay_s * self.backoff ** (retry - 1), self.max_delay_s))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agent_runtime",
                                description="Run one Modal function's inputs inside a Nomad allocation.")
    p.add_argument("--code", required=True, help="folder holding the user's script and sibling modules")
    p.add_argument("--module", required=True, help="module to import from --code, e.g. hello or pkg.mod")
    p.add_argument("--qualname", required=True, help="the function's (or class's) qualified name in it")
    p.add_argument("--result-dir", required=True, help="where result.pkl (and stream.pkl) are written")
    p.add_argument("--timeout", type=float, required=True, help="seconds per attempt of one input")
    p.add_argument("--retries", type=int, default=0, help="retries per input (default: none)")
    p.add_argument("--backoff", type=float, default=2.0, help="backoff coefficient between retries")
    p.add_argument("--initial-delay", type=float, default=1.0, help="seconds before the first retry")
    p.add_argument("--max-delay", type=float, default=60.0, help="cap on the delay between retries")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--call", help="the call envelope (protocol.Call)")
    source.add_argument("--no-input", action="store_true", help="run once with no arguments (schedules)")
    p.add_argument("--generator", action="store_true", help="stream yielded values into stream.pkl")
    return p


def parse_args(argv: Sequence[str] | None = None) -> Options:
    ns = _parser().parse_args(argv)
    if ns.timeout <= 0:
        _parser().error("--timeout must be positive")
    if ns.retries < 0:
        _parser().error("--retries must not be negative")
    return Options(code_dir=ns.code, module=ns.module, qualname=ns.qualname, result_dir=ns.result_dir,
                   timeout_s=ns.timeout, retries=ns.retries, backoff=ns.backoff,
                   initial_delay_s=ns.initial_delay, max_delay_s=ns.max_delay,
                   call_path=None if ns.no_input else ns.call, generator=ns.generator)

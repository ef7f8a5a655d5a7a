"""Modal's resource and execution options → Nomad numbers.

Runs on the client. Conversions (documented in docs/mapping.md):
``cpu`` is in cores and becomes Nomad MHz at ``MHZ_PER_CORE``; ``memory``
and ``ephemeral_disk`` are MiB, as Nomad's ``memory``/``size`` are;
``(request, limit)`` memory becomes ``memory`` + ``memory_max``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent_runtime.sdk.objects import Retries

from ..errors import UserError

MHZ_PER_CORE = 1000
DEFAULT_CPU_CORES = 0.125
DEFAULT_MEMORY_MIB = 128
NOMAD_MIN_MEMORY_MIB = 10
DEFAULT_TIMEOUT_S = 300
MAX_TIMEOUT_S = 24 * 3600


def _number(value: Any, what: str, location: tuple[str, int]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{what} must be a number, got {value!r}", location=location)
    if value <= 0:
        raise UserError(f"{what} must be positive, got {value!r}", location=location)
    return float(value)


def _request_limit(value: Any, what: str, location: tuple[str, int]) -> tuple[float, float | None]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise UserError(f"{what} must be a number or a (request, limit) pair, got {value!r}", location=location)
        request = _number(value[0], f"{what} request", location)
        limit = _number(value[1], f"{what} limit", location)
        if limit < request:
            raise UserError(f"{what} limit {value[1]!r} is below its request {value[0]!r}", location=location)
        return request, limit
    return _number(value, what, location), None


def cpu_mhz(cpu: Any, location: tuple[str, int]) -> int:
    cores = DEFAULT_CPU_CORES if cpu is None else _request_limit(cpu, "cpu", location)[0]
    return max(1, round(cores * MHZ_PER_CORE))


def memory_mib(memory: Any, location: tuple[str, int]) -> tuple[int, int | None]:
    if memory is None:
        return DEFAULT_MEMORY_MIB, None
    request, limit = _request_limit(memory, "memory", location)
    if request < NOMAD_MIN_MEMORY_MIB:
        raise UserError(f"memory={memory!r}: Nomad needs at least {NOMAD_MIN_MEMORY_MIB} MiB", location=location)
    return int(request), None if limit is None else int(limit)


def ephemeral_disk_mib(disk: Any, location: tuple[str, int]) -> int | None:
    return None if disk is None else int(_number(disk, "ephemeral_disk", location))


def timeout_s(timeout: Any, location: tuple[str, int]) -> int:
    if timeout is None:
        return DEFAULT_TIMEOUT_S
    seconds = _number(timeout, "timeout", location)
    if not 1 <= seconds <= MAX_TIMEOUT_S:
        raise UserError(f"timeout={timeout!r}: must be between 1 second and 24 hours", location=location)
    return int(seconds)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int
    backoff_coefficient: float
    initial_delay_s: float
    max_delay_s: float

    def args(self) -> tuple[str, ...]:
        if not self.max_retries:
            return ()
        return ("--retries", str(self.max_retries), "--backoff", f"{self.backoff_coefficient:g}",
                "--initial-delay", f"{self.initial_delay_s:g}", "--max-delay", f"{self.max_delay_s:g}")


def retry_policy(retries: Any, location: tuple[str, int]) -> RetryPolicy:
    """Modal's rules: ``retries=N`` is N retries 1 s apart; ``modal.Retries`` backs off."""
    if retries is None:
        return RetryPolicy(0, 1.0, 1.0, 1.0)
    if isinstance(retries, Retries):
        return RetryPolicy(retries.max_retries, retries.backoff_coefficient, retries.initial_delay,
                           retries.max_delay)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        raise UserError(f"retries={retries!r}: must be an integer from 0 to 10 or modal.Retries(...)",
                        location=location)
    return RetryPolicy(retries, 1.0, 1.0, 1.0)

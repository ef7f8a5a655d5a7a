"""Fault injection for the Nomad test double (tests only, stdlib only).

A :class:`Faults` object hangs off every :class:`~tests.nomad_double.NomadDouble`
as ``double.faults``. Rules match requests by a regular expression searched in
the URL path (and optionally the HTTP method) and are consumed one per matching
request:

* ``fail_next(n, pattern, status=500)`` - answer with a 5xx plain-text body;
* ``drop_next(n, pattern)``             - close the socket without any response;
* ``delay(seconds, pattern, n=None)``   - sleep before answering (``n=None``: forever);
* ``fail_next_allocs(n, exit_code=1)``  - the next ``n`` placed allocations run a
  stand-in command that exits with ``exit_code`` instead of the task's command.

Allocation-level faults that act on an existing allocation (``lose_allocation``,
``gc_allocation``) and ``nodes_have_gpu`` live on the double itself.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass


@dataclass
class Rule:
    """One injected fault: ``kind`` is ``"status"``, ``"drop"`` or ``"delay"``."""

    kind: str
    pattern: re.Pattern[str]
    remaining: int | None
    method: str | None = None
    status: int = 500
    body: str = "injected fault (Nomad test double)"
    seconds: float = 0.0
    after: bool = False
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        return bool(self.pattern.search(path))


class Faults:
    """Thread-safe registry of injected faults (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rules: list[Rule] = []
        self.failing_allocs = 0
        self.failing_exit_code = 1

    def _add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def fail_next(self, n: int = 1, pattern: str = ".*", status: int = 500, method: str | None = None,
                  body: str = "injected fault (Nomad test double)") -> Rule:
        """Answer the next ``n`` matching requests with ``status`` and a plain-text body."""
        return self._add(Rule("status", re.compile(pattern), n, method, status=status, body=body))

    def drop_next(self, n: int = 1, pattern: str = ".*", method: str | None = None, after: bool = False) -> Rule:
        """Close the connection without a response for the next ``n`` matching requests.

        With ``after=True`` the double handles the request first (its effect happens)
        and then drops the answer, like a connection lost on the way back.
        """
        return self._add(Rule("drop", re.compile(pattern), n, method, after=after))

    def delay(self, seconds: float, pattern: str = ".*", n: int | None = None, method: str | None = None) -> Rule:
        """Sleep ``seconds`` before handling matching requests (``n=None``: every one)."""
        return self._add(Rule("delay", re.compile(pattern), n, method, seconds=seconds))

    def fail_next_allocs(self, n: int = 1, exit_code: int = 1) -> None:
        """The next ``n`` allocations exit with ``exit_code`` instead of running their command."""
        with self._lock:
            self.failing_allocs = n
            self.failing_exit_code = exit_code

    def take_alloc_failure(self) -> int | None:
        """Consume one allocation failure; the exit code to use, or None."""
        with self._lock:
            if self.failing_allocs <= 0:
                return None
            self.failing_allocs -= 1
            return self.failing_exit_code

    def clear(self) -> None:
        """Remove every rule and pending allocation failure."""
        with self._lock:
            self.rules.clear()
            self.failing_allocs = 0

    def match(self, method: str, path: str) -> list[Rule]:
        """Consume and return the rules that apply to this request (delays first)."""
        out: list[Rule] = []
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    rule.hits += 1
                    out.append(rule)
        out.sort(key=lambda r: r.kind != "delay")
        return out

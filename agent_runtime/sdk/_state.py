"""Process-wide state of the compat SDK: where it runs and who serves calls.

Runs on the client and inside allocations; standard library only. The
client's backend installs an invoker here while an app runs; inside an
allocation ``MODALC_IN_CONTAINER`` makes ``is_local()`` false.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

IMPORT_FAILURES: list[tuple[str, BaseException]] = []

_invoker: Any = None
_output_enabled = False


def is_local() -> bool:
    """True on the client, False inside an allocation (as ``modal.is_local()``)."""
    return os.environ.get("MODALC_IN_CONTAINER") != "1"


def set_invoker(invoker: Any) -> Any:
    """Install the object that executes remote calls; return the previous one."""
    global _invoker
    previous, _invoker = _invoker, invoker
    return previous


def invoker() -> Any:
    return _invoker


def enable_output(show_progress: bool = True) -> Any:
    """``modal.enable_output()``: a context manager that turns on progress output."""
    from contextlib import contextmanager

    @contextmanager
    def _cm() -> Any:
        global _output_enabled
        previous, _output_enabled = _output_enabled, True
        try:
            yield
        finally:
            _output_enabled = previous

    return _cm()


def output_enabled() -> bool:
    return _output_enabled

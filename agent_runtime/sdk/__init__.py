"""modalc's Modal-compatible SDK: what ``import modal`` binds to under modalc.

Runs on the client (while the compiler loads a script) and inside
allocations (when the runtime imports the user's module); standard library
only, so that it starts fast. ``compiler.loader`` and ``agent_runtime``
install it as ``sys.modules["modal"]``.
"""

from __future__ import annotations

from . import exception, gpu
from ._state import enable_output, is_local
from .app import App, LocalEntrypoint, Stub
from .cls import Cls, parameter
from .functions import Function, FunctionCall
from .image import Image
from .objects import (
    CloudBucketMount,
    Cron,
    NetworkFileSystem,
    Period,
    Retries,
    Secret,
    Volume,
)
from .partial import (
    asgi_app,
    batched,
    concurrent,
    enter,
    exit,
    fastapi_endpoint,
    method,
    web_endpoint,
    web_server,
    wsgi_app,
)

__version__ = "1.0.0+modalc"
Error = exception.Error

# Names loaded on first use (PEP 562), so that allocations do not pay for them at start-up:
# the cloud-only objects (``cloud.py``) and ``modal.experimental`` / ``config`` / ``runner``.
_LAZY = {name: "cloud" for name in ("Client", "Dict", "FilePatternMatcher", "Mount", "Proxy", "Queue", "Sandbox",
                                    "SandboxSnapshot", "SchedulerPlacement", "Tunnel", "forward")}
_LAZY.update({name: name for name in ("experimental", "config", "runner", "volume")})
_LAZY["Server"] = "server"  # @app.server (Modal 1.6): loaded by the decorator, or on first use


def __getattr__(name: str) -> object:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'modal' has no attribute {name!r} (modalc's Modal SDK)")
    import importlib

    module = importlib.import_module(f"{__name__}.{where}")
    return module if where == name else getattr(module, name)


def current_function_call_id() -> str | None:
    """Inside an allocation, ``fc-<dispatched job ID>`` (on Nomad, the ``FunctionCall``'s ID); None on the client."""
    import os

    if os.environ.get("MODALC_CALL_ID"):
        return os.environ["MODALC_CALL_ID"]
    job = os.environ.get("NOMAD_JOB_ID")
    return f"fc-{job}" if job and not is_local() else None


_input_index: int | None = None  # the input a worker's range runs (agent_runtime/worker.py): no env write per input


def current_input_id() -> str | None:
    import os

    if _input_index is not None:
        return f"in-{_input_index}"
    return os.environ.get("MODALC_INPUT_ID")


def interact() -> None:
    """No-op: modalc allocations have no interactive terminal."""


__all__ = [
    "App", "Client", "CloudBucketMount", "Cls", "Cron", "Dict", "Error", "FilePatternMatcher", "Function",
    "FunctionCall", "Image", "LocalEntrypoint", "Mount", "NetworkFileSystem", "Period", "Proxy", "Queue", "Retries",
    "Sandbox", "SandboxSnapshot", "SchedulerPlacement", "Secret", "Server", "Stub", "Tunnel", "Volume", "asgi_app", "batched",
    "concurrent", "current_function_call_id", "current_input_id",
    "enable_output", "enter", "exception", "exit", "fastapi_endpoint", "forward", "gpu", "interact",
    "is_local", "method", "parameter", "web_endpoint", "web_server", "wsgi_app",
]

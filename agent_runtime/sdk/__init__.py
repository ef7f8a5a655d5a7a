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
    Dict,
    NetworkFileSystem,
    Period,
    Queue,
    Retries,
    Sandbox,
    Secret,
    Volume,
    forward,
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


def current_function_call_id() -> str | None:
    import os

    return os.environ.get("MODALC_CALL_ID")


def current_input_id() -> str | None:
    import os

    return os.environ.get("MODALC_INPUT_ID")


def interact() -> None:
    """No-op: modalc allocations have no interactive terminal."""


__all__ = [
    "App", "CloudBucketMount", "Cls", "Cron", "Dict", "Function", "FunctionCall", "Image",
    "LocalEntrypoint", "NetworkFileSystem", "Period", "Queue", "Retries", "Sandbox", "Secret", "Stub",
    "Volume", "asgi_app", "batched", "concurrent", "current_function_call_id", "current_input_id",
    "enable_output", "enter", "exception", "exit", "fastapi_endpoint", "forward", "gpu", "interact",
    "is_local", "method", "parameter", "web_endpoint", "web_server", "wsgi_app",
]

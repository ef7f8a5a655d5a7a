"""Binds ``import modal`` to the compat SDK, also when the real ``modal`` is installed.

Runs on the client and inside allocations; standard library only.
"""

from __future__ import annotations

import sys
from types import ModuleType

_SUBMODULES = ("exception", "gpu")


def bind_modal() -> ModuleType:
    """Make ``modal`` and its submodules this SDK; return the ``modal`` module."""
    from agent_runtime import sdk

    sys.modules["modal"] = sdk
    for name in _SUBMODULES:
        sys.modules[f"modal.{name}"] = getattr(sdk, name)
    # Old-style imports such as ``from modal.functions import Function``.
    sys.modules["modal.functions"] = sdk.functions
    sys.modules["modal.app"] = sdk.app
    sys.modules["modal.image"] = sdk.image
    sys.modules["modal.partial_function"] = sdk.partial
    sys.modules["modal.cls"] = sdk.cls
    for name in ("secret", "schedule", "retries", "network_file_system", "cloud_bucket_mount"):
        sys.modules[f"modal.{name}"] = sdk.objects
    return sdk

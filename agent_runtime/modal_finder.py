"""Lets plain ``python script.py`` import ``modal`` as modalc's SDK when the real Modal is not installed.

Runs on the client. Loaded at every interpreter start-up by
``modalc-modal.pth`` (installed with modalc), so it imports nothing: it only
appends a finder to ``sys.meta_path``. A real ``modal`` package, found by
the finders before it, wins. Under ``modalc`` itself (and inside
allocations) ``modal`` is bound explicitly instead.
"""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any


class ModalAlias:
    """A meta path finder and loader for the name ``modal`` only."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        return ModuleSpec(fullname, self) if fullname == "modal" else None  # type: ignore[arg-type]

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        from agent_runtime.sdk.binding import bind_modal

        return bind_modal()

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: ``create_module`` returned the SDK, already imported."""


if not any(type(f).__name__ == "ModalAlias" for f in sys.meta_path):
    sys.meta_path.append(ModalAlias())

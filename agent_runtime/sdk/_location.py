"""Where in the user's code a declaration was made.

Runs on the client and inside allocations; standard library only.
"""

from __future__ import annotations

import os
import sys

_SDK_DIR = os.path.dirname(os.path.abspath(__file__))


def caller_location() -> tuple[str, int]:
    """The first stack frame outside this SDK: (file, line) of the user's call."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        # "<string>" frames are dataclass-generated __init__s, not user code.
        generated = filename == "<string>" and frame.f_code.co_name == "__init__"
        if not generated and not os.path.abspath(filename).startswith(_SDK_DIR + os.sep):
            return filename, frame.f_lineno
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown>", 0


def definition_location(obj: object) -> tuple[str, int]:
    """(file, first line) of a function or class body."""
    code = getattr(obj, "__code__", None)
    if code is not None:
        return code.co_filename, code.co_firstlineno
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    return getattr(module, "__file__", None) or "<unknown>", 0

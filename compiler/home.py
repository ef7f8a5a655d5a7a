"""Where modalc keeps its local state: ``$MODALC_HOME`` or ``~/.modalc``.

Runs on the client. Holds the local secret store, local volumes and the
allocation folders of local runs.
"""

from __future__ import annotations

import os


def home() -> str:
    return os.path.abspath(os.environ.get("MODALC_HOME") or os.path.join(os.path.expanduser("~"), ".modalc"))


def subdir(*parts: str) -> str:
    path = os.path.join(home(), *parts)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path

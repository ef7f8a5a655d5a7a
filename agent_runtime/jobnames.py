"""The Nomad job ID of an app's function: one rule for the client that registers and the allocation that calls.

Runs on the client and inside allocations; standard library only. ``<app>-<function>`` for a deployed app,
``<run>-<function>`` for an ephemeral run (``<run>`` is ``<app>-<8 hex>``), with every character outside
``[A-Za-z0-9-]`` replaced by ``-`` (job IDs then are also valid ACL policy names: compiler/acl_policy.py).
"""

from __future__ import annotations

import re

_NOT_ID = re.compile(r"[^A-Za-z0-9-]")


def job_id(prefix: str, tag: str) -> str:
    """The job of function ``tag`` under ``prefix`` (the app's name when deployed, the run's ID when not)."""
    return _NOT_ID.sub("-", f"{prefix}-{tag}")

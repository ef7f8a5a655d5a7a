"""Exit codes of ``python -m agent_runtime``: how the task's exit state reads.

Runs inside allocations; standard library only. When several apply, the
highest-ranked wins: INFRA_ERROR, then TIMEOUT, then USER_ERROR.
"""

from __future__ import annotations

OK = 0  # every input succeeded
USER_ERROR = 1  # the user's function raised (or its process crashed) for at least one input
INFRA_ERROR = 3  # bad usage, bad or mismatched call envelope, missing call file, the user's module failed to import
TIMEOUT = 4  # at least one input ran past the function's timeout (after its retries)

"""``modal.experimental``: the experimental helpers real apps call, as no-ops or clear errors.

Runs on the client and inside allocations; standard library only, loaded on
first use (``import modal.experimental`` or ``modal.experimental``). Imports
are absolute: ``import modal.experimental`` loads this file under that name.
"""

from __future__ import annotations

from agent_runtime.sdk._location import caller_location
from agent_runtime.sdk.exception import NotSupportedError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def stop_fetching_inputs() -> None:
    """No-op: every modalc allocation serves one dispatch and then exits."""


def get_local_input_concurrency() -> int:
    """1: an allocation runs its inputs one at a time unless the function is @modal.concurrent."""
    return 1


def set_local_input_concurrency(concurrency: int) -> None:
    """No-op: concurrency is fixed when the function is compiled."""


def clustered(size: int, broadcast: bool = True, rdma: bool = False) -> Any:
    raise NotSupportedError(
        "modal.experimental.clustered (multi-node gangs) is not supported by modalc",
        hint="run each node's work as its own function call (.map/.spawn), or write a Nomad job with a group count",
        location=caller_location(),
    )


def get_cluster_info() -> Any:
    raise NotSupportedError("modal.experimental.get_cluster_info is not supported by modalc",
                            hint="modalc does not run clustered functions", location=caller_location())


def __getattr__(name: str) -> Any:
    if name.startswith("_"):
        raise AttributeError(name)
    raise NotSupportedError(f"modal.experimental.{name} is not supported by modalc",
                            hint="Modal's experimental APIs have no Nomad counterpart; see docs/mapping.md",
                            location=caller_location())

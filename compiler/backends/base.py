"""The one small interface every backend implements: register jobs, dispatch calls, wait, clean up.

Runs on the client. ``compiler.client`` (the call API) drives a backend; it
never knows whether allocations are local processes or run on Nomad.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from agent_runtime.sdk.exception import ExecutionError

from ..ir import CompiledApp, FunctionJob


@dataclass(frozen=True, slots=True, kw_only=True)
class Dispatch:
    """One dispatched allocation (one call, or one chunk of a .map)."""

    function: str  # the function's tag
    dispatch_id: str  # local: an id; Nomad: the dispatched child job's ID
    call_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocResult:
    """How an allocation ended. ``result`` is the runtime's result envelope, when it wrote one."""

    exit_code: int | None
    result: bytes | None
    failure: str = ""  # why it failed outside the user's code (OOM, driver, lost, placement ...)


class Backend(abc.ABC):
    """Runs compiled jobs somewhere. One instance serves one app run."""

    name = "backend"
    # Largest call payload one dispatch may carry (Nomad: 16384 bytes); None = unlimited.
    max_payload_bytes: int | None = None
    # Fewest inputs worth one dispatch of a .map chunk (a dispatch that costs HTTP requests wants more).
    min_chunk = 1
    # Whether a dispatch outlives this process, so FunctionCall.from_id(...) can attach to it later.
    durable_calls = False

    def payload_limit(self, fn: FunctionJob) -> int | None:
        """Largest payload one dispatch of ``fn`` may carry; None = unlimited."""
        return self.max_payload_bytes

    @abc.abstractmethod
    def start(self, app: CompiledApp, *, run_id: str) -> None:
        """Register the app's jobs for this run."""

    def add_function(self, fn: FunctionJob) -> None:
        """Register one more job during the run (a ``Cls.with_options`` variant, compiled on first use).

        The default does nothing: a backend that runs ``fn.job`` as it is dispatched needs no registration."""
        return None

    @abc.abstractmethod
    def dispatch(self, fn: FunctionJob, payload: bytes, *, call_id: str) -> Dispatch:
        """Start one allocation of ``fn`` with ``payload`` as its dispatch payload."""

    @abc.abstractmethod
    def wait(self, dispatch: Dispatch, timeout: float | None = None) -> AllocResult | None:
        """Block until the allocation ends (None if ``timeout`` passed first)."""

    def lookup(self, app_name: str, tag: str) -> FunctionJob:
        """A function of another, deployed app (``Function.from_name``)."""
        raise ExecutionError(f"calling {app_name}.{tag} of another app needs a deployed app on Nomad; "
                             f"the {self.name} backend only runs the current app")

    def attach(self, dispatch_id: str) -> Dispatch:
        """A dispatch made by another process (``FunctionCall.from_id``); needs ``durable_calls``."""
        raise ExecutionError(f"the {self.name} backend cannot read a function call of another process")

    def web_url(self, fn: FunctionJob) -> str:
        """Where ``fn``'s web endpoint serves in this run."""
        raise ExecutionError(f"{fn.tag} has no web endpoint on the {self.name} backend")

    def explain(self, exc: BaseException) -> None:
        """Add to a call's exception what this backend knows about its cause (``exc.add_note``); by
        default nothing."""
        return None

    def deployed_web_url(self, app_name: str, tag: str) -> str | None:
        """Where the deployed web function ``tag`` of app ``app_name`` serves (None: not a web function)."""
        raise ExecutionError(f"the web address of {app_name}.{tag} of another app needs a deployed app on "
                             f"Nomad; the {self.name} backend only runs the current app")

    def read_stream(self, dispatch: Dispatch, offset: int) -> tuple[bytes, bool]:
        """Bytes of the runtime's stream file from ``offset``, and whether the allocation ended."""
        raise ExecutionError(f"the {self.name} backend does not stream generator output")

    # Calls made inside allocations (agent_runtime/nested): a backend whose allocations cannot dispatch
    # themselves routes them to the run's call broker (compiler/call_broker.py), whose address and token
    # the allocations get in their environment (``call_env``). On Nomad they use the Task API instead.
    uses_call_broker = False
    call_env: dict[str, str] = {}
    # The named secrets the app's jobs read (``Secret.from_name``), for the ACL policy a cluster with ACLs
    # needs (compiler/acl_policy.py); set by the run before ``start``.
    policy_secrets: tuple[str, ...] = ()
    policy_variables: tuple[str, ...] = ()  # other Variables their ACL policy lets the jobs read (run-scoped secrets)

    # Warm workers (compiler/warm_pool.py): a backend that runs them sets this and implements the two below.
    supports_warm = False

    def put_job_variable(self, fn: FunctionJob, items: dict[str, str]) -> None:
        """Write the Variable ``nomad/jobs/<fn's parent job ID>`` (the warm workers' token); deleted by ``stop``."""
        raise ExecutionError(f"the {self.name} backend has no job Variables")

    def job_variable(self, fn: FunctionJob) -> dict[str, str] | None:
        """The items of ``nomad/jobs/<fn's parent job ID>`` (a deployed warm function's token); None if absent."""
        return None

    def warm_workers(self, fn: FunctionJob, key: str) -> list[tuple[str, tuple[str, int], bool]]:
        """Running workers of a *deployed* warm function that serve instance ``key`` (``lower.warm.pool_key``):
        (dispatch ID, address, whether it is one of the deploy's minimum workers)."""
        return []

    def endpoint(self, dispatch: Dispatch, service: str) -> tuple[str, int] | None:
        """Where ``dispatch``'s allocation serves ``service`` (host, port); None until it is registered."""
        raise ExecutionError(f"the {self.name} backend has no services")

    @abc.abstractmethod
    def cancel(self, dispatch: Dispatch) -> None:
        """Stop one allocation."""

    @abc.abstractmethod
    def stop(self, *, detach: bool = False) -> None:
        """End the run: stop and remove everything it started (unless ``detach``)."""

"""Calls from inside a running function: the SDK's invoker in an allocation.

Runs inside allocations; standard library only. Nothing here is imported until user code makes its first
``.remote()``/``.map()``/``.spawn()`` … (``sdk.functions._invoker``), so a function that calls nothing pays
nothing at start-up. The channel is chosen from the task's environment:

* ``MODALC_CALLS_URL`` and ``MODALC_CALLS_TOKEN`` (the local backend): the run's call broker on the client
  (``compiler/call_broker.py``), which dispatches each call as an allocation like any other;
* on Nomad: ``${NOMAD_SECRETS_DIR}/api.sock``, the Task API of the local Nomad agent, authenticated with
  the task's workload identity (``${NOMAD_SECRETS_DIR}/nomad_token``; ``taskapi.py`` is its client); a call
  is a dispatch of one of the app's parameterized jobs (``nomad_channel.py``).

Either way the calling allocation only handles opaque payloads and its own calls' results: it builds each
call envelope, and it unpickles only the results of the calls it made.
"""

from __future__ import annotations

import os
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .invoker import NestedInvoker

CALLS_URL_ENV = "MODALC_CALLS_URL"
CALLS_TOKEN_ENV = "MODALC_CALLS_TOKEN"
TASK_API_SOCKET = "api.sock"  # in ${NOMAD_SECRETS_DIR} (Nomad >= 1.5: website/content/api-docs/task-api.mdx)
IDENTITY_FILE = "nomad_token"  # identity { file = true } (website/content/docs/job-specification/identity.mdx)

_lock = threading.Lock()
_invoker: NestedInvoker | None = None


def get_invoker() -> NestedInvoker | None:
    """This allocation's invoker for nested calls, created on first use; None when no channel exists."""
    global _invoker
    with _lock:
        if _invoker is None:
            _invoker = _from_environment()
        return _invoker


def _from_environment() -> NestedInvoker | None:
    from .invoker import NestedInvoker

    app_name = os.environ.get("NOMAD_META_MODALC_APP") or ""
    url = os.environ.get(CALLS_URL_ENV)
    if url:
        from .broker_channel import BrokerChannel

        return NestedInvoker(BrokerChannel(url, os.environ.get(CALLS_TOKEN_ENV, "")), app_name)
    from .nomad_channel import from_environment

    channel = from_environment(app_name)  # on Nomad: the Task API, with the task's workload identity
    return None if channel is None else NestedInvoker(channel, app_name)

"""``modal.runner``: ``deploy_app`` / ``run_app`` called from a script, routed to modalc.

Runs on the client; standard library only, loaded on first use. Both hand
the App to the same code ``app.deploy()`` / ``app.run()`` use.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def deploy_app(app: Any, name: str | None = None, **_: Any) -> Any:
    """As ``modal.runner.deploy_app``: deploy ``app`` to Nomad (stable job IDs)."""
    return app.deploy(name=name)


def run_app(app: Any, *, detach: bool = False, **_: Any) -> Any:
    """As ``modal.runner.run_app``: a context manager that runs ``app`` ephemerally."""
    return app.run(detach=detach)

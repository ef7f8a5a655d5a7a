"""``with app.run():`` from the user's own script (``python script.py``).

Runs on the client. The script is already imported (usually as
``__main__``), so it is not loaded again: its file and its sibling modules
are collected from ``sys.modules`` and compiled like ``modalc run`` does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .cli import build_options
from .errors import ModalcError
from .graph import build_graph
from .loader import LoadedScript, _collect_sources
from .lower import lower_app


def _script_for(app: Any) -> LoadedScript:
    script_path = os.path.abspath(app.location[0])
    root = os.path.dirname(script_path)
    module_name = os.path.splitext(os.path.basename(script_path))[0]
    module = next((m for m in list(sys.modules.values())
                   if os.path.abspath(getattr(m, "__file__", "") or "") == script_path), None)
    if module is None:
        raise ModalcError(f"app.run(): the module that defines {app!r} ({script_path}) is not imported")
    apps = {name: value for name, value in vars(module).items() if value is app}
    return LoadedScript(script_path=script_path, display_name=script_path, root=root, module_name=module_name,
                        module=module, apps=apps or {"app": app}, sources=_collect_sources(root, frozenset()),
                        warnings=())


@contextmanager
def run_app(app: Any, *, detach: bool = False) -> Iterator[None]:
    from .run import app_run

    try:
        script = _script_for(app)
        var = next(iter(script.apps))
        graph = build_graph(script, var)
        opts = build_options("docker", None, (), None, None, None, mode="run")
        compiled = lower_app(graph, opts)
    except ModalcError as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    with app_run(compiled, graph, detach=detach, build_options=opts):
        yield


def deploy_app(app: Any, *, name: str | None = None) -> None:
    raise ModalcError("app.deploy() from a script is not supported yet", hint="use `modalc deploy script.py`")

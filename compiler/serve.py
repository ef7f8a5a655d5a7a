"""``modalc serve SCRIPT``: serve the app's web endpoints on this machine, reloading when its code changes.

Runs on the client (click-free; ``cli.py`` wires it). Each generation
compiles the script, starts its jobs on the local backend (``run.app_run``:
the same checks, secrets and cleanup as ``modalc run``), prints each
endpoint's URL once its check passes, then polls the modification times of
the script and its sibling modules (every ``poll_s``, no extra dependency).
A change stops every process of the generation and starts the next one on
the same ports, so the URLs stay the same. A script that fails to load is
reported and waited on. Ctrl-C (or SIGTERM) ends serving with nothing left
running.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from .backends.listening import is_listening
from .backends.local import LocalBackend, LogSink
from .errors import ModalcError, UserError
from .lower import BuildOptions
from .phases import CompilerData
from .refs import ImportRef
from .run import app_run

Echo = Callable[[str], None]


def _mtimes(paths: list[str]) -> dict[str, int]:
    out = {}
    for path in paths:
        try:
            out[path] = os.stat(path).st_mtime_ns
        except OSError:
            out[path] = -1
    return out


def _watched(data: CompilerData | None, fallback: list[str]) -> list[str]:
    """The script and the sibling modules it imported (what ships with its jobs)."""
    if data is None:
        return fallback
    script = data.script
    return sorted({script.script_path, *(os.path.join(script.root, s.path) for s in script.sources)})


def _wait_for_change(paths: list[str], poll_s: float, stop: threading.Event) -> bool:
    """True when a watched file changed; False when ``stop`` was set."""
    before = _mtimes(paths)
    while not stop.wait(poll_s):
        if _mtimes(paths) != before:
            return True
    return False


def serve(ref: ImportRef, opts: BuildOptions, *, name: str | None, echo: Echo, poll_s: float = 0.5,
          stop: threading.Event | None = None) -> None:
    """Serve until ``stop`` is set (tests) or Ctrl-C/SIGTERM (KeyboardInterrupt)."""
    stop = stop or threading.Event()
    ports: dict[str, int] = {}
    watched = [os.path.abspath(ref.file_or_module)] if not ref.use_module_mode else []
    while not stop.is_set():
        data: CompilerData | None = CompilerData(ref, opts, name=name, select_ref=False)
        assert data is not None
        try:
            compiled, graph = data.compiled, data.graph
            web = [fn for fn in compiled.functions if is_listening(fn)]
            if not web:
                raise UserError(f"{ref.file_or_module}: the app has no web endpoints to serve",
                                hint="decorate a function with @modal.fastapi_endpoint(), @modal.asgi_app(), "
                                "@modal.wsgi_app() or @modal.web_server(port), or a class with @app.server()")
        except ModalcError as exc:
            exc.show()
            watched = _watched(data if _loaded(data) else None, watched)
            echo(f"waiting for a change to {', '.join(os.path.basename(p) for p in watched)} ...")
            if not _wait_for_change(watched, poll_s, stop):
                return
            continue
        watched = _watched(data, watched)
        backend = LocalBackend(sink=LogSink(), ports=ports)
        with app_run(compiled, graph, local=True, backend=backend):
            for fn in web:
                try:
                    echo(f"{fn.tag}: {backend.web_url(fn)}")
                except UserError as exc:
                    exc.show()
            ports = backend.service_ports()
            echo(f"serving {len(web)} endpoint(s) of app {compiled.app_name!r}; watching "
                 f"{len(watched)} file(s) for changes (Ctrl-C to stop)")
            changed = _wait_for_change(watched, poll_s, stop)
        if not changed:
            return
        echo("change detected: reloading")
        time.sleep(0.05)  # let an editor finish writing


def _loaded(data: CompilerData) -> bool:
    try:
        data.script  # noqa: B018 - cached; raises again when the script does not load
    except ModalcError:
        return False
    return True

"""App-scoped secrets on the client: ``modalc deploy`` writes them, ``modalc build`` says how to.

Runs on the client. Each ``Secret.from_dict`` of the compiled functions lives in the Nomad Variable
``modalc/apps/<app>/<secret id>`` (``lower/app_secrets.py``) that the jobs' templates read. ``publish``
writes them before the jobs are registered (a changed value updates the Variable; the running
allocations re-render it and restart, as a template's ``change_mode = "restart"`` says) and names
the app's Variables no secret uses any more. ``create_commands`` is what ``modalc build`` prints: the
``nomad var put`` of each Variable with its key names and ``...`` for the values. Values are only
ever sent to Nomad: no message, command or spec holds one.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_runtime.sdk.objects import Secret

from .errors import UserError
from .graph import AppGraph
from .ir import CompiledApp
from .lower.app_secrets import app_prefix, app_secrets

if TYPE_CHECKING:
    from .backends.nomad_api import NomadAPI

_SHORTEST_FLAGGED = 4  # shorter values match source text by chance too often to be worth a note


@dataclass(frozen=True)
class AppSecret:
    path: str
    secret: Secret

    @property
    def where(self) -> str:
        return f"{self.secret.location[0]}:{self.secret.location[1]}"


def used(graph: AppGraph, compiled: CompiledApp) -> list[AppSecret]:
    """The app-scoped secrets of the compiled functions, by path. Two declarations that share a path
    (one line of code run twice) must agree on the values."""
    paths = app_secrets(graph)
    tags = {fn.tag for fn in compiled.functions}
    out: dict[str, AppSecret] = {}
    for node in graph.functions:
        if node.tag not in tags:
            continue
        for secret in node.options.get("secrets") or ():
            path = paths.get(secret) if isinstance(secret, Secret) else None
            if path is None:
                continue
            first = out.setdefault(path, AppSecret(path, secret))
            if first.secret.values() != secret.values():
                raise UserError("two modal.Secret.from_dict(...) made by the same line have different values, "
                                "but one deployed app keeps one Variable per declaration", location=secret.location,
                                hint="declare each secret on its own line, or store them with "
                                "`modalc secret create NAME ...` and use modal.Secret.from_name(NAME)")
    return [out[p] for p in sorted(out)]


def paths(graph: AppGraph, compiled: CompiledApp) -> list[str]:
    return [s.path for s in used(graph, compiled)]


def _keys(s: AppSecret) -> str:
    return ", ".join(sorted(s.secret.keys))


def create_commands(graph: AppGraph, compiled: CompiledApp, namespace: str | None) -> list[str]:
    """``modalc build``'s lines: how to create each Variable the specs read (never a value)."""
    secrets = used(graph, compiled)
    if not secrets:
        return []
    ns = f"-namespace {shlex.quote(namespace)} " if namespace else ""
    lines = ["the jobs read their modal.Secret.from_dict(...) values from these Nomad Variables; create each "
             "before running the jobs (`modalc deploy` writes them itself):"]
    for s in secrets:
        items = " ".join(shlex.quote(k) + "=..." for k in sorted(s.secret.keys))
        lines.append(f"  nomad var put {ns}{s.path} {items}    # from {s.where}")
    return lines


def literal_notes(graph: AppGraph, compiled: CompiledApp) -> list[str]:
    """A note for each value written literally in the code the specs ship (names the key, not the value)."""
    notes: list[str] = []
    for s in used(graph, compiled):
        for key, value in sorted(s.secret.values().items()):
            if len(value) < _SHORTEST_FLAGGED:
                continue
            files = [f.path for f in graph.sources if value in f.text]
            if files:
                notes.append(f"the value of {key} (modal.Secret.from_dict at {s.where}) is written in {files[0]}, "
                             "whose text the job spec ships; read it from the environment (os.environ) instead, "
                             "or use modal.Secret.from_name(...)")
    return notes


def publish(api: NomadAPI, graph: AppGraph, compiled: CompiledApp, echo: Callable[[str], None]) -> list[str]:
    """``modalc deploy``: write each app-scoped secret's Variable (before the jobs are registered) and
    name the app's Variables left over from earlier deploys; the paths written."""
    secrets = used(graph, compiled)
    for s in secrets:
        items = s.secret.values()
        current = api.get_variable(s.path)
        if current is not None and (current.get("Items") or {}) == items:
            echo(f"unchanged  secret {s.path} ({_keys(s)})")
            continue
        api.put_variable(s.path, items)
        echo(f"{'updated' if current is not None else 'created'}    secret {s.path} ({_keys(s)})")
    keep = set(app_secrets(graph).values())  # every function's, also those not compiled this time
    prefix = app_prefix(compiled.app_name)
    for var in api.list_variables(prefix):
        path = str(var.get("Path") or "")
        if path.startswith(prefix) and path not in keep:
            echo(f"stale      secret {path} (no longer in the app; delete it with: nomad var purge {path})")
    return [s.path for s in secrets]


def delete_app_variables(api: NomadAPI, app_name: str, echo: Callable[[str], None]) -> None:
    """``modalc app stop APP``: delete the app's app-scoped secret Variables (absent ones are fine)."""
    from .run_secrets import delete_variables

    prefix = app_prefix(app_name)
    paths = [str(var.get("Path") or "") for var in api.list_variables(prefix)]
    delete_variables(api, [p for p in paths if p.startswith(prefix)], echo)

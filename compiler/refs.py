"""Parses ``script.py[::ref]`` / ``-m package.module[::ref]`` and resolves the
entrypoint by Modal's rules, with Modal's messages.

Runs on the client. Resolution happens here, at compile time: the chosen
function's module and qualified name go into the job spec.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from .errors import UserError, did_you_mean


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportRef:
    """What the user named: a file or a module, and an optional object path inside it."""

    file_or_module: str
    object_path: str  # "" when not given
    use_module_mode: bool


def parse_import_ref(text: str, *, use_module_mode: bool = False) -> ImportRef:
    if "::" in text:
        file_or_module, object_path = text.split("::", 1)
    elif re.match(r"^[^:]+\.py:[A-Za-z_][\w.]*$", text):
        raise UserError(
            f"Invalid object reference: {text}. Did you mean '::' instead of ':'?",
            hint=f"run {text.replace(':', '::', 1)}",
        )
    else:
        file_or_module, object_path = text, ""
    looks_like_module = re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", file_or_module)
    if not use_module_mode and looks_like_module and not file_or_module.endswith(".py") and not os.path.exists(
            file_or_module):
        raise UserError(
            f"{file_or_module!r} is not a file; it looks like a module path",
            hint=f"use -m to import it as a module: -m {text}",
        )
    return ImportRef(file_or_module=file_or_module, object_path=object_path, use_module_mode=use_module_mode)


@dataclass(frozen=True, slots=True, kw_only=True)
class Runnable:
    """A resolved entrypoint: a local entrypoint, a function, or a class method."""

    kind: str  # "local_entrypoint" | "function" | "method"
    app: Any
    app_var: str
    tag: str  # entrypoint/function tag, or class tag
    method: str | None
    obj: Any  # LocalEntrypoint | Function | Cls

    @property
    def name(self) -> str:
        return f"{self.tag}.{self.method}" if self.method else self.tag


def _candidates(app: Any, app_var: str) -> tuple[list[Runnable], list[Runnable]]:
    entrypoints = [Runnable(kind="local_entrypoint", app=app, app_var=app_var, tag=tag, method=None, obj=e)
                   for tag, e in app.registered_entrypoints.items()]
    functions = [Runnable(kind="function", app=app, app_var=app_var, tag=tag, method=None, obj=f)
                 for tag, f in app.registered_functions.items() if f.web is None]
    for tag, cls in app.registered_classes.items():
        functions += [Runnable(kind="method", app=app, app_var=app_var, tag=tag, method=m, obj=cls)
                      for m, pf in cls.methods.items() if "web" not in pf.flags]
    return entrypoints, functions


def _listing(items: list[Runnable]) -> str:
    return "\n".join(f"  {r.name}" for r in items)


def choose_app(apps: dict[str, Any], object_path: str, script_name: str) -> tuple[str, Any, str]:
    """Pick the App a reference points into; return (variable, app, rest of the path)."""
    head, _, rest = object_path.partition(".")
    if head and head in apps:
        return head, apps[head], rest
    distinct = {id(a): (n, a) for n, a in apps.items()}
    if len(distinct) == 1:
        var, app = next(iter(distinct.values()))
        return var, app, object_path
    if "app" in apps:
        return "app", apps["app"], object_path
    names = ", ".join(sorted(apps))
    raise UserError(f"{script_name} defines several apps ({names}); specify which one",
                    hint=f"e.g. {script_name}::{sorted(apps)[0]}")


def resolve_runnable(apps: dict[str, Any], object_path: str, script_name: str) -> Runnable:
    """Modal's rules: an explicit name, else a single local entrypoint, else a single function."""
    app_var, app, path = choose_app(apps, object_path, script_name)
    entrypoints, functions = _candidates(app, app_var)
    if path:
        tag, _, method = path.partition(".")
        for r in entrypoints + functions:
            if r.tag == tag and (r.method == method or (not method and r.kind != "method")):
                return r
        if tag in app.registered_classes and not method:
            cls = app.registered_classes[tag]
            methods = list(cls.methods)
            if len(methods) == 1:
                return Runnable(kind="method", app=app, app_var=app_var, tag=tag, method=methods[0], obj=cls)
            raise UserError(
                f"Please specify a specific method of {tag} to run, e.g. `run {script_name}::{tag}.{methods[0] if methods else 'method'}`",
                hint="methods: " + ", ".join(methods) if methods else "",
            )
        names = [r.name for r in entrypoints + functions]
        hint = did_you_mean(path, names) or ("available: " + ", ".join(names) if names else "")
        raise UserError(f"'{path}' is not a Modal Function or local entrypoint in {script_name}", hint=hint)
    if len(entrypoints) == 1:
        return entrypoints[0]
    if not entrypoints and len(functions) == 1:
        return functions[0]
    best = entrypoints or functions
    if not best:
        raise UserError(f"'{script_name}' has no functions or local entrypoints.")
    raise UserError(
        f"Specify a Modal Function or local entrypoint to run. E.g. `run {script_name}::my_function [..args]`",
        detail="candidates:\n" + _listing(best),
    )

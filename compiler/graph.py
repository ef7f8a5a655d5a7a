"""The App's function graph: each function or class with its effective options.

Runs on the client. Walks a loaded App, merges the App's defaults (image,
secrets, volumes) into each function's options, and records where each was
declared, so lowering works on plain data with locations for its errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent_runtime.sdk.app import App
from agent_runtime.sdk.cls import Cls
from agent_runtime.sdk.functions import Function
from agent_runtime.sdk.image import Image, default_image
from agent_runtime.sdk.server import Server

from .errors import UserError
from .loader import LoadedScript, SourceFile


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionNode:
    """A function or class as the compiler sees it."""

    tag: str
    kind: str  # "function" | "cls" | "method" (a web method of a class: its own service job) | "server"
    obj: Function | Cls | Server
    options: dict[str, Any]
    image: Image
    module: str
    qualname: str
    location: tuple[str, int]
    web: dict[str, Any] | None
    partial: dict[str, Any]
    is_generator: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AppGraph:
    app_name: str
    app_var: str
    app: App
    functions: tuple[FunctionNode, ...]
    sources: tuple[SourceFile, ...]
    script: LoadedScript


def _merged_options(app: App, options: dict[str, Any]) -> dict[str, Any]:
    merged = dict(options)
    merged["secrets"] = tuple(app.secrets) + tuple(options.get("secrets") or ())
    merged["volumes"] = {**app.volumes, **dict(options.get("volumes") or {})}
    return merged


def _module(name: str, script: LoadedScript) -> str:
    """A script run as ``python script.py`` is ``__main__`` here, but its file's name in the allocation."""
    return script.module_name if name == "__main__" else name


def app_name_for(app: App, app_var: str, script: LoadedScript, override: str | None = None) -> str:
    """The app's name: ``--name``, else ``App("name")``, else the script's name (as ``modal run`` does)."""
    return override or app.name or script.module_name.replace("_", "-")


def build_graph(script: LoadedScript, app_var: str, *, name: str | None = None) -> AppGraph:
    app = script.apps[app_var]
    nodes: list[FunctionNode] = []
    for tag, fn in app.registered_functions.items():
        if fn.raw_f is None:
            continue
        nodes.append(FunctionNode(
            tag=tag, kind="function", obj=fn, options=_merged_options(app, fn.options),
            image=fn.options.get("image") or app.image or default_image(),
            module=_module(fn.raw_f.__module__, script), qualname=fn.raw_f.__qualname__, location=fn.location,
            web=fn.web, partial=fn.partial, is_generator=fn.is_generator,
        ))
    for tag, cls in app.registered_classes.items():
        assert cls.user_cls is not None
        options = _merged_options(app, cls.options)
        image = cls.options.get("image") or app.image or default_image()
        module, qualname = _module(cls.user_cls.__module__, script), cls.user_cls.__qualname__
        web_methods = {m: pf for m, pf in cls.methods.items() if "web" in pf.flags}
        if not web_methods or len(web_methods) < len(cls.methods):  # the batch job runs the other methods
            nodes.append(FunctionNode(
                tag=tag, kind="cls", obj=cls, options=options, image=image, module=module, qualname=qualname,
                location=cls.location, web=None, partial=cls.partial, is_generator=False,
            ))
        # Each web method is its own endpoint: a service job ``<app>-<Class>-<method>`` (lower/web.py).
        for method, pf in web_methods.items():
            nodes.append(FunctionNode(
                tag=f"{tag}.{method}", kind="method", obj=cls, options=options, image=image, module=module,
                qualname=f"{qualname}.{method}", location=pf.location, web=dict(pf.flags["web"]), partial={},
                is_generator=False,
            ))
    # An @app.server class is a service job that runs its enter methods (lower/server.py).
    for tag, server in app.registered_servers.items():
        assert server.user_cls is not None
        nodes.append(FunctionNode(
            tag=tag, kind="server", obj=server, options=_merged_options(app, server.options),
            image=server.options.get("image") or app.image or default_image(),
            module=_module(server.user_cls.__module__, script), qualname=server.user_cls.__qualname__,
            location=server.location, web=dict(server.web or {}), partial={}, is_generator=False,
        ))
    for node in nodes:
        if node.module != script.module_name and not any(
            s.path == node.module.replace(".", "/") + ".py" or s.path == node.module.replace(".", "/") + "/__init__.py"
            for s in script.sources
        ):
            raise UserError(
                f"{node.tag} is defined in module {node.module!r}, which is not part of the app's source",
                location=node.location,
                hint="define functions in the script or in modules next to it",
            )
    return AppGraph(
        app_name=app_name_for(app, app_var, script, name),
        app_var=app_var,
        app=app,
        functions=tuple(nodes),
        sources=script.sources,
        script=script,
    )

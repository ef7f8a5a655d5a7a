"""``Cls.with_options(...)`` variants: a class's job recompiled with the overridden options.

Runs on the client, during a run. ``variant_compiler`` gives the Invoker
(``compiler/client.py``) a callback that lowers the class's graph node with
the variant's options merged in (App secrets and volumes kept, as at build
time) under its own tag, so the backend registers it as one more job of the
run (``Model-v1`` → job ``<app>-Model-v1``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .graph import AppGraph
from .ir import FunctionJob
from .lower import BuildOptions, lower_function


def variant_compiler(graph: AppGraph, opts: BuildOptions) -> Callable[[str, str, dict[str, Any]], FunctionJob]:
    nodes = {node.tag: node for node in graph.functions}

    def compile_variant(tag: str, variant_tag: str, overrides: dict[str, Any]) -> FunctionJob:
        node = nodes[tag]
        options = {**node.options, **overrides}
        if "secrets" in overrides:
            options["secrets"] = tuple(graph.app.secrets) + tuple(overrides["secrets"] or ())
        if "volumes" in overrides:
            options["volumes"] = {**graph.app.volumes, **dict(overrides["volumes"] or {})}
        image = overrides.get("image") or node.image
        return lower_function(dataclasses.replace(node, tag=variant_tag, options=options, image=image), graph, opts)

    return compile_variant

"""``Cls.with_options(...)`` variants: a class's job recompiled with the overridden options.

Runs on the client, during a run. ``variant_compiler`` gives the Invoker
(``compiler/client.py``) a callback that lowers the class's graph node with
the variant's options merged in (App secrets and volumes kept, as at build
time) under its own tag, so the backend registers it as one more job of the
run (``Model-v1`` → job ``<app>-Model-v1``). ``with_concurrency`` / ``with_batching`` are overrides
too: they replace the class's input grouping (the chunk size the client uses, ``input_groups``, and,
through ``MODALC_INPUT_GROUPING``, what the worker runs at once).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from agent_runtime.sdk.cls import GROUPING, GROUPING_ENV

from .graph import AppGraph
from .ir import FunctionJob
from .lower import BuildOptions, lower_function


def variant_compiler(graph: AppGraph, opts: BuildOptions) -> Callable[[str, str, dict[str, Any]], FunctionJob]:
    nodes = {node.tag: node for node in graph.functions}

    def compile_variant(tag: str, variant_tag: str, overrides: dict[str, Any]) -> FunctionJob:
        node = nodes[tag]
        overrides = dict(overrides)
        grouping = {k: dict(overrides.pop(k)) for k in GROUPING if k in overrides}
        partial = node.partial
        if grouping:  # with_concurrency / with_batching: replaces the class's @modal.concurrent
            partial = {**{k: v for k, v in node.partial.items() if k not in GROUPING}, **grouping}
        options = {**node.options, **overrides}
        if "secrets" in overrides:
            options["secrets"] = tuple(graph.app.secrets) + tuple(overrides["secrets"] or ())
        if "volumes" in overrides:
            options["volumes"] = {**graph.app.volumes, **dict(overrides["volumes"] or {})}
        image = overrides.get("image") or node.image
        fn = lower_function(dataclasses.replace(node, tag=variant_tag, options=options, image=image, partial=partial),
                            graph, opts)
        return with_grouping_env(fn, grouping) if grouping else fn

    return compile_variant


def with_grouping_env(fn: FunctionJob, grouping: dict[str, Any]) -> FunctionJob:
    """The worker reads the class's grouping from its decorators; a variant's replaces them through
    ``MODALC_INPUT_GROUPING`` (JSON), set in the task's environment."""
    job = fn.job
    group = job.groups[0]
    task = group.tasks[0]
    env = tuple(sorted({**dict(task.env), GROUPING_ENV: json.dumps(grouping, sort_keys=True)}.items()))
    task = dataclasses.replace(task, env=env)
    group = dataclasses.replace(group, tasks=(task,))
    return dataclasses.replace(fn, job=dataclasses.replace(job, groups=(group,)))

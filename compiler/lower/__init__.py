"""Lowering: the App's function graph → compiled jobs (IR), with every user error collected.

Runs on the client.
"""

from __future__ import annotations

import os

from ..errors import Collector, UserError
from ..graph import AppGraph
from ..ir import CompiledApp, FunctionJob
from .buckets import bucket_notes
from .features import feature_notes
from .job import BuildOptions, job_id, lower_function
from .server import lower_server, server_notes
from .warm import is_warm, lower_warm
from .web import lower_web

__all__ = ["BuildOptions", "job_id", "lower_app", "lower_function"]


def lower_app(graph: AppGraph, opts: BuildOptions, *, only: frozenset[str] | None = None) -> CompiledApp:
    """Compile every function of the graph (or those named in ``only``)."""
    errors = Collector()
    jobs: list[FunctionJob] = []
    notes: list[str] = []
    seen_ids: dict[str, str] = {}
    for node in graph.functions:
        if only is not None and node.tag not in only:
            continue
        warm = node.web is None and is_warm(node)
        try:
            compiled = lower_function(node, graph, opts)
            if node.web is not None:
                compiled = lower_web(compiled, node, graph, opts)
                if node.kind == "server":  # @app.server: a web_server-like job with Modal's server settings
                    compiled = lower_server(compiled, node)
            elif warm:  # warm workers serve calls over HTTP (lower/warm.py)
                compiled = lower_warm(compiled, node, opts.driver, os.cpu_count() or 1, deploy=opts.mode == "deploy")
        except UserError as exc:
            errors.add(exc)
            continue
        other = seen_ids.get(compiled.job.id)
        if other is not None:
            errors.add(UserError(f"{node.tag} and {other} both become the Nomad job ID {compiled.job.id!r}",
                                 location=node.location, hint="rename one of them (name=...)"))
            continue
        seen_ids[compiled.job.id] = node.tag
        notes += server_notes(node) if node.kind == "server" else feature_notes(node, warm=warm)
        jobs.append(compiled)
    errors.raise_if_any()
    buckets = {b.id: b for fn in jobs for b in fn.bucket_volumes}
    notes += bucket_notes([buckets[k] for k in sorted(buckets)])
    for fn in jobs:  # run_function steps' build secrets and GPUs, once per image
        notes += [n for n in (fn.image.notes if fn.image else ()) if n not in notes]
    return CompiledApp(app_name=graph.app_name, functions=tuple(jobs), warnings=tuple(notes))

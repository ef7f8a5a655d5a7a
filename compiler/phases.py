"""The compiler pipeline, each phase computed once: load → graph → lower → emit.

Runs on the client. ``CompilerData`` is the one object the commands work
from; the outputs are a dict of file name → content built by the emitters (text
for specs and Dockerfiles, bytes for the files of each image's build context).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from .emit_hcl import VOLUME_SUFFIX, emit_hcl, emit_volume
from .emit_json import emit_json
from .graph import AppGraph, build_graph
from .ir import CompiledApp, FunctionJob, ImageBuild
from .loader import LoadedScript, load
from .lower import BuildOptions, lower_app
from .refs import ImportRef, Runnable, choose_app, resolve_runnable

HCL_SUFFIX = ".nomad.hcl"
JSON_SUFFIX = ".nomad.json"
IMAGES_DIR = "images"


class CompilerData:
    """One script, compiled on demand, phase by phase."""

    def __init__(self, ref: ImportRef, opts: BuildOptions, *, name: str | None = None,
                 only: frozenset[str] | None = None, select_ref: bool = True):
        self.ref = ref
        self.opts = opts
        self.name = name
        self.only = only
        # build compiles only the function a ``::ref`` names; run compiles the whole app.
        self.select_ref = select_ref

    @functools.cached_property
    def script(self) -> LoadedScript:
        return load(self.ref)

    @functools.cached_property
    def app_selection(self) -> tuple[str, str]:
        """(the App variable, the rest of the reference inside it)."""
        var, _, rest = choose_app(self.script.apps, self.ref.object_path, self.ref.file_or_module)
        return var, rest

    @functools.cached_property
    def runnable(self) -> Runnable:
        return resolve_runnable(self.script.apps, self.ref.object_path, self.ref.file_or_module)

    @functools.cached_property
    def graph(self) -> AppGraph:
        return build_graph(self.script, self.app_selection[0], name=self.name)

    @functools.cached_property
    def compiled(self) -> CompiledApp:
        only = self.only
        rest = self.app_selection[1]
        if only is None and rest and self.select_ref:
            only = frozenset({self.runnable.tag})
        return lower_app(self.graph, self.opts, only=only)

    def function(self, tag: str) -> FunctionJob | None:
        return next((f for f in self.compiled.functions if f.tag == tag), None)

    def outputs(self, fmt: str = "hcl") -> dict[str, str | bytes]:
        """File name (relative to the output folder) → content, for ``--format``.

        Specs and Dockerfiles are text; each image's build context (the files its
        Dockerfile copies, beside it in ``images/<hash>/``) is bytes."""
        emitters: list[tuple[str, Callable[..., str]]] = []
        if fmt in ("hcl", "both"):
            emitters.append((HCL_SUFFIX, emit_hcl))
        if fmt in ("json", "both"):
            emitters.append((JSON_SUFFIX, emit_json))
        out: dict[str, str | bytes] = {}
        for fn in self.compiled.functions:
            for suffix, emit in emitters:
                out[fn.job.id + suffix] = emit(fn.job)
            if fn.image is not None:
                folder = image_folder(fn.image)
                if folder + "/Dockerfile" in out:
                    continue  # an image shared by several functions
                out[folder + "/Dockerfile"] = fn.image.dockerfile
                for f in fn.image.context:
                    out[f"{folder}/{f.path}"] = f.read()
        for fn in self.compiled.functions:
            for volume in fn.bucket_volumes:
                out.setdefault(volume.id + VOLUME_SUFFIX, emit_volume(volume, fn.job.namespace))
        return dict(sorted(out.items()))


def image_folder(image: ImageBuild) -> str:
    """``images/<hash>``: an image's Dockerfile and build context, relative to the output folder."""
    return f"{IMAGES_DIR}/{image.tag.rsplit(':', 1)[1]}"

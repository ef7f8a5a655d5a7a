"""``modalc image build``: build (and push) an app's images with docker, podman or buildah.

Runs on the client. Each image's build context (its Dockerfile and the files
it copies, as ``modalc build`` writes them under ``images/<hash>/``) is
written to a folder, then built with the first of ``docker``, ``podman`` and
``buildah`` on the PATH, and pushed with ``--push``. A tool that fails is
reported with the tail of its output, never as a traceback.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from agent_runtime.protocol import write_atomic

from .errors import ModalcError, UserError
from .ir import CompiledApp, ImageBuild

TOOLS = ("docker", "podman", "buildah")
TAIL_LINES = 20


class ImageBuildError(ModalcError):
    """A build or push tool failed (exit code 1)."""


def find_tool(path: str | None = None) -> tuple[str, str]:
    """(tool name, executable) of the first builder on ``path`` (default: ``$PATH``)."""
    for tool in TOOLS:
        exe = shutil.which(tool, path=path)
        if exe:
            return tool, exe
    raise UserError("no container image builder found: install docker, podman or buildah",
                    hint="modalc image build runs the first of `docker`, `podman`, `buildah` on the PATH; "
                         "or build `modalc build -o DIR`'s images/<hash>/ folders yourself")


def build_command(tool: str, exe: str, tag: str, context_dir: str) -> list[str]:
    if tool == "buildah":
        return [exe, "bud", "-t", tag, context_dir]
    return [exe, "build", "-t", tag, context_dir]


def push_command(exe: str, tag: str) -> list[str]:
    return [exe, "push", tag]


def images_of(compiled: CompiledApp) -> list[ImageBuild]:
    """The app's built images, each once, in a stable order."""
    seen: dict[str, ImageBuild] = {}
    for fn in compiled.functions:
        if fn.image is not None:
            seen.setdefault(fn.image.tag, fn.image)
    return [seen[t] for t in sorted(seen)]


def write_context(image: ImageBuild, folder: str) -> None:
    """The Dockerfile and every context file of ``image``, laid out under ``folder``."""
    files: dict[str, bytes] = {"Dockerfile": image.dockerfile.encode()}
    files.update((f.path, f.read()) for f in image.context)
    for rel, data in files.items():
        path = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, data)


def run_tool(argv: list[str], echo: Callable[[str], None]) -> None:
    """Run one build or push command, showing its output; raise with its tail when it fails."""
    echo("$ " + " ".join(argv))
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise ImageBuildError(f"cannot run {argv[0]}: {exc}") from None
    assert proc.stdout is not None
    with proc.stdout:
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            echo(line)
    code = proc.wait()
    if code != 0:
        name = os.path.basename(argv[0])
        raise ImageBuildError(f"`{name} {argv[1]}` failed with exit code {code}",
                              detail="\n".join(f"  | {line}" for line in tail),
                              hint=f"is the {name} daemon or service running? its last output is above")


@contextmanager
def _contexts_folder(out_dir: str | None) -> Iterator[str]:
    if out_dir:
        yield out_dir
        return
    with tempfile.TemporaryDirectory(prefix="modalc-images-") as tmp:
        yield tmp


def build_images(compiled: CompiledApp, *, push: bool, out_dir: str | None, echo: Callable[[str], None],
                 path: str | None = None) -> list[str]:
    """Build every image of ``compiled`` (and push it); return the tags built."""
    images = images_of(compiled)
    if not images:
        echo("no images to build: every function uses a registry image as it is")
        return []
    if push and any("/" not in img.tag.rsplit(":", 1)[0] for img in images):
        raise UserError("--push needs --image-registry: the tags have no registry to push to",
                        hint="modalc image build app.py --push --image-registry registry.example.com/team")
    tool, exe = find_tool(path)
    with _contexts_folder(out_dir) as folder:
        for image in images:
            context_dir = os.path.join(folder, image.tag.rsplit(":", 1)[1])
            write_context(image, context_dir)
            echo(f"building {image.tag} with {tool}")
            run_tool(build_command(tool, exe, image.tag, context_dir), echo)
            if push:
                run_tool(push_command(exe, image.tag), echo)
    return [img.tag for img in images]

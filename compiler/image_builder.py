"""``modalc image build``: build (and push) an app's images with docker, podman or buildah.

Runs on the client. Each image's build context (its Dockerfile and the files
it copies, as ``modalc build`` writes them under ``images/<hash>/``) is
written to a folder, then built with the first of ``docker``, ``podman`` and
``buildah`` on the PATH, and pushed with ``--push``. A tool that fails is
reported with the tail of its output, never as a traceback.

An image whose ``run_function`` step reads build secrets gets each as
``--secret id=NAME,src=FILE``: FILE (0600, in a temporary folder outside the
build context, removed after the build) holds the local store's values as
``export KEY='value'`` lines the step sources; docker runs with BuildKit. A
step that asks for a GPU is built with podman or buildah and
``--device nvidia.com/gpu=all`` (CDI); docker build cannot, so it is refused.
"""

from __future__ import annotations

import collections
import os
import shlex
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


GPU_DEVICE = "nvidia.com/gpu=all"


def build_command(tool: str, exe: str, tag: str, context_dir: str, extra: tuple[str, ...] = ()) -> list[str]:
    if tool == "buildah":
        return [exe, "bud", "-t", tag, *extra, context_dir]
    return [exe, "build", "-t", tag, *extra, context_dir]


def check_build_needs(images: list[ImageBuild], tool: str) -> None:
    """Before any build: each build secret is in the local store with its required keys; a GPU step has a tool."""
    from . import secret_store
    from .errors import ErrorList

    errors: list[UserError] = []
    for image in images:
        if image.gpu is not None and tool == "docker":
            errors.append(UserError(f"image {image.tag}: a run_function step asks for gpu={image.gpu}, and docker "
                                    "build cannot give a build step a GPU",
                                    hint=f"install podman or buildah (modalc uses it with --device {GPU_DEVICE}, "
                                    "CDI) on a machine with the GPU, or drop gpu= from run_function"))
        for secret in image.build_secrets:
            try:
                keys = secret_store.keys(secret.name)
            except UserError:
                needed = " ".join(f"{k}=..." for k in secret.required_keys) or "KEY=VALUE ..."
                errors.append(UserError(f"build secret {secret.name!r} of image {image.tag} does not exist in the "
                                        "local store", location=secret.location,
                                        hint=f"create it on this machine: modalc secret create --local "
                                        f"{secret.name} {needed}"))
                continue
            missing = [k for k in secret.required_keys if k not in keys]
            if missing:
                errors.append(UserError(f"build secret {secret.name!r} in the local store is missing required "
                                        f"key{'s' if len(missing) > 1 else ''}: {', '.join(missing)}",
                                        location=secret.location,
                                        hint=f"modalc secret create --local {secret.name} --force ..."))
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ErrorList(errors)


def secret_flags(image: ImageBuild, folder: str) -> tuple[str, ...]:
    """``--secret id=NAME,src=FILE`` per build secret, each FILE written (0600) under ``folder``."""
    from . import secret_store

    flags: list[str] = []
    for secret in image.build_secrets:
        path = os.path.join(folder, secret.name)
        text = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(secret_store.read(secret.name).items()))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        flags += ["--secret", f"id={secret.name},src={path}"]
    return tuple(flags)


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


def run_tool(argv: list[str], echo: Callable[[str], None], *, buildkit: bool = False) -> None:
    """Run one build or push command, showing its output; raise with its tail when it fails.

    ``buildkit``: docker builds with BuildKit (``DOCKER_BUILDKIT=1``: ``RUN --mount=type=secret``)."""
    echo("$ " + " ".join(argv))
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    env = {**os.environ, "DOCKER_BUILDKIT": "1"} if buildkit else None
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", stdin=subprocess.DEVNULL, env=env)
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
    check_build_needs(images, tool)
    with _contexts_folder(out_dir) as folder, tempfile.TemporaryDirectory(prefix="modalc-build-secrets-") as secrets:
        for image in images:
            context_dir = os.path.join(folder, image.tag.rsplit(":", 1)[1])
            write_context(image, context_dir)
            echo(f"building {image.tag} with {tool}")
            extra = secret_flags(image, secrets) + (("--device", GPU_DEVICE) if image.gpu is not None else ())
            run_tool(build_command(tool, exe, image.tag, context_dir, extra), echo,
                     buildkit=tool == "docker" and bool(image.build_secrets))
            if push:
                run_tool(push_command(exe, image.tag), echo)
    return [img.tag for img in images]

"""``modal.Image`` recipes → Dockerfiles and build contexts named by their content.

Runs on the client. Each recipe becomes a Dockerfile plus the local files it
copies (its build context, laid out as the Dockerfile's COPY lines expect);
the image tag is a hash of both, so an unchanged image keeps its tag and a
changed copied file changes it. modalc's runtime is installed into every
built image: as the last layer, or before the first ``run_function`` step,
which runs the function with the runtime during the build. A bare
``Image.from_registry(tag)`` is used by reference, unbuilt.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import shlex
import tomllib
from typing import Any

import agent_runtime
from agent_runtime.sdk.image import Image

from ..errors import UserError
from ..ir import BuildSecret, ContextFile, ImageBuild
from ..loader import SourceFile
from .build_step import lower_run_function
from .docker_context import ContextRewriter, logical_lines, walk

RUNTIME_CONTEXT_DIR = "modalc-runtime"
SUPPORTED_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
WEB_REQUIREMENTS = ("fastapi>=0.110,<1", "uvicorn>=0.29,<1")


def _args(step_args: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    return dict(step_args)


def _python(value: Any, location: tuple[str, int]) -> str:
    if not value:
        raise UserError("internal: image has no Python version", location=location)
    version = str(value)
    minor = ".".join(version.split(".")[:2])
    if minor not in SUPPORTED_PYTHONS:
        raise UserError(f"python_version={version!r} is not supported", location=location,
                        hint="use one of " + ", ".join(SUPPORTED_PYTHONS))
    return version


def _quote_all(items: tuple[str, ...]) -> str:
    return " ".join(shlex.quote(i) for i in items)


def _pip_flags(a: dict[str, Any]) -> list[str]:
    flags = []
    for key, flag in (("index_url", "--index-url"), ("extra_index_url", "--extra-index-url"),
                      ("find_links", "--find-links")):
        if a.get(key):
            flags.append(f"{flag} {shlex.quote(str(a[key]))}")
    if a.get("pre"):
        flags.append("--pre")
    if a.get("extra_options"):
        flags.append(str(a["extra_options"]))
    return flags


def _env_value(value: str, location: tuple[str, int]) -> str:
    if "\n" in value or "\r" in value:
        raise UserError("Image.env(): a value with a line break cannot be an ENV instruction", location=location)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def _run(command: str) -> str:
    """A RUN instruction for one shell command; a multi-line one travels base64-encoded to ``sh``."""
    if "\n" not in command.strip():
        return f"RUN {command.strip()}"
    encoded = base64.b64encode(command.encode()).decode()
    return f"RUN echo {encoded} | base64 -d | sh"


class _Recipe:
    def __init__(self, location: tuple[str, int], code: tuple[ContextFile, ...]):
        self.location = location
        self.lines: list[str] = []
        self.context: list[ContextFile] = []
        self.code = code  # the user's script and sibling modules, for run_function
        self.runtime_installed = False
        self.web = False  # a web function's image: the runtime comes with WEB_REQUIREMENTS
        self.code_copied = False
        self.secrets: list[BuildSecret] = []  # run_function steps' build secrets (names only)
        self.gpu: str | None = None  # the GPU a run_function step asks for
        self.notes: list[str] = []

    def add_file(self, source: str, dest: str) -> None:
        self.context.append(ContextFile(source=source, path=dest))

    def local_path(self, a: dict[str, Any], key: str = "local_path") -> str:
        path = os.path.join(a.get("dir") or "", os.path.expanduser(str(a[key])))
        if not os.path.exists(path):
            raise UserError(f"{a[key]!r} does not exist (resolved against the script's folder: {path})",
                            location=self.location, hint="local paths in an image recipe are relative to the script")
        return os.path.abspath(path)

    def copy_in(self, source: str, dest: str) -> str:
        """Add one local file to the context under ``files/``; return where the build sees it."""
        self.add_file(source, dest)
        self.lines.append(f"COPY {dest} /tmp/modalc/{dest}")
        return f"/tmp/modalc/{dest}"

    def install_runtime(self) -> None:
        if self.runtime_installed:
            return
        self.runtime_installed = True
        # Web endpoints are served by uvicorn (FastAPI for fastapi_endpoint): ranges fixed here, never the
        # client's installed versions, so a Dockerfile (and its tag) is the same on every machine.
        deps = "'cloudpickle>=3,<4'" + (" " + " ".join(f"'{d}'" for d in WEB_REQUIREMENTS) if self.web else "")
        self.lines += [
            f"RUN python -m pip install --no-cache-dir {deps}",
            f"COPY {RUNTIME_CONTEXT_DIR}/ /opt/modalc-runtime/",
            f"ENV PYTHONPATH=/root:/opt/modalc-runtime MODALC_RUNTIME_ABI={agent_runtime.RUNTIME_ABI}",
        ]


def _add_python(recipe: _Recipe, a: dict[str, Any]) -> None:
    if a.get("add_python"):
        py = _python(a["add_python"], recipe.location)
        recipe.lines.append(f"COPY --from=python:{py}-slim-bookworm /usr/local/ /usr/local/")
        recipe.lines.append("RUN ldconfig")


def _user_dockerfile_lines(recipe: _Recipe, lines: list[str], a: dict[str, Any], default_dir: str,
                           prefix: str) -> None:
    context_dir = os.path.join(a.get("dir") or "", os.path.expanduser(a.get("context_dir") or default_dir))
    rewriter = ContextRewriter(os.path.abspath(context_dir), prefix, recipe.add_file, recipe.location,
                               context_files={k: os.path.join(a.get("dir") or "", v)
                                              for k, v in a.get("context_files") or ()})
    recipe.lines.extend(rewriter.rewrite(line) for line in lines)


def _base(recipe: _Recipe, kind: str, a: dict[str, Any], default_python: str) -> None:
    loc = recipe.location
    if kind == "debian_slim":
        recipe.lines.append(f"FROM python:{_python(a.get('python_version') or default_python, loc)}-slim-bookworm")
    elif kind == "from_registry":
        recipe.lines.append(f"FROM {a['tag']}")
        recipe.lines.extend(a.get("setup_dockerfile_commands") or ())
        _add_python(recipe, a)
    elif kind == "micromamba":
        py = _python(a.get("python_version") or default_python, loc)
        recipe.lines.append("FROM mambaorg/micromamba:2.0.5")
        recipe.lines.append("USER root")
        recipe.lines.append(f"RUN micromamba install -y -n base -c conda-forge python={py} && micromamba clean -a -y")
        recipe.lines.append("ENV PATH=/opt/conda/bin:$PATH")
    elif kind == "from_dockerfile":
        path = recipe.local_path(a, "path")
        with open(path, encoding="utf-8") as fh:
            lines = logical_lines(fh.read())
        if not any(line.split(None, 1)[0].upper() == "FROM" for line in lines):
            raise UserError(f"{a['path']}: the Dockerfile has no FROM line", location=loc)
        # COPY/ADD paths are relative to context_dir (default: the script's folder).
        _user_dockerfile_lines(recipe, lines, a, ".", "files/0")
        _add_python(recipe, a)
    else:  # pragma: no cover - the SDK only makes the kinds above
        raise UserError(f"unknown image base {kind!r}", location=loc)


def _pip(recipe: _Recipe, index: int, kind: str, a: dict[str, Any]) -> None:
    packages = tuple(a.get("packages") or ())
    targets = [_quote_all(packages)] if packages else []
    for n, req in enumerate(a.get("requirements") or ()):
        dest = recipe.copy_in(recipe.local_path({"local_path": req, "dir": a.get("dir")}),
                              f"files/{index}/requirements-{n}.txt")
        targets.append(f"-r {dest}")
    if not targets:
        return
    flags = " ".join(_pip_flags(a) + targets)
    if kind == "uv_pip_install":
        uv = f"uv=={a['uv_version']}" if a.get("uv_version") else "uv"
        recipe.lines.append(f"RUN python -m pip install --no-cache-dir {shlex.quote(uv)} && "
                            f"python -m uv pip install --system --no-cache {flags}")
    else:
        recipe.lines.append(f"RUN python -m pip install --no-cache-dir {flags}")


def _pyproject(recipe: _Recipe, a: dict[str, Any]) -> None:
    path = recipe.local_path(a, "path")
    try:
        with open(path, "rb") as fh:
            project = tomllib.load(fh).get("project", {})
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{a['path']}: not valid TOML: {exc}", location=recipe.location) from None
    deps = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for group in a.get("optional_dependencies") or ():
        if group not in optional:
            raise UserError(f"{a['path']}: no optional dependency group {group!r}", location=recipe.location,
                            hint="groups: " + (", ".join(sorted(optional)) or "none"))
        deps += optional[group]
    if deps:
        flags = " ".join([*_pip_flags(a), _quote_all(tuple(deps))])
        recipe.lines.append(f"RUN python -m pip install --no-cache-dir {flags}")


def _add_local(recipe: _Recipe, index: int, kind: str, a: dict[str, Any]) -> None:
    if kind == "add_local_file":
        source = recipe.local_path(a)
        dest = f"files/{index}/{os.path.basename(source)}"
        recipe.add_file(source, dest)
        recipe.lines.append(f"COPY {dest} {a['remote_path']}")
    elif kind == "add_local_dir":
        source = recipe.local_path(a)
        for rel in walk(source, tuple(a.get("ignore") or ())):
            recipe.add_file(os.path.join(source, rel), f"files/{index}/{rel}")
        recipe.lines.append(f"COPY files/{index}/ {a['remote_path'].rstrip('/')}/")
    else:  # add_local_python_source
        for module in a.get("modules") or ():
            base = os.path.join(a.get("dir") or "", *module.split("."))
            if os.path.isdir(base):
                for rel in walk(base, ("*.pyc",)):
                    recipe.add_file(os.path.join(base, rel), f"files/{index}/{module}/{rel}")
                recipe.lines.append(f"COPY files/{index}/{module}/ /root/{module.replace('.', '/')}/")
            elif os.path.isfile(base + ".py"):
                recipe.add_file(base + ".py", f"files/{index}/{module}.py")
                recipe.lines.append(f"COPY files/{index}/{module}.py /root/{module.replace('.', '/')}.py")
            else:
                raise UserError(f"add_local_python_source: no module {module!r} next to the script",
                                location=recipe.location, hint="name a module or package in the script's folder")


def _step(recipe: _Recipe, index: int, kind: str, a: dict[str, Any]) -> None:
    if kind in ("pip_install", "uv_pip_install"):
        _pip(recipe, index, kind, a)
    elif kind == "pip_install_from_requirements":
        dest = recipe.copy_in(recipe.local_path(a, "path"), f"files/{index}/requirements.txt")
        recipe.lines.append(f"RUN python -m pip install --no-cache-dir {' '.join([*_pip_flags(a), '-r', dest])}")
    elif kind == "pip_install_from_pyproject":
        _pyproject(recipe, a)
    elif kind == "apt_install":
        if a.get("packages"):
            recipe.lines.append("RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
                                f"--no-install-recommends {_quote_all(tuple(a['packages']))} "
                                "&& rm -rf /var/lib/apt/lists/*")
    elif kind == "micromamba_install":
        targets = [_quote_all(tuple(a.get("packages") or ()))] if a.get("packages") else []
        if a.get("spec_file"):
            source = recipe.local_path(a, "spec_file")
            targets.append("-f " + recipe.copy_in(source, f"files/{index}/{os.path.basename(source)}"))
        if targets:
            channels = [f"-c {shlex.quote(c)}" for c in a.get("channels") or ()]
            recipe.lines.append(f"RUN micromamba install -y -n base {' '.join(channels + targets)} "
                                "&& micromamba clean -a -y")
    elif kind == "run_commands":
        recipe.lines.extend(_run(c) for c in a.get("commands") or ())
    elif kind == "dockerfile_commands":
        lines = logical_lines("\n".join(a.get("commands") or ()))
        _user_dockerfile_lines(recipe, lines, a, ".", f"files/{index}")
    elif kind == "env":
        recipe.lines.extend(f"ENV {k}={_env_value(str(v), recipe.location)}" for k, v in a.get("vars") or ())
    elif kind == "workdir":
        recipe.lines.append(f"WORKDIR {a['path']}")
    elif kind in ("entrypoint", "cmd", "shell"):
        recipe.lines.append(f"{kind.upper()} {json.dumps(list(a.get('commands') or ()))}")
    elif kind in ("add_local_file", "add_local_dir", "add_local_python_source"):
        _add_local(recipe, index, kind, a)
    elif kind == "run_function":
        lower_run_function(recipe, index, a)
    else:  # pragma: no cover
        raise UserError(f"unknown image step {kind!r}", location=recipe.location)


@functools.cache
def runtime_files() -> tuple[ContextFile, ...]:
    """The runtime's sources in every context (walked once per process; never part of the tag)."""
    root = os.path.dirname(os.path.abspath(agent_runtime.__file__))
    return tuple(ContextFile(source=os.path.join(root, rel), path=f"{RUNTIME_CONTEXT_DIR}/agent_runtime/{rel}")
                 for rel in walk(root, ("*.pyc",)) if rel.endswith(".py"))


def lower_image(image: Image, *, registry: str | None, default_python: str, location: tuple[str, int],
                sources: tuple[SourceFile, ...] = (), web: bool = False) -> tuple[str, ImageBuild | None]:
    """Return (the image reference for the task, the build if one is needed).

    ``sources`` (the user's script and sibling modules) go into the context as ``code/<path>``
    only when a ``run_function`` step needs them. ``web``: the image also gets ``WEB_REQUIREMENTS``
    (a bare registry image is then built too, to add them).
    """
    (base_kind, base_args), *steps = image.steps
    a = _args(base_args)
    if base_kind == "from_registry" and not steps and not web and not a.get("add_python") and not a.get(
            "setup_dockerfile_commands"):
        return str(a["tag"]), None
    code = tuple(ContextFile(source=s.path, path=f"code/{s.path}", data=s.text.encode()) for s in sources)
    recipe = _Recipe(location, code)
    recipe.web = web
    _base(recipe, base_kind, a | {"dir": image.base_dir}, default_python)
    for index, (kind, step_args) in enumerate(steps, start=1):
        _step(recipe, index, kind, _args(step_args))
    recipe.install_runtime()
    dockerfile = "\n".join(recipe.lines) + "\n"
    context = sorted({c.path: c for c in recipe.context}.values(), key=lambda c: c.path)
    digest = hashlib.sha256(dockerfile.encode())
    for f in context:
        # The runtime is covered by its ABI (in the Dockerfile), not its source.
        digest.update(f"\0{f.path}\0{hashlib.sha256(f.read()).hexdigest()}".encode())
    name = f"{registry.rstrip('/')}/modalc" if registry else "modalc"
    tag = f"{name}:{digest.hexdigest()[:16]}"
    build = ImageBuild(tag=tag, dockerfile=dockerfile, context=tuple(context) + runtime_files(),
                       build_secrets=tuple(recipe.secrets), gpu=recipe.gpu,
                       notes=tuple(f"image {tag}: {n}" for n in recipe.notes))
    return build.tag, build

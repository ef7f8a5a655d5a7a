"""``modal.Image`` recipes → Dockerfiles named by their content.

Runs on the client. Each recipe becomes a Dockerfile plus the local files it
copies (its build context); the image tag is a hash of both, so an unchanged
image keeps its tag and a changed copied file changes it. modalc's runtime
is added as the last layer of every built image. A bare
``Image.from_registry(tag)`` is used by reference, unbuilt.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import os
import shlex
import tomllib
from collections.abc import Iterator
from typing import Any

import agent_runtime
from agent_runtime.sdk.image import Image

from ..errors import UserError
from ..ir import ContextFile, ImageBuild

RUNTIME_CONTEXT_DIR = "modalc-runtime"
SUPPORTED_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
_SKIP_DIRS = {"__pycache__", ".git", ".venv", "node_modules"}


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


def _walk(root: str, ignore: tuple[str, ...]) -> Iterator[str]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
            if not any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(name, pat) for pat in ignore):
                yield rel


class _Recipe:
    def __init__(self, location: tuple[str, int]):
        self.location = location
        self.lines: list[str] = []
        self.context: list[ContextFile] = []
        self.python = "python"

    def add_file(self, source: str, dest: str) -> None:
        self.context.append(ContextFile(source=source, path=dest))

    def local_path(self, a: dict[str, Any], key: str = "local_path") -> str:
        path = os.path.join(a.get("dir") or "", os.path.expanduser(str(a[key])))
        if not os.path.exists(path):
            raise UserError(f"{a[key]!r} does not exist (resolved against the script's folder: {path})",
                            location=self.location, hint="paths in add_local_* are relative to the script")
        return os.path.abspath(path)


def _base(recipe: _Recipe, kind: str, a: dict[str, Any], default_python: str) -> None:
    loc = recipe.location
    if kind == "debian_slim":
        recipe.lines.append(f"FROM python:{_python(a.get('python_version') or default_python, loc)}-slim-bookworm")
    elif kind == "from_registry":
        recipe.lines.append(f"FROM {a['tag']}")
        recipe.lines.extend(a.get("setup_dockerfile_commands") or ())
        if a.get("add_python"):
            py = _python(a["add_python"], loc)
            recipe.lines.append(f"COPY --from=python:{py}-slim-bookworm /usr/local/ /usr/local/")
            recipe.lines.append("RUN ldconfig")
    elif kind == "micromamba":
        py = _python(a.get("python_version") or default_python, loc)
        recipe.lines.append("FROM mambaorg/micromamba:2.0.5")
        recipe.lines.append("USER root")
        recipe.lines.append(f"RUN micromamba install -y -n base -c conda-forge python={py} && micromamba clean -a -y")
        recipe.lines.append("ENV PATH=/opt/conda/bin:$PATH")
    elif kind == "from_dockerfile":
        path = recipe.local_path({**a, "dir": a.get("dir") or ""}, "path")
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        if any(line.strip().upper().startswith(("COPY", "ADD")) for line in text.splitlines()):
            raise UserError("Image.from_dockerfile with COPY/ADD is not supported yet", location=loc,
                            hint="copy files with .add_local_dir()/.add_local_file() after the Dockerfile")
        recipe.lines.extend(line for line in text.splitlines() if line.strip())
        if a.get("add_python"):
            py = _python(a["add_python"], loc)
            recipe.lines.append(f"COPY --from=python:{py}-slim-bookworm /usr/local/ /usr/local/")
    else:  # pragma: no cover - the SDK only makes the kinds above
        raise UserError(f"unknown image base {kind!r}", location=loc)


def _step(recipe: _Recipe, index: int, kind: str, a: dict[str, Any]) -> None:
    loc = recipe.location
    if kind in ("pip_install", "uv_pip_install"):
        packages = tuple(a.get("packages") or ())
        reqs = tuple(a.get("requirements") or ())
        for n, req in enumerate(reqs):
            dest = f"files/{index}/requirements-{n}.txt"
            recipe.add_file(recipe.local_path({"local_path": req, "dir": a.get("dir", "")}), dest)
            recipe.lines.append(f"COPY {dest} /tmp/modalc/{dest}")
        if not packages and not reqs:
            return
        targets = [_quote_all(packages)] if packages else []
        targets += [f"-r /tmp/modalc/files/{index}/requirements-{n}.txt" for n in range(len(reqs))]
        flags = " ".join(_pip_flags(a) + targets)
        if kind == "uv_pip_install":
            recipe.lines.append(f"RUN python -m pip install --no-cache-dir uv && python -m uv pip install --system {flags}")
        else:
            recipe.lines.append(f"RUN python -m pip install --no-cache-dir {flags}")
    elif kind == "pip_install_from_requirements":
        dest = f"files/{index}/requirements.txt"
        recipe.add_file(recipe.local_path(a, "path"), dest)
        recipe.lines.append(f"COPY {dest} /tmp/modalc/{dest}")
        recipe.lines.append(f"RUN python -m pip install --no-cache-dir -r /tmp/modalc/{dest}")
    elif kind == "pip_install_from_pyproject":
        with open(recipe.local_path(a, "path"), "rb") as fh:
            deps = tuple(tomllib.load(fh).get("project", {}).get("dependencies", []))
        if deps:
            recipe.lines.append(f"RUN python -m pip install --no-cache-dir {_quote_all(deps)}")
    elif kind == "apt_install":
        apt = _quote_all(tuple(a.get("packages") or ()))
        recipe.lines.append("RUN apt-get update && apt-get install -y --no-install-recommends "
                            f"{apt} && rm -rf /var/lib/apt/lists/*")
    elif kind == "micromamba_install":
        channels = " ".join(f"-c {shlex.quote(c)}" for c in a.get("channels") or ())
        recipe.lines.append(f"RUN micromamba install -y -n base {channels} "
                            f"{_quote_all(tuple(a.get('packages') or ()))} && micromamba clean -a -y")
    elif kind == "run_commands":
        recipe.lines.extend(f"RUN {c}" for c in a.get("commands") or ())
    elif kind == "dockerfile_commands":
        recipe.lines.extend(a.get("commands") or ())
    elif kind == "env":
        recipe.lines.extend(f"ENV {k}={json.dumps(v)}" for k, v in a.get("vars") or ())
    elif kind == "workdir":
        recipe.lines.append(f"WORKDIR {a['path']}")
    elif kind in ("entrypoint", "cmd", "shell"):
        recipe.lines.append(f"{kind.upper()} {json.dumps(list(a.get('commands') or ()))}")
    elif kind == "add_local_file":
        source = recipe.local_path(a)
        dest = f"files/{index}/{os.path.basename(source)}"
        recipe.add_file(source, dest)
        recipe.lines.append(f"COPY {dest} {a['remote_path']}")
    elif kind == "add_local_dir":
        source = recipe.local_path(a)
        for rel in _walk(source, tuple(a.get("ignore") or ())):
            recipe.add_file(os.path.join(source, rel), f"files/{index}/{rel}")
        recipe.lines.append(f"COPY files/{index}/ {a['remote_path'].rstrip('/')}/")
    elif kind == "add_local_python_source":
        for module in a.get("modules") or ():
            base = os.path.join(a.get("dir") or "", *module.split("."))
            if os.path.isdir(base):
                for rel in _walk(base, ("*.pyc",)):
                    recipe.add_file(os.path.join(base, rel), f"files/{index}/{module}/{rel}")
                recipe.lines.append(f"COPY files/{index}/{module}/ /root/{module.replace('.', '/')}/")
            elif os.path.isfile(base + ".py"):
                recipe.add_file(base + ".py", f"files/{index}/{module}.py")
                recipe.lines.append(f"COPY files/{index}/{module}.py /root/{module.replace('.', '/')}.py")
            else:
                raise UserError(f"add_local_python_source: no module {module!r} next to the script",
                                location=loc, hint="name a module or package in the script's folder")
    elif kind == "run_function":
        raise UserError("Image.run_function() is not supported by modalc build yet", location=loc,
                        hint="run the setup with .run_commands(...) instead")
    else:  # pragma: no cover
        raise UserError(f"unknown image step {kind!r}", location=loc)


@functools.cache
def _runtime_files() -> tuple[ContextFile, ...]:
    # The same for every image of a build: walk the runtime's folder once per process.
    root = os.path.dirname(os.path.abspath(agent_runtime.__file__))
    return tuple(ContextFile(source=os.path.join(root, rel), path=f"{RUNTIME_CONTEXT_DIR}/agent_runtime/{rel}")
            for rel in _walk(root, ("*.pyc",)) if rel.endswith(".py"))


def _file_digest(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def lower_image(image: Image, *, registry: str | None, default_python: str,
                location: tuple[str, int]) -> tuple[str, ImageBuild | None]:
    """Return (the image reference for the task, the build if one is needed)."""
    (base_kind, base_args), *steps = image.steps
    a = _args(base_args)
    if base_kind == "from_registry" and not steps and not a.get("add_python") and not a.get(
            "setup_dockerfile_commands"):
        return str(a["tag"]), None
    recipe = _Recipe(location)
    _base(recipe, base_kind, a | {"dir": image.base_dir}, default_python)
    for index, (kind, step_args) in enumerate(steps, start=1):
        _step(recipe, index, kind, _args(step_args))
    recipe.lines += [
        "RUN python -m pip install --no-cache-dir 'cloudpickle>=3,<4'",
        f"COPY {RUNTIME_CONTEXT_DIR}/ /opt/modalc-runtime/",
        f"ENV PYTHONPATH=/root:/opt/modalc-runtime MODALC_RUNTIME_ABI={agent_runtime.RUNTIME_ABI}",
    ]
    dockerfile = "\n".join(recipe.lines) + "\n"
    digest = hashlib.sha256(dockerfile.encode())
    for f in sorted(recipe.context, key=lambda c: c.path):
        digest.update(f"\0{f.path}\0{_file_digest(f.source)}".encode())
    tag = digest.hexdigest()[:16]
    name = f"{registry.rstrip('/')}/modalc" if registry else "modalc"
    build = ImageBuild(tag=f"{name}:{tag}", dockerfile=dockerfile,
                       context=tuple(sorted(recipe.context, key=lambda c: c.path)) + _runtime_files())
    return build.tag, build

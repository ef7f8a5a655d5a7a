"""``modal.Image``: an immutable recipe of build steps.

Runs on the client and inside allocations; standard library only. The
compiler turns the recipe into a Dockerfile; here it is only recorded. Each
step keeps the folder of the file that declared it, so local paths resolve
against the user's script, not the working directory.
"""

from __future__ import annotations

import os
import sys

from .._frozen import Frozen
from ._location import caller_location
from .exception import InvalidError, NotSupportedError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType
    from typing import Any

    Step = tuple[str, tuple[tuple[str, Any], ...]]


def _flatten(items: Sequence[Any]) -> tuple[str, ...]:
    out: list[str] = []
    for item in items:
        if isinstance(item, (list, tuple)):
            out.extend(_flatten(item))
        elif item is not None:
            out.append(str(item))
    return tuple(out)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


class Image(Frozen):
    """A container image recipe: a base, then ordered steps."""

    __slots__ = ("base_dir", "steps")
    _compared = ("steps", "base_dir")

    steps: tuple[Step, ...]
    base_dir: str  # folder of the script that declared the base

    def __init__(self, steps: tuple[Step, ...] = (), base_dir: str = "") -> None:
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "base_dir", base_dir)

    # -- constructors -----------------------------------------------------
    @staticmethod
    def debian_slim(python_version: str | None = None, force_build: bool = False) -> Image:
        return Image._base("debian_slim", python_version=python_version)

    @staticmethod
    def from_registry(tag: str, secret: Any = None, *, setup_dockerfile_commands: Sequence[str] = (),
                      force_build: bool = False, add_python: str | None = None, **kwargs: Any) -> Image:
        # secret= (registry credentials) is the Docker daemons' login on Nomad: accepted, not used.
        if not isinstance(tag, str) or not tag:
            raise InvalidError("Image.from_registry needs an image reference", location=caller_location())
        return Image._base("from_registry", tag=tag, add_python=add_python,
                           setup_dockerfile_commands=_flatten(setup_dockerfile_commands))

    from_aws_ecr = from_registry
    from_gcp_artifact_registry = from_registry

    @staticmethod
    def micromamba(python_version: str | None = None, force_build: bool = False) -> Image:
        return Image._base("micromamba", python_version=python_version)

    @staticmethod
    def from_dockerfile(path: str, *, force_build: bool = False, context_dir: str | None = None,
                        ignore: Any = None, build_args: dict[str, str] | None = None, registry_secret: Any = None,
                        secrets: Sequence[Any] | None = None, env: dict[str, str | None] | None = None,
                        gpu: Any = None, add_python: str | None = None) -> Image:
        _refuse_step_options("Image.from_dockerfile", env=env, build_args=build_args)
        return Image._base("from_dockerfile", path=str(path), add_python=add_python,
                           context_dir=None if context_dir is None else str(context_dir))

    @staticmethod
    def _base(kind: str, **args: Any) -> Image:
        loc = caller_location()
        return Image(steps=((kind, _freeze(args)),), base_dir=os.path.dirname(os.path.abspath(loc[0])))

    # -- chained builders -------------------------------------------------
    # force_build=, gpu= and secrets= of a build step are accepted and not used (compiler/parity_members.py);
    # a step's own env= is an error, so that a build never silently runs without it.
    def _add(self, kind: str, **args: Any) -> Image:
        return Image(steps=(*self.steps, (kind, _freeze(args))), base_dir=self.base_dir)

    def pip_install(self, *packages: Any, find_links: str | None = None, index_url: str | None = None,
                    extra_index_url: str | None = None, pre: bool = False, extra_options: str = "",
                    force_build: bool = False, env: dict[str, str | None] | None = None,
                    secrets: Sequence[Any] | None = None, gpu: Any = None) -> Image:
        _refuse_step_options("Image.pip_install", env=env)
        return self._add("pip_install", packages=_flatten(packages), find_links=find_links, index_url=index_url,
                         extra_index_url=extra_index_url, pre=pre, extra_options=extra_options)

    def uv_pip_install(self, *packages: Any, requirements: Sequence[str] | None = None,
                       find_links: str | None = None, index_url: str | None = None,
                       extra_index_url: str | None = None, pre: bool = False, extra_options: str = "",
                       force_build: bool = False, uv_version: str | None = None,
                       env: dict[str, str | None] | None = None, secrets: Sequence[Any] | None = None,
                       gpu: Any = None) -> Image:
        _refuse_step_options("Image.uv_pip_install", env=env)
        return self._add("uv_pip_install", packages=_flatten(packages), requirements=_flatten(requirements or ()),
                         find_links=find_links, index_url=index_url, extra_index_url=extra_index_url,
                         pre=pre, extra_options=extra_options, uv_version=uv_version, dir=_caller_dir())

    def pip_install_from_requirements(self, requirements_txt: str, find_links: str | None = None, *,
                                      index_url: str | None = None, extra_index_url: str | None = None,
                                      pre: bool = False, extra_options: str = "", force_build: bool = False,
                                      env: dict[str, str | None] | None = None,
                                      secrets: Sequence[Any] | None = None, gpu: Any = None) -> Image:
        _refuse_step_options("Image.pip_install_from_requirements", env=env)
        return self._add("pip_install_from_requirements", path=str(requirements_txt), dir=_caller_dir(),
                         find_links=find_links, index_url=index_url, extra_index_url=extra_index_url, pre=pre,
                         extra_options=extra_options)

    def pip_install_from_pyproject(self, pyproject_toml: str, optional_dependencies: Sequence[str] = (), *,
                                   find_links: str | None = None, index_url: str | None = None,
                                   extra_index_url: str | None = None, pre: bool = False,
                                   extra_options: str = "", force_build: bool = False,
                                   env: dict[str, str | None] | None = None,
                                   secrets: Sequence[Any] | None = None, gpu: Any = None) -> Image:
        _refuse_step_options("Image.pip_install_from_pyproject", env=env)
        return self._add("pip_install_from_pyproject", path=str(pyproject_toml), dir=_caller_dir(),
                         optional_dependencies=_flatten(optional_dependencies), find_links=find_links,
                         index_url=index_url, extra_index_url=extra_index_url, pre=pre, extra_options=extra_options)

    def apt_install(self, *packages: Any, force_build: bool = False, env: dict[str, str | None] | None = None,
                    secrets: Sequence[Any] | None = None, gpu: Any = None) -> Image:
        _refuse_step_options("Image.apt_install", env=env)
        return self._add("apt_install", packages=_flatten(packages))

    def micromamba_install(self, *packages: Any, spec_file: str | None = None, channels: Sequence[str] = (),
                           force_build: bool = False, env: dict[str, str | None] | None = None,
                           secrets: Sequence[Any] | None = None, gpu: Any = None) -> Image:
        _refuse_step_options("Image.micromamba_install", env=env)
        return self._add("micromamba_install", packages=_flatten(packages), channels=_flatten(channels),
                         spec_file=None if spec_file is None else str(spec_file), dir=_caller_dir())

    def run_commands(self, *commands: Any, env: dict[str, str | None] | None = None,
                     secrets: Sequence[Any] | None = None, volumes: dict[str, Any] | None = None, gpu: Any = None,
                     force_build: bool = False) -> Image:
        _refuse_step_options("Image.run_commands", env=env, volumes=volumes)
        return self._add("run_commands", commands=_flatten(commands))

    def dockerfile_commands(self, *commands: Any, context_files: dict[str, str] | None = None,
                            env: dict[str, str | None] | None = None, secrets: Sequence[Any] | None = None,
                            gpu: Any = None, context_dir: str | None = None, force_build: bool = False,
                            ignore: Any = None, build_args: dict[str, str] | None = None) -> Image:
        _refuse_step_options("Image.dockerfile_commands", env=env, build_args=build_args)
        return self._add("dockerfile_commands", commands=_flatten(commands), dir=_caller_dir(),
                         context_dir=None if context_dir is None else str(context_dir),
                         context_files=_freeze({str(k): str(v) for k, v in (context_files or {}).items()}))

    def env(self, vars: dict[str, str]) -> Image:
        return self._add("env", vars=_freeze({str(k): str(v) for k, v in vars.items()}))

    def workdir(self, path: str) -> Image:
        return self._add("workdir", path=str(path))

    def entrypoint(self, entrypoint_commands: Sequence[str]) -> Image:
        return self._add("entrypoint", commands=_flatten(entrypoint_commands))

    def cmd(self, cmd: Sequence[str]) -> Image:
        return self._add("cmd", commands=_flatten(cmd))

    def shell(self, shell_commands: Sequence[str]) -> Image:
        return self._add("shell", commands=_flatten(shell_commands))

    def pipe(self, func: Callable[..., Image], *args: Any, **kwargs: Any) -> Image:
        """``func(self, *args, **kwargs)``: a reusable chain of builders."""
        return func(self, *args, **kwargs)

    def hydrate(self, client: Any = None) -> Image:
        return self

    def add_local_dir(self, local_path: str, remote_path: str, *, copy: bool = False,
                      ignore: Sequence[str] = ()) -> Image:
        return self._add("add_local_dir", local_path=str(local_path), remote_path=str(remote_path),
                         ignore=_flatten(ignore) if not callable(ignore) else (), dir=_caller_dir())

    def add_local_file(self, local_path: str, remote_path: str, *, copy: bool = False) -> Image:
        return self._add("add_local_file", local_path=str(local_path), remote_path=str(remote_path),
                         dir=_caller_dir())

    def add_local_python_source(self, *modules: str, copy: bool = False, ignore: Any = None) -> Image:
        return self._add("add_local_python_source", modules=_flatten(modules), dir=_caller_dir())

    # Modal 0.x spellings.
    def copy_local_dir(self, local_path: str, remote_path: str = ".") -> Image:
        return self.add_local_dir(local_path, remote_path, copy=True)

    def copy_local_file(self, local_path: str, remote_path: str = "./") -> Image:
        return self.add_local_file(local_path, remote_path, copy=True)

    def run_function(self, raw_f: Any, *, env: dict[str, str | None] | None = None,
                     secrets: Sequence[Any] | None = None,
                     volumes: dict[Any, Any] = {},  # noqa: B006 - Modal's signature
                     network_file_systems: dict[Any, Any] = {},  # noqa: B006
                     gpu: Any = None, cpu: float | None = None, memory: int | None = None, timeout: int = 60 * 60,
                     cloud: str | None = None, region: str | Sequence[str] | None = None, force_build: bool = False,
                     args: Sequence[Any] = (), kwargs: dict[str, Any] = {},  # noqa: B006
                     include_source: bool = True) -> Image:
        """A build step that runs ``raw_f`` once; the compiler lowers (or refuses, by name) every option."""
        func = getattr(raw_f, "raw_f", raw_f)
        if not callable(func):
            raise InvalidError(f"Argument to Image.run_function must be a function, not {type(raw_f).__name__}.",
                               location=caller_location())
        if getattr(func, "__name__", "") == "<lambda>":
            raise InvalidError("Image.run_function does not support lambda functions.", location=caller_location())
        call = None
        if args or kwargs:
            from ..protocol import Call, encode  # lazily: allocations import this module at start-up

            call = encode("call", Call(inputs=[(tuple(args), dict(kwargs))]))
        mounted = {**dict(volumes or {}), **dict(network_file_systems or {})}
        return self._add(
            "run_function", module=getattr(func, "__module__", ""), qualname=getattr(func, "__qualname__", ""),
            timeout=timeout, call=call, location=caller_location(),
            env=_freeze({str(k): "" if v is None else str(v) for k, v in (env or {}).items()}),
            secrets=tuple((getattr(x, "kind", type(x).__name__), getattr(x, "name", ""),
                           tuple(getattr(x, "required_keys", ()))) for x in secrets or ()),
            volumes=tuple(sorted((str(path), type(v).__name__, str(getattr(v, "name", None) or
                                                                    getattr(v, "bucket_name", "")))
                                 for path, v in mounted.items())),
            gpu=_freeze(gpu), cpu=cpu, memory=_freeze(memory), cloud=cloud, region=_freeze(region),
            force_build=force_build, include_source=include_source)

    # -- identity and imports() ----------------------------------------------
    @property
    def recipe_key(self) -> str:
        """A short content key of the recipe (not of copied files): set as
        ``MODALC_IMAGE`` in the job, so ``imports()`` knows its own image."""
        # Folders of the declaring files are left out: the key must not depend on
        # where the checkout lives.
        steps = [[kind, [a for a in args if a[0] not in ("dir", "location")]] for kind, args in self.steps]
        import hashlib  # lazily: allocations import this module at start-up
        import json

        text = json.dumps(steps, sort_keys=True, default=repr)

        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def imports(self) -> _ImportsGuard:
        """On the client, swallow import failures (remembered); inside this
        image's container, let them raise."""
        return _ImportsGuard(self)


class _ImportsGuard:
    """The context manager ``Image.imports()`` returns (a class: contextlib is not free at start-up)."""

    __slots__ = ("image",)

    def __init__(self, image: Image) -> None:
        self.image = image

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        from . import _state

        key = self.image.recipe_key
        if not _state.is_local() and os.environ.get("MODALC_IMAGE") == key:
            return False
        _state.IMPORT_FAILURES.append((key, exc))
        return True


def _refuse_step_options(method: str, **given: Any) -> None:
    """A build step's options modalc cannot honour: an error, never a build that silently lacks them."""
    for name, value in given.items():
        if value:
            hint = {"env": "set the variables with Image.env({...}) before this step",
                    "build_args": "write the values into the commands or the Dockerfile",
                    "volumes": "copy the files in with Image.add_local_dir(...)"}[name]
            raise NotSupportedError(f"{method}({name}=...) is not supported by modalc", hint=hint,
                                    location=caller_location())


def _caller_dir() -> str:
    return os.path.dirname(os.path.abspath(caller_location()[0]))


def default_image() -> Image:
    """What Modal uses when an App and function give no image."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return Image(steps=(("debian_slim", (("python_version", version),)),), base_dir="")

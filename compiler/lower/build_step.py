"""``Image.run_function(f, ...)`` → the Dockerfile ``RUN`` that runs ``f`` once during the image build.

Runs on the client. The step runs the runtime on the user's code copied to
``/modalc/build-code``. Its options, as real Modal names them:

* ``secrets=``: each ``Secret.from_name(name)`` is a BuildKit build secret
  (``RUN --mount=type=secret,id=name``) the step sources into its environment;
  its values are given by ``modalc image build`` (from the local secret store)
  or ``docker build --secret id=name,src=FILE``: never in a layer, the
  Dockerfile or the build context. Other kinds of secret are refused.
* ``env=``: variables of that one ``RUN`` (not ``ENV``: they are not kept in the image).
* ``args=``/``kwargs=``: pickled into the context as the step's call file.
* ``gpu=``: validated and recorded (``ImageBuild.gpu``, a Dockerfile comment,
  a build note); ``modalc image build`` gives the step a GPU with podman or
  buildah (``--device nvidia.com/gpu=all``) and refuses docker, which cannot.
* ``volumes=``/``network_file_systems=``: refused, naming the volume (a build step mounts none).
* ``timeout=``: the runtime's timeout. ``cpu=``/``memory=`` (validated),
  ``cloud=``, ``region=``, ``force_build=``, ``include_source=``: no effect
  (the builder's resources; the build cache; the code is always copied).
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ..ir import BuildSecret, ContextFile
from ..secret_store import check_name
from . import resources as res
from .gpu import lower_gpu

if TYPE_CHECKING:
    from .images import _Recipe

_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRETS_DIR = "/run/secrets"


def _secrets(a: dict[str, Any], what: str, loc: tuple[str, int]) -> list[BuildSecret]:
    out: list[BuildSecret] = []
    for kind, name, required in a.get("secrets") or ():
        if kind != "name":
            raise UserError(f"{what}: secrets= holds a Secret of kind {kind!r}: only modal.Secret.from_name(...) "
                            "reaches a build step (as a BuildKit build secret)", location=loc,
                            hint="store it with `modalc secret create --local NAME KEY=VALUE ...` on the machine that "
                            "builds the images, and pass modal.Secret.from_name('NAME')")
        check_name(name)
        out.append(BuildSecret(name=name, required_keys=tuple(required), location=loc))
    return out


def _env(a: dict[str, Any], what: str, loc: tuple[str, int]) -> list[str]:
    assigns = []
    for key, value in a.get("env") or ():
        if not _ENV_KEY.match(key):
            raise UserError(f"{what}: env key {key!r} is not a valid environment variable name", location=loc)
        assigns.append(f"{key}={shlex.quote(value)}")
    return assigns


def _refuse_volumes(a: dict[str, Any], what: str, loc: tuple[str, int]) -> None:
    for path, kind, name in a.get("volumes") or ():
        raise UserError(f"{what}: {kind} {name!r} at {path!r} cannot be mounted into an image build step",
                        location=loc,
                        hint="a docker/podman build step mounts no volumes: fetch the data inside the function "
                        "(e.g. download it), or mount the volume in the functions that use the image")


def _gpu(a: dict[str, Any], what: str, loc: tuple[str, int]) -> str | None:
    gpu = a.get("gpu")
    if gpu is None:
        return None
    lower_gpu(gpu, loc)  # the same GPU names (and errors) as @app.function(gpu=)
    return gpu if isinstance(gpu, str) else ", ".join(str(g) for g in gpu)


def lower_run_function(recipe: _Recipe, index: int, a: dict[str, Any]) -> None:
    """Append the step's lines (and its call file) to ``recipe``; record its secrets and GPU."""
    loc = a.get("location") or recipe.location
    module, qualname = str(a.get("module") or ""), str(a.get("qualname") or "")
    what = f"Image.run_function({qualname or '?'})"
    if not module or not qualname or "<locals>" in qualname or module == "__main__":
        raise UserError(f"{what}: the function must be defined at the top level of an importable module",
                        location=loc)
    _refuse_volumes(a, what, loc)
    secrets = _secrets(a, what, loc)
    assigns = _env(a, what, loc)
    gpu = _gpu(a, what, loc)
    res.cpu_mhz(a.get("cpu"), loc)
    res.memory_mib(a.get("memory"), loc)
    timeout = res.timeout_s(a.get("timeout") or 3600, loc)
    recipe.install_runtime()
    if not recipe.code_copied:
        recipe.code_copied = True
        recipe.context.extend(recipe.code)
        recipe.lines.append("COPY code/ /modalc/build-code/")
    call = "--no-input"
    if a.get("call"):
        dest = f"files/{index}/call.pkl"
        recipe.context.append(ContextFile(source=dest, path=dest, data=a["call"]))
        recipe.lines.append(f"COPY {dest} /tmp/modalc/{dest}")
        call = f"--call /tmp/modalc/{dest}"
    if gpu is not None:
        recipe.gpu = gpu
        recipe.lines.append(f"# modalc: the next step asks for gpu={gpu}: build it with podman or buildah and "
                            "--device nvidia.com/gpu=all (CDI) on a GPU machine")
        recipe.notes.append(f"{what} asks for gpu={gpu}: `modalc image build` runs that step with podman or "
                            "buildah and --device nvidia.com/gpu=all on a machine with the GPU (docker build "
                            "cannot give a build step a GPU)")
    mounts = "".join(f"--mount=type=secret,id={s.name},required=true " for s in secrets)
    load = "".join(f"set -a && . {SECRETS_DIR}/{s.name} && set +a && " for s in secrets)
    recipe.secrets.extend(s for s in secrets if s.name not in {x.name for x in recipe.secrets})
    if secrets:
        recipe.notes.append(f"{what} reads build secret{'s' if len(secrets) > 1 else ''} "
                            f"{', '.join(repr(s.name) for s in secrets)}: `modalc image build` passes "
                            f"{'them' if len(secrets) > 1 else 'it'} from the local secret store (docker build "
                            "--secret id=NAME,src=FILE by hand); no value is in the Dockerfile or its context")
    env = " ".join([*assigns, "MODALC_IN_CONTAINER=1", "PYTHONUNBUFFERED=1"])
    recipe.lines.append(
        f"RUN {mounts}{load}{env} python -m agent_runtime --code /modalc/build-code "
        f"--module {shlex.quote(module)} --qualname {shlex.quote(qualname)} --result-dir /tmp/modalc-build/{index} "
        f"--timeout {timeout} {call} && rm -rf /tmp/modalc-build")

"""Run-scoped secrets: ``Secret.from_dict``/``from_dotenv``/``from_local_environ`` resolved at ``modalc run``.

Runs on the client. ``resolve`` reads the values when the run starts (the
dotenv file, this process's environment, the dict) keyed by each secret's
stable ID (``lower.files.run_secret_id``). ``published`` makes them readable
by the run's tasks for the run's lifetime:

* on Nomad, one Variable per secret at ``modalc/runs/<run id>/<secret id>``,
  written before the first job is registered and deleted when the run ends
  (return, error, Ctrl-C; ``--detach`` keeps them and says how to delete them:
  ``modalc app stop APP --run RUN`` does, ``delete_run_variables``);
  the run's templates find them through the job meta ``modalc_run``;
* locally, the values are handed to the local backend in memory, which renders
  them into the task's ``secrets/`` template file and environment as Nomad would.

Values are never written into a spec, printed or logged.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from agent_runtime.sdk.objects import Secret

from . import secret_store
from .backends.base import Backend
from .errors import ModalcError, UserError
from .graph import AppGraph
from .ir import CompiledApp
from .lower.files import RUN_SCOPED_KINDS, RUNS_PREFIX, run_secret_id, run_secret_path
from .lower.warm import TOKEN_VAR_FORMAT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .backends.nomad_api import NomadAPI


def _values(secret: Secret) -> dict[str, str]:
    if secret.kind == "dict":
        return secret.values()
    if secret.kind == "dotenv":
        if not os.path.isfile(secret.path):
            raise UserError(f"modal.Secret.from_dotenv(): {secret.path} does not exist", location=secret.location,
                            hint="create the file, or pass its folder: modal.Secret.from_dotenv(path)")
        return secret_store.parse_dotenv(secret.path)
    missing = [k for k in secret.keys if k not in os.environ]
    if missing:
        raise UserError(f"modal.Secret.from_local_environ(): {', '.join(missing)} not set in this environment",
                        location=secret.location, hint=f"export {missing[0]}=... before modalc run")
    return {k: os.environ[k] for k in secret.keys}


def resolve(graph: AppGraph, compiled: CompiledApp) -> dict[str, dict[str, str]]:
    """Run-scoped secret ID -> values, for the compiled functions' secrets."""
    tags = {fn.tag for fn in compiled.functions}
    out: dict[str, dict[str, str]] = {}
    for node in graph.functions:
        if node.tag not in tags:
            continue
        for secret in node.options.get("secrets") or ():
            if isinstance(secret, Secret) and secret.kind in RUN_SCOPED_KINDS:
                sid = run_secret_id(secret)
                if sid not in out:
                    values = _values(secret)
                    if not values:
                        raise UserError(f"modal.Secret.from_{secret.kind}() has no values", location=secret.location,
                                        hint="a Nomad Variable needs at least one KEY=VALUE")
                    out[sid] = values
    return out


def run_paths(values: dict[str, dict[str, str]], run_id: str) -> list[str]:
    """The run-scoped Variables ``published`` writes (the run's ACL policy lets its jobs read them)."""
    return [run_secret_path(run_id, sid) for sid in sorted(values)]


@contextmanager
def published(backend: Backend, values: dict[str, dict[str, str]], run_id: str, *,
              detach: bool = False) -> Iterator[None]:
    """Make ``values`` readable by the run's tasks until the block ends."""
    if not values:
        yield
        return
    from .backends.local import LocalBackend
    from .backends.nomad import NomadBackend

    if isinstance(backend, LocalBackend):
        backend.run_secrets.update(values)
        try:
            yield
        finally:
            backend.run_secrets.clear()
        return
    if not isinstance(backend, NomadBackend):
        raise UserError(f"the {backend.name} backend cannot pass run-scoped secrets",
                        hint="store them with `modalc secret create` and use modal.Secret.from_name(...)")
    from .backends.nomad_api import NomadAPI

    api = NomadAPI(backend.settings)
    written: list[str] = []
    try:
        for sid, items in sorted(values.items()):
            path = run_secret_path(run_id, sid)
            written.append(path)  # before the request: a lost answer is still cleaned up
            api.put_variable(path, items)
        yield
    finally:
        try:
            if detach and written:
                sys.stderr.write("The run's secrets stay readable by its jobs; `modalc app stop <app> --run "
                                 f"{run_id}` deletes them with the jobs, or delete them when done:\n"
                                 + "".join(f"  nomad var purge {p}\n" for p in written))
            else:
                for path in written:
                    try:
                        api.delete_variable(path)
                    except ModalcError as exc:
                        sys.stderr.write(f"warning: could not delete the run's secret Variable {path}: {exc}\n"
                                         f"  delete it with: nomad var purge {path}\n")
        finally:
            api.close()


def delete_run_variables(api: NomadAPI, run_id: str, job_ids: list[str], echo: Callable[[str], None]) -> None:
    """``modalc app stop APP --run RUN``: delete the run's secret Variables (``modalc/runs/<run id>/...``)
    and its jobs' warm-channel token Variables (``nomad/jobs/<job id>``), so a detached run leaves nothing.
    Absent ones are fine; a failed delete is reported with the command that finishes it."""
    paths = [str(v["Path"]) for v in api.list_variables(f"{RUNS_PREFIX}/{run_id}/")]
    for job_id in job_ids:
        path = TOKEN_VAR_FORMAT % job_id
        if api.get_variable(path) is not None:
            paths.append(path)
    delete_variables(api, paths, echo)


def delete_variables(api: NomadAPI, paths: list[str], echo: Callable[[str], None]) -> None:
    """Delete each Variable, saying so; an absent one is fine, a failed delete is reported with the
    command that finishes it."""
    from .backends.nomad_api import NomadNotFound

    for path in paths:
        try:
            api.delete_variable(path)
        except NomadNotFound:
            continue
        except ModalcError as exc:
            echo(f"could not delete Variable {path}: {exc}; delete it with: nomad var purge {path}")
            continue
        echo(f"deleted Variable {path}")

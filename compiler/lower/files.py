"""Files Nomad renders into the task: the user's code, and secrets from Nomad Variables.

Runs on the client. The user's source travels inside the spec as template
data, so that it is reviewable in git; its consul-template delimiters are
chosen so that they never occur in the code, and the HCL emitter escapes
``${``/``%{``, so neither Nomad's template engine nor HCL interpolates it.
Secrets are read at run time from ``modalc/secrets/<name>``; no value is
ever in a spec. In run mode (``modalc run``) a ``Secret.from_dict``,
``from_dotenv`` or ``from_local_environ`` becomes a template reading the
run-scoped Variable ``modalc/runs/<run id>/<secret id>``: the run ID is not
known when the job is compiled, so the template takes it from the job meta
``modalc_run`` (``env "NOMAD_META_modalc_run"``) that the backend sets per run;
the secret ID is a hash of the declaration (kind, file:line, keys or path),
so the spec stays deterministic and holds no value (``compiler/run_secrets.py``
writes and deletes the Variables). In ``build``/``deploy`` a ``Secret.from_dict`` is
app-scoped instead: its template reads ``modalc/apps/<app>/<secret id>``
(``lower/app_secrets.py``), which ``modalc deploy`` writes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping

from agent_runtime.sdk.objects import Secret

from ..errors import UserError
from ..ir import CODE_DIR, Template
from ..loader import SourceFile

SECRETS_PREFIX = "modalc/secrets"
RUNS_PREFIX = "modalc/runs"
RUN_META = "modalc_run"  # job meta holding the run ID (set by the backends, read by run-scoped templates)
RUN_SCOPED_KINDS = ("dict", "dotenv", "local_environ")
_SECRET_NAME = re.compile(r"^[a-zA-Z0-9_~-]{1,64}$")


def _delimiters(texts: Iterable[str]) -> tuple[str, str]:
    joined = "\n".join(texts)
    n = 0
    while True:
        suffix = str(n) if n else ""
        left, right = f"[[modalc{suffix}", f"modalc{suffix}]]"
        if left not in joined and right not in joined:
            return left, right
        n += 1


def code_templates(sources: tuple[SourceFile, ...]) -> tuple[Template, ...]:
    left, right = _delimiters(s.text for s in sources)
    return tuple(
        Template(
            destination=f"local/{CODE_DIR}/{s.path}",
            data=s.text if s.text.endswith("\n") else s.text + "\n",
            left_delimiter=left,
            right_delimiter=right,
            env=False,
            change_mode="noop",
            perms="0644",
        )
        for s in sources
    )


def secret_path(name: str) -> str:
    return f"{SECRETS_PREFIX}/{name}"


def run_secret_id(secret: Secret) -> str:
    """A run-scoped secret's stable ID: a hash of how and where it was declared (never of its values)."""
    key = "\0".join((secret.kind, secret.location[0], str(secret.location[1]), secret.path, *secret.keys))
    return "s" + hashlib.sha256(key.encode()).hexdigest()[:16]


def run_secret_path(run_id: str, secret_id: str) -> str:
    return f"{RUNS_PREFIX}/{run_id}/{secret_id}"


def _env_template(path_expr: str, destination: str) -> Template:
    data = f"{{{{ with nomadVar {path_expr} }}}}{{{{ range .Tuples }}}}{{{{ .K }}}}={{{{ .V | toJSON }}}}\n{{{{ end }}}}{{{{ end }}}}"
    return Template(destination=destination, data=data, left_delimiter=None, right_delimiter=None, env=True,
                    change_mode="restart", perms="0400")


def _run_scoped(secret: Secret) -> Template:
    sid = run_secret_id(secret)
    path = f'(printf "{RUNS_PREFIX}/%s/{sid}" (env "NOMAD_META_{RUN_META}"))'
    return _env_template(path, f"secrets/run-{sid}.env")


def secret_templates(secrets: Iterable[Secret], location: tuple[str, int], *,
                     mode: str = "deploy", app_paths: Mapping[Secret, str] | None = None) -> tuple[Template, ...]:
    """The templates of a function's secrets; ``app_paths``: the app-scoped ones' Variables (deploy mode)."""
    out: list[Template] = []
    seen: set[str] = set()
    for secret in secrets:
        loc = secret.location if secret.location[1] else location
        if not isinstance(secret, Secret):
            raise UserError(f"secrets= takes modal.Secret objects, got {type(secret).__name__}", location=location)
        if mode == "run" and secret.kind in RUN_SCOPED_KINDS:
            if run_secret_id(secret) not in seen:
                seen.add(run_secret_id(secret))
                out.append(_run_scoped(secret))
            continue
        if secret.kind == "dict":
            if not secret.keys:
                continue  # an empty from_dict sets nothing
            path = (app_paths or {}).get(secret)
            if path is None:
                raise UserError("modal.Secret.from_dict(...) is not one of the app's functions' secrets",
                                location=loc, hint="pass it in secrets=[...] of an @app.function()")
            if path not in seen:
                seen.add(path)
                out.append(_env_template(f'"{path}"', f"secrets/app-{path.rsplit('/', 1)[1]}.env"))
            continue
        if secret.kind in ("dotenv", "local_environ"):
            raise UserError(
                f"modal.Secret.from_{secret.kind}() is resolved on the client at run time, which a built spec cannot do",
                location=loc,
                hint="store the values with `modalc secret create NAME ...` and use modal.Secret.from_name(\"NAME\")",
            )
        if not _SECRET_NAME.match(secret.name):
            raise UserError(f"secret name {secret.name!r} is not a valid Nomad Variable path element",
                            location=loc, hint="use letters, digits, '-', '_' and '~' (at most 64)")
        if secret.name in seen:
            continue
        seen.add(secret.name)
        out.append(_env_template(f'"{secret_path(secret.name)}"', f"secrets/{secret.name}.env"))
    return tuple(out)

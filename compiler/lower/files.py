"""Files Nomad renders into the task: the user's code, and secrets from Nomad Variables.

Runs on the client. The user's source travels inside the spec as template
data, so that it is reviewable in git; its consul-template delimiters are
chosen so that they never occur in the code, and the HCL emitter escapes
``${``/``%{``, so neither Nomad's template engine nor HCL interpolates it.
Secrets are read at run time from ``modalc/secrets/<name>``; no value is
ever in a spec.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from agent_runtime.sdk.objects import Secret

from ..errors import UserError
from ..ir import CODE_DIR, Template
from ..loader import SourceFile

SECRETS_PREFIX = "modalc/secrets"
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


def secret_templates(secrets: Iterable[Secret], location: tuple[str, int]) -> tuple[Template, ...]:
    out: list[Template] = []
    seen: set[str] = set()
    for secret in secrets:
        loc = secret.location if secret.location[1] else location
        if not isinstance(secret, Secret):
            raise UserError(f"secrets= takes modal.Secret objects, got {type(secret).__name__}", location=location)
        if secret.kind == "dict":
            keys = ", ".join(secret.keys) or "..."
            raise UserError(
                "modal.Secret.from_dict(...) would put secret values into the job spec",
                location=loc,
                hint=f"store them once with `modalc secret create NAME {' '.join(k + '=...' for k in secret.keys) or 'KEY=VALUE'}` "
                f"and use modal.Secret.from_name(\"NAME\") (keys: {keys})",
            )
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
        data = (
            f'{{{{ with nomadVar "{secret_path(secret.name)}" }}}}'
            "{{ range .Tuples }}{{ .K }}={{ .V | toJSON }}\n{{ end }}{{ end }}"
        )
        out.append(Template(destination=f"secrets/{secret.name}.env", data=data, left_delimiter=None,
                            right_delimiter=None, env=True, change_mode="restart", perms="0400"))
    return tuple(out)

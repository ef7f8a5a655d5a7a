"""App-scoped secrets: where ``Secret.from_dict`` lives in ``modalc build``/``deploy`` (a Nomad Variable).

Runs on the client. A deployed app's inline secret is stored once, outside the spec (as Modal keeps a
deployed app's inline secret on its servers): in the Nomad Variable ``modalc/apps/<app>/<secret id>``
that ``modalc deploy`` writes (``compiler/deploy_secrets.py``) and the job's template reads with
``nomadVar``; ``modalc build`` prints the ``nomad var put`` command that creates it. The path depends on
the app's name and the secret's key names only, never on its values, so the spec is deterministic and a
changed value updates the same Variable. The secret ID is a hash of the sorted key names; when two
``from_dict`` secrets of the app have the same keys, the second (in source order) gets ``-2``, and so on.
"""

from __future__ import annotations

import hashlib
import re

from agent_runtime.sdk.objects import Secret

from ..graph import AppGraph

APPS_PREFIX = "modalc/apps"
APP_SCOPED_KINDS = ("dict",)
_NOT_PATH = re.compile(r"[^A-Za-z0-9-]")
_SLUG_MAX = 96  # modalc/apps/<96>/d<12 hex>-NN stays within Nomad's 128-character Variable paths


def app_slug(app_name: str) -> str:
    """The app's path element: ``[A-Za-z0-9-]``, a hash of the full name when it had to be shortened."""
    slug = _NOT_PATH.sub("-", app_name) or "app"
    if len(slug) > _SLUG_MAX:
        slug = slug[:_SLUG_MAX - 9] + "-" + hashlib.sha256(app_name.encode()).hexdigest()[:8]
    return slug


def app_prefix(app_name: str) -> str:
    return f"{APPS_PREFIX}/{app_slug(app_name)}/"


def _key_hash(secret: Secret) -> str:
    return "d" + hashlib.sha256("\0".join(sorted(secret.keys)).encode()).hexdigest()[:12]


def app_secrets(graph: AppGraph) -> dict[Secret, str]:
    """Each app-scoped secret of any function of the app (with keys) -> its Variable path."""
    found: set[Secret] = set()
    for node in graph.functions:
        for secret in node.options.get("secrets") or ():
            if isinstance(secret, Secret) and secret.kind in APP_SCOPED_KINDS and secret.keys:
                found.add(secret)
    out: dict[Secret, str] = {}
    counts: dict[str, int] = {}
    for secret in sorted(found, key=lambda s: (s.location, sorted(s.keys))):
        base = _key_hash(secret)
        counts[base] = counts.get(base, 0) + 1
        sid = base if counts[base] == 1 else f"{base}-{counts[base]}"
        out[secret] = f"{app_prefix(graph.app_name)}{sid}"
    return out

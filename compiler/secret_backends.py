"""Where named secrets live: the local store, or Nomad Variables at ``modalc/secrets/<name>``.

Runs on the client. ``modalc secret create/list/delete`` and the pre-submission
``required_keys`` check (``compiler/preflight.py``) use one of these: Nomad
Variables when Nomad is configured (NOMAD_ADDR or ``--address``), else the
local store (``compiler/secret_store.py``). Values are only ever sent to the
store; nothing here prints or logs them (messages name keys, never values).
"""

from __future__ import annotations

from typing import Protocol

from . import secret_store
from .backends.nomad_api import NomadAPI, NomadConflict
from .errors import UserError
from .lower.files import SECRETS_PREFIX, secret_path


class SecretBackend(Protocol):
    where: str

    def create(self, name: str, items: dict[str, str], *, force: bool = False) -> None: ...

    def keys(self, name: str) -> list[str] | None:
        """The secret's keys, or None when it does not exist."""

    def names(self) -> list[str]: ...

    def delete(self, name: str) -> None: ...


class LocalSecrets:
    """The local store (JSON files under ``$MODALC_HOME/secrets``, 0600)."""

    where = "the local store"

    def create(self, name: str, items: dict[str, str], *, force: bool = False) -> None:
        secret_store.create(name, items, force=force)

    def keys(self, name: str) -> list[str] | None:
        try:
            return secret_store.keys(name)
        except UserError:
            return None

    def names(self) -> list[str]:
        return secret_store.names()

    def delete(self, name: str) -> None:
        secret_store.delete(name)


class NomadSecrets:
    """Nomad Variables at ``modalc/secrets/<name>`` in the API's namespace."""

    def __init__(self, api: NomadAPI):
        self.api = api
        self.where = f"Nomad ({api.settings.address}, namespace {api.settings.namespace!r})"

    def create(self, name: str, items: dict[str, str], *, force: bool = False) -> None:
        secret_store.check_name(name)
        if not items:
            raise UserError("a secret needs at least one KEY=VALUE")
        try:
            # cas=0: write only if absent, so an existing secret is never replaced by accident.
            self.api.put_variable(secret_path(name), items, cas=None if force else 0)
        except NomadConflict:
            raise UserError(f"secret {name!r} already exists in {self.where}",
                            hint="pass --force to replace it") from None

    def keys(self, name: str) -> list[str] | None:
        var = self.api.get_variable(secret_path(name))
        return None if var is None else sorted(var.get("Items") or {})

    def names(self) -> list[str]:
        prefix = SECRETS_PREFIX + "/"
        return sorted(v["Path"][len(prefix):] for v in self.api.list_variables(prefix)
                      if v.get("Path", "").startswith(prefix) and "/" not in v["Path"][len(prefix):])

    def delete(self, name: str) -> None:
        secret_store.check_name(name)
        if self.api.get_variable(secret_path(name)) is None:
            raise UserError(f"secret {name!r} does not exist in {self.where}", hint="modalc secret list shows them")
        self.api.delete_variable(secret_path(name))

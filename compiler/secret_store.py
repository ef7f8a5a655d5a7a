"""The local secret store: named sets of environment variables for the local backend.

Runs on the client. One JSON file per secret under ``$MODALC_HOME/secrets``,
readable only by the user (0600), written atomically. Values are never
printed, logged or put into a spec.
"""

from __future__ import annotations

import json
import os
import re

from agent_runtime.protocol import write_atomic

from .errors import UserError
from .home import subdir

_NAME = re.compile(r"^[a-zA-Z0-9_~-]{1,64}$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UserError(f"secret name {name!r} is not valid", hint="use letters, digits, '-', '_' and '~' (at most 64)")
    return name


def _path(name: str) -> str:
    return os.path.join(subdir("secrets"), f"{check_name(name)}.json")


def parse_pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    items: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not _KEY.match(key):
            raise UserError(f"{key if sep else pair!r} is not KEY=VALUE with a valid variable name",
                            hint="e.g. modalc secret create db PASSWORD=hunter2")
        items[key] = value
    return items


def parse_dotenv(path: str) -> dict[str, str]:
    items: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for number, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            line = line.removeprefix("export ")
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep or not _KEY.match(key):
                raise UserError(f"{path}:{number}: not KEY=VALUE", location=(path, number))
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            items[key] = value
    return items


def create(name: str, items: dict[str, str], *, force: bool = False) -> None:
    path = _path(name)
    if os.path.exists(path) and not force:
        raise UserError(f"secret {name!r} already exists", hint="pass --force to replace it")
    if not items:
        raise UserError("a secret needs at least one KEY=VALUE")
    data = json.dumps(items, sort_keys=True).encode()
    write_atomic(path, data)
    os.chmod(path, 0o600)


def read(name: str) -> dict[str, str]:
    try:
        with open(_path(name), encoding="utf-8") as fh:
            return dict(json.load(fh))
    except FileNotFoundError:
        raise UserError(f"secret {name!r} does not exist in the local store",
                        hint=f"create it with `modalc secret create {name} KEY=VALUE ...`") from None


def names() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(subdir("secrets")) if f.endswith(".json"))


def keys(name: str) -> list[str]:
    return sorted(read(name))


def delete(name: str) -> None:
    try:
        os.unlink(_path(name))
    except FileNotFoundError:
        raise UserError(f"secret {name!r} does not exist") from None

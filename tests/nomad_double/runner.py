"""Task-running helpers for the Nomad test double: alloc dirs, env, templates, commands.

Stdlib only. These mirror what a Nomad client does before starting a task
(``client/allocdir``, ``client/taskenv/env.go``, the dispatch-payload and
template hooks) closely enough for modalc's jobs, with these double-only
behaviours (documented, deliberate):

* the allocation directory lives under ``root_dir/<alloc id>/`` on the host and
  ``NOMAD_ALLOC_DIR``/``NOMAD_TASK_DIR``/``NOMAD_SECRETS_DIR`` are host paths for
  every driver (real docker/exec tasks would see ``/alloc``, ``/local``,
  ``/secrets``);
* the ``docker`` driver cannot run here (no Docker engine): a docker task whose
  ``Config.command`` is ``python``/``python3`` runs as a local process with the
  host's ``sys.executable``; other docker tasks get a "Driver Failure";
* only the templates modalc emits are rendered: literal data (custom delimiters
  absent from the data, or no delimiters at all) and the ``nomadVar`` env pattern
  ``{{ with nomadVar "P" }}{{ range .Tuples }}{{ .K }}={{ .V | toJSON }}\\n{{ end }}{{ end }}``;
  anything else is a template failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ALLOC_SUBDIRS = ("alloc/data", "alloc/logs", "alloc/tmp")
TASK_SUBDIRS = ("local", "secrets", "tmp", "private")


class TaskSetupError(Exception):
    """The task could not be set up; ``event`` is the TaskEvent type to record."""

    def __init__(self, event: str, message: str):
        super().__init__(message)
        self.event = event
        self.message = message


def make_alloc_dir(root: Path, alloc_id: str, tasks: list[str]) -> Path:
    """Create Nomad's allocation directory layout and return it."""
    adir = root / alloc_id
    for sub in ALLOC_SUBDIRS:
        (adir / sub).mkdir(parents=True, exist_ok=True)
    for task in tasks:
        for sub in TASK_SUBDIRS:
            (adir / task / sub).mkdir(parents=True, exist_ok=True)
    return adir


def _meta_key(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", key)


def task_env(*, alloc: Mapping[str, Any], job: Mapping[str, Any], group: Mapping[str, Any],
             task: Mapping[str, Any], alloc_dir: Path, index: int) -> dict[str, str]:
    """The ``NOMAD_*`` variables of section 1f for one task (before the task's ``Env``)."""
    tname = task["Name"]
    tdir = alloc_dir / tname
    res = task.get("Resources") or {}
    env = {
        "NOMAD_ALLOC_DIR": str(alloc_dir / "alloc"),
        "NOMAD_TASK_DIR": str(tdir / "local"),
        "NOMAD_SECRETS_DIR": str(tdir / "secrets"),
        "NOMAD_ALLOC_ID": alloc["ID"],
        "NOMAD_SHORT_ALLOC_ID": alloc["ID"][:8],
        "NOMAD_ALLOC_NAME": alloc["Name"],
        "NOMAD_ALLOC_INDEX": str(index),
        "NOMAD_TASK_NAME": tname,
        "NOMAD_GROUP_NAME": group["Name"],
        "NOMAD_JOB_ID": job["ID"],
        "NOMAD_JOB_NAME": job.get("Name") or job["ID"],
        "NOMAD_DC": "dc1",
        "NOMAD_REGION": job.get("Region") or "global",
        "NOMAD_NAMESPACE": job.get("Namespace") or "default",
        "NOMAD_CPU_LIMIT": str(res.get("CPU") or 100),
        "NOMAD_MEMORY_LIMIT": str(res.get("MemoryMB") or 300),
    }
    if res.get("MemoryMaxMB"):
        env["NOMAD_MEMORY_MAX_LIMIT"] = str(res["MemoryMaxMB"])
    if job.get("ParentID"):
        env["NOMAD_JOB_PARENT_ID"] = job["ParentID"]
    meta: dict[str, str] = {}
    param = job.get("ParameterizedJob") or {}
    if job.get("Dispatched"):
        for key in param.get("MetaOptional") or []:
            meta[key] = ""
    for layer in (job.get("Meta"), group.get("Meta"), task.get("Meta")):
        meta.update({k: str(v) for k, v in (layer or {}).items()})
    for key, value in meta.items():
        k = _meta_key(key)
        env[f"NOMAD_META_{k}"] = value
        env[f"NOMAD_META_{k.upper()}"] = value
    return env


_INTERP = re.compile(r"\$\{([A-Za-z0-9_.\-]+)\}")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Replace ``${NAME}`` (and ``${env.NAME}``) with values from ``env``; unknown names stay."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name.startswith("env."):
            name = name[4:]
        return env.get(name, m.group(0))
    return _INTERP.sub(sub, text)


_NOMADVAR = re.compile(
    r'^\s*L\s*with nomadVar (?:"(?P<path>[^"]+)"|\(printf "(?P<fmt>[^"%]*%s[^"%]*)" \(env "(?P<env>\w+)"\)\))\s*R\s*L\s*range \.Tuples\s*R\s*L\s*\.K\s*R=L\s*\.V \| toJSON\s*R'
    r'(?:\\n|\n)L\s*end\s*R\s*L\s*end\s*R\s*$')


def render_template(tmpl: Mapping[str, Any], read_var: Callable[[str], dict[str, str] | None],
                    env: Mapping[str, str] | None = None) -> str:
    """Render one Template's ``EmbeddedTmpl`` (only the forms modalc emits).

    The Variable path is a string literal or ``(printf "a/%s/b" (env "NAME"))`` with ``env`` the task's.
    """
    data = tmpl.get("EmbeddedTmpl") or ""
    left = tmpl.get("LeftDelim") or "{{"
    right = tmpl.get("RightDelim") or "}}"
    if left not in data and right not in data:
        return data
    pattern = _NOMADVAR.pattern.replace("L", re.escape(left)).replace("R", re.escape(right))
    m = re.match(pattern, data)
    if not m:
        raise TaskSetupError("Template failure",
                             "the Nomad test double renders only literal templates and the nomadVar env pattern")
    path = m.group("path") or m.group("fmt").replace("%s", (env or {}).get(m.group("env"), ""))
    items = read_var(path) or {}
    return "".join(f"{k}={json.dumps(items[k])}\n" for k in sorted(items))


def parse_env_file(text: str) -> dict[str, str]:
    """Parse a rendered ``env = true`` template (``K=V`` lines, V optionally JSON-quoted)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                value = value.strip('"')
        out[key.strip()] = value
    return out


def resolve_command(driver: str, config: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """The argv the double runs for a task (see the module docstring for docker)."""
    command = config.get("command")
    args = [interpolate(str(a), env) for a in (config.get("args") or [])]
    if driver == "raw_exec" or driver == "exec":
        if not command:
            raise TaskSetupError("Driver Failure", "missing command")
        command = interpolate(str(command), env)
        found = command if os.path.isabs(command) else shutil.which(command, path=env.get("PATH"))
        if not found:
            raise TaskSetupError("Driver Failure", f'failed to start task: exec: "{command}": not found')
        return [found, *args]
    if driver == "docker":
        if command in ("python", "python3") or (command or "").rsplit("/", 1)[-1] in ("python", "python3"):
            return [sys.executable, *args]
        raise TaskSetupError("Driver Failure",
                             "the Nomad test double runs docker tasks only when config.command is python/python3 "
                             f"(got {command!r}); there is no Docker engine here")
    raise TaskSetupError("Driver Failure", f'driver "{driver}" is not available on the Nomad test double')

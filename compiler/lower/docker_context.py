"""The local files a user's Dockerfile lines COPY or ADD, moved into modalc's build context.

Runs on the client. ``Image.from_dockerfile(path, context_dir=)`` and
``Image.dockerfile_commands(..., context_dir=, context_files=)`` name files
relative to their own context folder; modalc's context holds several such
folders side by side, so each COPY/ADD source is rewritten to
``<prefix>/<source>`` and the files it matches are copied there. ``--from``
copies (from another stage or image) and ADD of a URL are left alone.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import posixpath
from collections.abc import Callable, Iterator

from ..errors import UserError

SKIP_DIRS = {"__pycache__", ".git", ".venv", "node_modules"}


def walk(root: str, ignore: tuple[str, ...] = ()) -> Iterator[str]:
    """Files below ``root`` (``/``-separated, sorted), without caches, VCS folders and ``ignore`` patterns."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
            if not any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(name, pat) for pat in ignore):
                yield rel


def logical_lines(text: str) -> list[str]:
    """Dockerfile instructions with their ``\\`` continuations joined; comments and blank lines dropped."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        out.append(pending + line)
        pending = ""
    if pending.strip():
        out.append(pending.strip())
    return out


def _is_remote(source: str) -> bool:
    return "://" in source or source.startswith("git@")


class ContextRewriter:
    """Rewrites COPY/ADD sources of user Dockerfile lines into ``prefix``, collecting the files."""

    def __init__(self, context_dir: str, prefix: str, add_file: Callable[[str, str], None],
                 location: tuple[str, int], context_files: dict[str, str] | None = None):
        self.context_dir = context_dir
        self.prefix = prefix
        self.add_file = add_file
        self.location = location
        # path in the user's context → local file (``dockerfile_commands(context_files=)``)
        self.context_files = {posixpath.normpath(k.lstrip("/")): v for k, v in (context_files or {}).items()}
        self.seen: set[str] = set()

    def _add(self, local: str, rel: str) -> None:
        if rel not in self.seen:
            self.seen.add(rel)
            self.add_file(local, f"{self.prefix}/{rel}")

    def _copy_source(self, source: str, instruction: str) -> str:
        norm = posixpath.normpath(source.lstrip("/"))
        if norm == ".." or norm.startswith("../"):
            raise UserError(f"{instruction} {source}: the source is outside the build context",
                            location=self.location, hint="set context_dir= to a folder that holds it")
        if norm in self.context_files:
            local = self.context_files[norm]
            if not os.path.isfile(local):
                raise UserError(f"context_files: {local!r} does not exist", location=self.location)
            self._add(os.path.abspath(local), norm)
            return f"{self.prefix}/{norm}"
        matches = sorted(glob.glob(os.path.join(self.context_dir, norm)))
        if not matches:
            raise UserError(f"{instruction} {source}: no such file in the build context {self.context_dir}",
                            location=self.location, hint="set context_dir= to the folder COPY paths are relative to")
        for match in matches:
            rel = os.path.relpath(match, self.context_dir).replace(os.sep, "/")
            if os.path.isdir(match):
                for inner in walk(match):
                    self._add(os.path.join(match, inner), posixpath.normpath(f"{rel}/{inner}"))
            else:
                self._add(match, rel)
        return f"{self.prefix}/" if norm == "." else f"{self.prefix}/{norm}"

    def rewrite(self, line: str) -> str:
        """One logical instruction, its COPY/ADD sources moved under ``prefix``."""
        word, _, rest = line.partition(" ")
        instruction = word.upper()
        if instruction not in ("COPY", "ADD"):
            return line
        tokens = rest.split()
        flags = [t for t in tokens if t.startswith("--")]
        if any(f.startswith("--from") for f in flags):
            return line
        body = rest.strip()
        while body.startswith("--"):
            body = body.split(None, 1)[1] if " " in body else ""
        json_form = body.startswith("[")
        try:
            paths = [str(p) for p in json.loads(body)] if json_form else body.split()
        except ValueError:
            raise UserError(f"cannot read {line!r}", location=self.location) from None
        if len(paths) < 2 or paths[0].startswith("<<"):
            return line  # heredocs and malformed lines: left to the builder
        *sources, dest = paths
        moved = [s if instruction == "ADD" and _is_remote(s) else self._copy_source(s, instruction)
                 for s in sources]
        head = " ".join([word, *flags])
        if json_form:
            return f"{head} {json.dumps([*moved, dest])}"
        return f"{head} {' '.join([*moved, dest])}"

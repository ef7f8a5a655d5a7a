"""Writing compiled specs to a folder: atomically, without stale files, or checking them.

Runs on the client. A spec file belongs to an app when its text carries the
app's ``modalc_app`` meta; only those are replaced or removed, so several
apps can share one GitOps folder.
"""

from __future__ import annotations

import difflib
import os
import re

from agent_runtime.protocol import write_atomic

from .phases import HCL_SUFFIX, JSON_SUFFIX


def _owned_specs(folder: str, app_name: str, outputs: dict[str, str]) -> set[str]:
    """Spec files in ``folder`` that modalc wrote for ``app_name``, of the formats in ``outputs``."""
    suffixes = tuple(s for s in (HCL_SUFFIX, JSON_SUFFIX) if any(n.endswith(s) for n in outputs))
    if not os.path.isdir(folder):
        return set()
    hcl_marker = re.compile(r'^\s*modalc_app\s*=\s*"' + re.escape(app_name) + r'"\s*$', re.M)
    json_marker = f'"modalc_app": "{app_name}"'
    owned = set()
    for name in os.listdir(folder):
        if not suffixes or not name.endswith(suffixes):
            continue
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError):
            continue
        if hcl_marker.search(text) or json_marker in text:
            owned.add(name)
    return owned


def write_outputs(folder: str, outputs: dict[str, str], app_name: str) -> tuple[list[str], list[str]]:
    """Write every output atomically; remove this app's specs that are no longer produced.

    Returns (written or changed files, removed files).
    """
    stale = _owned_specs(folder, app_name, outputs) - set(outputs)
    changed: list[str] = []
    for rel, text in outputs.items():
        path = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            with open(path, encoding="utf-8") as fh:
                if fh.read() == text:
                    continue
        except FileNotFoundError:
            pass
        write_atomic(path, text.encode())
        changed.append(rel)
    for name in sorted(stale):
        os.unlink(os.path.join(folder, name))
    return changed, sorted(stale)


def check_outputs(folder: str, outputs: dict[str, str], app_name: str) -> str:
    """A unified diff between ``folder`` and what would be written; ``""`` when current."""
    chunks: list[str] = []
    for rel, text in outputs.items():
        path = os.path.join(folder, rel)
        try:
            with open(path, encoding="utf-8") as fh:
                current = fh.read()
        except FileNotFoundError:
            current = None
        if current == text:
            continue
        chunks.extend(difflib.unified_diff(
            [] if current is None else current.splitlines(keepends=True), text.splitlines(keepends=True),
            fromfile="/dev/null" if current is None else f"a/{rel}", tofile=f"b/{rel}",
        ))
    for name in sorted(_owned_specs(folder, app_name, outputs) - set(outputs)):
        with open(os.path.join(folder, name), encoding="utf-8") as fh:
            chunks.extend(difflib.unified_diff(fh.read().splitlines(keepends=True), [],
                                               fromfile=f"a/{name}", tofile="/dev/null"))
    return "".join(chunks)

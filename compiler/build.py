"""Writing compiled specs and image contexts to a folder: atomically, without stale files, or checking them.

Runs on the client. A spec file belongs to an app when its text carries the
app's ``modalc_app`` meta; only those are replaced or removed, so several
apps can share one GitOps folder. An image folder (``images/<hash>/``, a
Dockerfile and its build context) is removed only when this app's previous
specs used it and no spec in the folder, of this app or another, uses it now.
"""

from __future__ import annotations

import difflib
import os
import re

from agent_runtime.protocol import write_atomic

from .phases import HCL_SUFFIX, IMAGES_DIR, JSON_SUFFIX

Outputs = dict[str, str | bytes]
_IMAGE_REF = re.compile(r"modalc:([0-9a-f]{16})\b")


def _as_bytes(content: str | bytes) -> bytes:
    return content.encode() if isinstance(content, str) else content


def _specs(folder: str, app_name: str, outputs: Outputs) -> tuple[dict[str, str], dict[str, str]]:
    """(this app's spec files of the formats in ``outputs``, every other spec file): name → text."""
    suffixes = tuple(s for s in (HCL_SUFFIX, JSON_SUFFIX) if any(n.endswith(s) for n in outputs))
    if not os.path.isdir(folder):
        return {}, {}
    hcl_marker = re.compile(r'^\s*modalc_app\s*=\s*"' + re.escape(app_name) + r'"\s*$', re.M)
    json_marker = f'"modalc_app": "{app_name}"'
    owned: dict[str, str] = {}
    others: dict[str, str] = {}
    for name in os.listdir(folder):
        if not name.endswith((HCL_SUFFIX, JSON_SUFFIX)):
            continue
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError):
            continue
        if suffixes and name.endswith(suffixes) and (hcl_marker.search(text) or json_marker in text):
            owned[name] = text
        else:
            others[name] = text
    return owned, others


def _image_tags(texts: list[str | bytes]) -> set[str]:
    return {m for t in texts if isinstance(t, str) for m in _IMAGE_REF.findall(t)}


def _stale(folder: str, outputs: Outputs, app_name: str) -> tuple[list[str], list[str]]:
    """(this app's spec files no longer produced, files under image folders no longer used or produced)."""
    owned, others = _specs(folder, app_name, outputs)
    stale_specs = sorted(set(owned) - set(outputs))
    used = _image_tags(list(outputs.values())) | _image_tags(list(others.values()))
    produced_images = {rel.split("/")[1] for rel in outputs if rel.startswith(IMAGES_DIR + "/")}
    stale_files: list[str] = []
    for tag in sorted(_image_tags(list(owned.values())) - used - produced_images):
        image_dir = os.path.join(folder, IMAGES_DIR, tag)
        if os.path.isfile(os.path.join(image_dir, "Dockerfile")):
            stale_files += [f"{IMAGES_DIR}/{tag}/{rel}" for rel in _files_below(image_dir)]
    for tag in sorted(produced_images):
        # An image folder is named by its content: files in it that modalc no longer writes are stale.
        image_dir = os.path.join(folder, IMAGES_DIR, tag)
        stale_files += [rel for rel in (f"{IMAGES_DIR}/{tag}/{r}" for r in _files_below(image_dir))
                        if rel not in outputs]
    return stale_specs, stale_files


def _files_below(root: str) -> list[str]:
    out = []
    for here, _dirs, files in os.walk(root):
        out += [os.path.relpath(os.path.join(here, f), root).replace(os.sep, "/") for f in files]
    return sorted(out)


def _remove_empty_dirs(folder: str, rels: list[str]) -> None:
    dirs = {os.path.dirname(os.path.join(folder, rel)) for rel in rels}
    for d in sorted(dirs, key=len, reverse=True):
        while d.startswith(os.path.join(folder, IMAGES_DIR)) and d != os.path.join(folder, IMAGES_DIR):
            try:
                os.rmdir(d)
            except OSError:
                break
            d = os.path.dirname(d)


def write_outputs(folder: str, outputs: Outputs, app_name: str) -> tuple[list[str], list[str]]:
    """Write every output atomically; remove this app's specs and image files that are no longer produced.

    Returns (written or changed files, removed files).
    """
    stale_specs, stale_files = _stale(folder, outputs, app_name)
    changed: list[str] = []
    made: set[str] = set()
    for rel, content in outputs.items():
        path = os.path.join(folder, rel)
        data = _as_bytes(content)
        try:
            with open(path, "rb") as fh:
                if fh.read() == data:
                    continue
        except (FileNotFoundError, NotADirectoryError):
            pass
        parent = os.path.dirname(path)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        write_atomic(path, data)
        changed.append(rel)
    for rel in stale_specs + stale_files:
        os.unlink(os.path.join(folder, rel))
    _remove_empty_dirs(folder, stale_files)
    return changed, stale_specs + stale_files


def _diff(rel: str, current: bytes | None, new: bytes | None) -> list[str]:
    try:
        old_text = None if current is None else current.decode()
        new_text = None if new is None else new.decode()
    except UnicodeDecodeError:
        return [f"Binary files {'/dev/null' if current is None else 'a/' + rel} and "
                f"{'/dev/null' if new is None else 'b/' + rel} differ\n"]
    return list(difflib.unified_diff(
        [] if old_text is None else old_text.splitlines(keepends=True),
        [] if new_text is None else new_text.splitlines(keepends=True),
        fromfile="/dev/null" if current is None else f"a/{rel}", tofile="/dev/null" if new is None else f"b/{rel}",
    ))


def check_outputs(folder: str, outputs: Outputs, app_name: str) -> str:
    """A unified diff between ``folder`` and what would be written; ``""`` when current."""
    chunks: list[str] = []
    for rel, content in outputs.items():
        try:
            with open(os.path.join(folder, rel), "rb") as fh:
                current: bytes | None = fh.read()
        except (FileNotFoundError, NotADirectoryError):
            current = None
        data = _as_bytes(content)
        if current != data:
            chunks.extend(_diff(rel, current, data))
    stale_specs, stale_files = _stale(folder, outputs, app_name)
    for rel in stale_specs + stale_files:
        with open(os.path.join(folder, rel), "rb") as fh:
            chunks.extend(_diff(rel, fh.read(), None))
    return "".join(chunks)


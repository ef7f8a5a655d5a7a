"""``modal.Volume``'s file methods, against the directory the volume is mounted at.

Runs inside allocations and on the client; standard library only, loaded on
first use. On Nomad a volume is a host or CSI volume mounted into the task;
on the local backend it is a directory linked at each mount path. Either way
the files are at the mount path, so ``listdir``, ``read_file``,
``remove_file``, ``copy_files`` and ``batch_upload`` work on that path when
the volume is mounted where the call runs (a function that mounts it, or the
client during a local run), and raise a clear error otherwise.

Imports are absolute: ``import modal.volume`` loads this file a second time
under that name, and must share the SDK's classes.
"""

from __future__ import annotations

import os
import shutil
import sys
from enum import IntEnum

from agent_runtime.sdk._location import caller_location
from agent_runtime.sdk.exception import NotSupportedError
from agent_runtime.sdk.objects import Volume

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

__all__ = ["FileEntry", "FileEntryType", "Volume", "mount_path"]


class FileEntryType(IntEnum):
    """As ``modal.volume.FileEntryType`` (an int enum, so copies of this module compare equal)."""

    UNSPECIFIED = 0
    FILE = 1
    DIRECTORY = 2
    SYMLINK = 3
    FIFO = 4
    SOCKET = 5


class FileEntry:
    """One entry of ``Volume.listdir``: ``path`` relative to the volume root, ``type``, ``mtime``, ``size``."""

    __slots__ = ("mtime", "path", "size", "type")

    def __init__(self, path: str, type: FileEntryType, mtime: int, size: int) -> None:
        self.path, self.type, self.mtime, self.size = path, type, mtime, size

    def __repr__(self) -> str:
        return f"FileEntry(path={self.path!r}, type={self.type!r}, size={self.size})"


def _declared_paths(name: str) -> list[str]:
    """Every mount path where some loaded App mounts the volume ``name`` (App defaults, functions, classes)."""
    from agent_runtime.sdk.app import App

    paths: list[str] = []
    for module in list(sys.modules.values()):
        for value in list(getattr(module, "__dict__", {}).values()):
            if not isinstance(value, App):
                continue
            tables = [value.volumes]
            for obj in [*value.registered_functions.values(), *value.registered_classes.values(),
                        *getattr(value, "registered_servers", {}).values()]:
                tables.append(dict(getattr(obj, "options", {}).get("volumes") or {}))
            for table in tables:
                paths += [str(p) for p, v in table.items() if isinstance(v, Volume) and v.name == name]
    return paths


def mount_path(volume: Volume, method: str) -> str:
    """The directory where ``volume`` is mounted here, or a ``NotSupportedError`` saying how to reach it."""
    for path in _declared_paths(volume.name):
        if os.path.isdir(path):
            return path
    raise NotSupportedError(
        f"Volume({volume.name!r}).{method}() needs the volume mounted where it runs: modalc volumes are "
        "directories on the Nomad clients, not a cloud API",
        hint="call it inside a function that mounts the volume (volumes={'/path': vol}), or use the "
        "`modalc volume` commands from the client",
        location=caller_location(),
    )


def _inside(root: str, path: str) -> str:
    full = os.path.normpath(os.path.join(root, path.lstrip("/")))
    if full != root and not full.startswith(root.rstrip("/") + "/"):
        raise ValueError(f"{path!r} is outside the volume")
    return full


def _entry(root: str, full: str) -> FileEntry:
    st = os.lstat(full)
    kind = (FileEntryType.SYMLINK if os.path.islink(full) else FileEntryType.DIRECTORY if os.path.isdir(full)
            else FileEntryType.FILE)
    return FileEntry(os.path.relpath(full, root).replace(os.sep, "/"), kind, int(st.st_mtime), st.st_size)


def iterdir(volume: Volume, path: str, recursive: bool) -> Iterator[FileEntry]:
    """The entries under ``path`` (checked now; listed as the iterator is consumed)."""
    root = os.path.realpath(mount_path(volume, "iterdir"))
    top = _inside(root, path)
    if os.path.isfile(top):
        return iter([_entry(root, top)])
    if not os.path.isdir(top):
        raise FileNotFoundError(f"{path!r} does not exist in volume {volume.name!r}")
    return _walk(root, top, recursive)


def _walk(root: str, top: str, recursive: bool) -> Iterator[FileEntry]:
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in [*dirnames, *sorted(filenames)]:
            yield _entry(root, os.path.join(dirpath, name))
        if not recursive:
            break


def read_file(volume: Volume, path: str) -> Iterator[bytes]:
    """The file's bytes in chunks of 1 MiB (the file is checked now)."""
    full = _inside(os.path.realpath(mount_path(volume, "read_file")), path)
    if not os.path.isfile(full):
        raise FileNotFoundError(f"{path!r} does not exist in volume {volume.name!r}")
    return _chunks(full)


def _chunks(full: str) -> Iterator[bytes]:
    with open(full, "rb") as fh:
        while chunk := fh.read(1 << 20):
            yield chunk


def remove_file(volume: Volume, path: str, recursive: bool) -> None:
    full = _inside(os.path.realpath(mount_path(volume, "remove_file")), path)
    if os.path.isdir(full) and not os.path.islink(full):
        if not recursive:
            raise IsADirectoryError(f"{path!r} is a directory; pass recursive=True")
        shutil.rmtree(full)
    elif os.path.lexists(full):
        os.remove(full)
    else:
        raise FileNotFoundError(f"{path!r} does not exist in volume {volume.name!r}")


def copy_files(volume: Volume, src_paths: list[str], dst_path: str, recursive: bool) -> None:
    root = os.path.realpath(mount_path(volume, "copy_files"))
    dst = _inside(root, dst_path)
    for src_path in src_paths:
        src = _inside(root, src_path)
        target = os.path.join(dst, os.path.basename(src)) if os.path.isdir(dst) else dst
        if os.path.isdir(src):
            if not recursive:
                raise IsADirectoryError(f"{src_path!r} is a directory; pass recursive=True")
            shutil.copytree(src, target, dirs_exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target) or root, exist_ok=True)
            shutil.copy2(src, target)


class BatchUpload:
    """``with vol.batch_upload(force=False) as batch: batch.put_file(...); batch.put_directory(...)``."""

    def __init__(self, volume: Volume, force: bool) -> None:
        self.root = os.path.realpath(mount_path(volume, "batch_upload"))
        self.volume, self.force = volume, force
        self._pending: list[tuple[Any, str]] = []

    def __enter__(self) -> BatchUpload:
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            for source, dest in self._pending:
                self._write(source, dest)

    def put_file(self, local_file: Any, remote_path: str, mode: int | None = None) -> None:
        self._pending.append((local_file, remote_path))

    def put_directory(self, local_path: str, remote_path: str, recursive: bool = True) -> None:
        for dirpath, _dirnames, filenames in os.walk(local_path):
            for name in filenames:
                src = os.path.join(dirpath, name)
                rel = os.path.relpath(src, local_path).replace(os.sep, "/")
                self._pending.append((src, remote_path.rstrip("/") + "/" + rel))
            if not recursive:
                break

    def _write(self, source: Any, remote_path: str) -> None:
        dest = _inside(self.root, remote_path)
        if os.path.exists(dest) and not self.force:
            raise FileExistsError(f"{remote_path!r} already exists in volume {self.volume.name!r}; pass force=True")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if hasattr(source, "read"):
            with open(dest, "wb") as fh:
                shutil.copyfileobj(source, fh)
        else:
            shutil.copyfile(os.fspath(source), dest)

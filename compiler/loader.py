"""Imports a user's script with ``modal`` bound to modalc's compat SDK.

Runs on the client. Turns every way an import can fail into a ``UserError``
that points at the user's file and line: syntax errors, declaration errors
raised by the SDK, and exceptions raised by the user's own code (shown with
the traceback starting in the user's frame).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from agent_runtime.sdk.app import App
from agent_runtime.sdk.binding import bind_modal
from agent_runtime.sdk.exception import InvalidError

from .errors import UserError, short_path
from .refs import ImportRef


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceFile:
    """A file of the user's code shipped with each job: ``path`` relative to ``root``."""

    path: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedScript:
    script_path: str  # absolute path of the file imported
    display_name: str  # as the user wrote it
    root: str  # the folder put on sys.path; shipped code is relative to it
    module_name: str
    module: ModuleType
    apps: dict[str, App]  # module variable -> App
    sources: tuple[SourceFile, ...]
    warnings: tuple[str, ...]


_OWN_PACKAGES = frozenset({"compiler", "agent_runtime", "templates", "modal"})


def _purge_modules_under(root: str) -> None:
    """Forget modules previously imported from ``root``, so a reload sees current files."""
    prefix = root + os.sep
    for name, mod in list(sys.modules.items()):
        if name.split(".")[0] in _OWN_PACKAGES:
            continue
        file = getattr(mod, "__file__", None)
        if file and os.path.abspath(file).startswith(prefix):
            del sys.modules[name]


def _user_frames(tb: Any, root: str) -> list[traceback.FrameSummary]:
    frames = traceback.extract_tb(tb)
    prefix = root + os.sep
    for i, frame in enumerate(frames):
        if os.path.abspath(frame.filename).startswith(prefix):
            return frames[i:]
    return frames


def _relative_import_hint(script: str, root: str) -> str:
    """`modalc run -m pkg.mod`, for a script inside a package run as a file (as `modal run` has it)."""
    parts = [os.path.splitext(os.path.basename(script))[0]]
    folder = os.path.dirname(script)
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        parts.insert(0, os.path.basename(folder))
        folder = os.path.dirname(folder)
    if len(parts) == 1:
        return "a script run by its path is a top-level module; relative imports need a package and `-m`"
    return (f"a script run by its path is a top-level module, as with `modal run`; run it as a module "
            f"from {short_path(folder) or '.'}: `modalc run -m {'.'.join(parts)}`")


def _import_error(exc: BaseException, script: str, root: str, ref: ImportRef | None = None) -> UserError:
    if (isinstance(exc, ImportError) and ref is not None and not ref.use_module_mode
            and "no known parent package" in str(exc)):
        frames = _user_frames(exc.__traceback__, root)
        location = (frames[-1].filename, frames[-1].lineno or 0) if frames else (script, 0)
        return UserError(f"relative import in {short_path(script)}: {exc}", location=location,
                         hint=_relative_import_hint(script, root))
    if isinstance(exc, SyntaxError) and exc.filename:
        line = (exc.text or "").rstrip("\n")
        caret = " " * max((exc.offset or 1) - 1 - (len(line) - len(line.lstrip())), 0) + "^"
        detail = f"    {line.strip()}\n    {caret}" if line else ""
        return UserError(f"syntax error: {exc.msg}", location=(exc.filename, exc.lineno or 0), detail=detail,
                         hint="fix the syntax error; the script must import cleanly with Python")
    if isinstance(exc, InvalidError):
        return UserError(exc.message, hint=exc.hint, location=exc.location)
    frames = _user_frames(exc.__traceback__, root)
    location = (frames[-1].filename, frames[-1].lineno or 0) if frames else (script, 0)
    detail = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
    detail += "".join(traceback.format_exception_only(type(exc), exc))
    return UserError(
        f"{type(exc).__name__} raised while importing {short_path(script)}: {exc}",
        location=location,
        detail=detail,
        hint="the script's top level runs when modalc loads it; guard client-only code with "
        "`if modal.is_local():` or move imports into `with image.imports():`",
    )


def _collect_sources(root: str, skip: frozenset[str]) -> tuple[SourceFile, ...]:
    prefix = root + os.sep
    files: dict[str, str] = {}
    for name, mod in list(sys.modules.items()):
        file = getattr(mod, "__file__", None)
        if not file or name in skip or name.split(".")[0] in _OWN_PACKAGES:
            continue
        path = os.path.abspath(file)
        if path.startswith(prefix) and path.endswith(".py"):
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if "site-packages" in rel.split("/"):
                continue
            with open(path, encoding="utf-8") as fh:
                files[rel] = fh.read()
    return tuple(SourceFile(path=p, text=files[p]) for p in sorted(files))


def load(ref: ImportRef) -> LoadedScript:
    """Import the script or module named by ``ref``; return it with its Apps."""
    bind_modal()
    if ref.use_module_mode:
        module_name = ref.file_or_module
        root = os.path.abspath(os.getcwd())
        # As `modal run -m` does (modal/cli/import_refs.py): the working folder is importable, also when the
        # console script's own folder is sys.path[0].
        if root not in sys.path and "" not in sys.path:
            sys.path.insert(0, root)
        spec = None
        try:
            spec = importlib.util.find_spec(module_name)
        except (ImportError, ValueError):
            spec = None
        if spec is None or spec.origin is None:
            raise UserError(f"no module named {module_name!r}",
                            hint="run from the folder that contains the package, or check the module path")
        script_path = os.path.abspath(spec.origin)
        top = module_name.split(".")[0]
        top_spec = importlib.util.find_spec(top)
        if top_spec and top_spec.submodule_search_locations:
            root = os.path.dirname(os.path.abspath(next(iter(top_spec.submodule_search_locations))))
        else:
            root = os.path.dirname(script_path)
    else:
        script_path = os.path.abspath(ref.file_or_module)
        if not os.path.isfile(script_path):
            raise UserError(f"no such file: {ref.file_or_module}",
                            hint="give the path of a Python script that defines a modal.App")
        root = os.path.dirname(script_path)
        module_name = os.path.splitext(os.path.basename(script_path))[0]
        # As `modal run` does (modal/cli/import_refs.py, import_file_or_module): a script is imported by its
        # file name, dashes and all (`long-training.py` is module `long-training`), from its own folder;
        # only a further period is refused, since the importer would read it as a package path.
        if "." in module_name:
            raise UserError(f"{ref.file_or_module}: the file name must not contain a period besides `.py`",
                            hint="rename the script, e.g. `train_v2.py` instead of `train.v2.py`")

    _purge_modules_under(root)
    if root not in sys.path:
        sys.path.insert(0, root)
    before = frozenset(sys.modules)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if ref.use_module_mode:
                module = importlib.import_module(module_name)
            else:
                spec = importlib.util.spec_from_file_location(module_name, script_path)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:
            sys.modules.pop(module_name, None)
            raise _import_error(exc, script_path, root, ref) from None
    messages = tuple(
        f"{short_path(w.filename)}:{w.lineno}: {w.category.__name__}: {w.message}"
        for w in caught
        if os.path.abspath(w.filename).startswith(root + os.sep)
    )
    apps = {name: value for name, value in vars(module).items() if isinstance(value, App)}
    if not apps:
        raise UserError("the script defines no modal.App at its top level",
                        location=(script_path, 0),
                        hint="create one at the top level: `app = modal.App(\"my-app\")`")
    skip = before - {module_name}
    return LoadedScript(
        script_path=script_path,
        display_name=ref.file_or_module,
        root=root,
        module_name=module_name,
        module=module,
        apps=apps,
        sources=_collect_sources(root, frozenset(skip)),
        warnings=messages,
    )

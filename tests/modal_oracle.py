"""The real ``modal`` package read as data: its public names, members and their keywords.

Runs on the client, in tests only. The wheel of the version pinned in
pyproject's ``oracle`` extra is fetched with ``pip download --no-deps``
(cached in ``$MODALC_ORACLE_DIR``, default ``~/.cache/modalc-oracle``) and
read with ``ast``: the real package is never imported, so nothing here can
shadow the compat SDK named ``modal``. ``tests/test_modal_oracle.py`` holds
the walk against ``compiler/parity.py`` and ``compiler/parity_members.py``
and the compat SDK. ``PYTHONPATH=$PWD python3 -m tests.modal_oracle`` prints
the counts: real names and members walked, and how many work / become a
Nomad equivalent / are accepted without effect / are refused.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class Missing(Exception):
    """The oracle wheel could not be fetched."""


def pin() -> str:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (found,) = [req for req in extras["oracle"] if req.startswith("modal==")]
    return str(found)


def wheel() -> Path:
    spec = pin()
    folder = Path(os.environ.get("MODALC_ORACLE_DIR") or Path.home() / ".cache" / "modalc-oracle") / spec
    version = spec.split("==")[1]
    found = sorted(folder.glob(f"modal-{version}-*.whl"))
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        got = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                              "-d", str(folder), spec], capture_output=True, text=True, timeout=300)
        found = sorted(folder.glob(f"modal-{version}-*.whl"))
        if not found:
            raise Missing(f"could not fetch the oracle {spec}: {got.stderr.strip()[-500:]}")
    return found[0]


_TREES: dict[str, ast.Module] = {}


def tree(path: str) -> ast.Module:
    """The parsed source of ``path`` (e.g. ``modal/app.py``) in the oracle wheel."""
    if path not in _TREES:
        with zipfile.ZipFile(wheel()) as whl:
            _TREES[path] = ast.parse(whl.read(path).decode())
    return _TREES[path]


def real_all() -> list[str]:
    for node in ast.walk(tree("modal/__init__.py")):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            names = ast.literal_eval(node.value)
            assert isinstance(names, list) and len(names) > 30
            return [str(n) for n in names]
    raise AssertionError("the oracle's modal/__init__.py has no __all__")


def class_def(path: str, name: str) -> ast.ClassDef:
    (cls,) = [node for node in tree(path).body if isinstance(node, ast.ClassDef) and node.name == name]
    return cls


class Expr(str):
    """A default that is not a literal (``AUTO_DOCKERIGNORE``): only its source text is known."""


EMPTY = Expr("<required>")


@dataclass(frozen=True)
class Param:
    name: str
    keyword_only: bool
    index: int  # its position among the positional parameters (-1: keyword-only)
    default: Any  # a literal value, an Expr, or EMPTY
    positional_only: bool = False  # before a ``/``: its name is not part of the API


@dataclass(frozen=True)
class Member:
    key: str  # "Image.pip_install", "Retries.__init__", "modal.method"
    kind: str  # "method" | "property" | "constructor" | "decorator"
    params: tuple[Param, ...]


def _default(node: ast.expr | None) -> Any:
    if node is None:
        return EMPTY
    try:
        return ast.literal_eval(node)
    except ValueError:
        pass
    if not any(isinstance(n, ast.Name | ast.Attribute | ast.Call) for n in ast.walk(node)):
        return eval(compile(ast.Expression(node), "<default>", "eval"))  # arithmetic of literals: 60 * 60
    return Expr(ast.unparse(node))


def _params(args: ast.arguments, drop_first: bool) -> tuple[Param, ...]:
    positional = [*args.posonlyargs, *args.args][1 if drop_first else 0:]
    only = {a.arg for a in args.posonlyargs}
    pos_defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    out = [Param(a.arg, False, i, _default(d), a.arg in only)
           for i, (a, d) in enumerate(zip(positional, pos_defaults, strict=True))]
    out += [Param(a.arg, True, -1, _default(d)) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    return tuple(p for p in out if not p.name.startswith("_"))


def _decorators(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    return {ast.unparse(d).split("(")[0].rsplit(".", 1)[-1] for d in fn.decorator_list}


def _module_functions(path: str) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {n.name: n for n in tree(path).body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def class_members(owner: str, path: str, name: str) -> list[Member]:
    """The public methods and properties of a real class: its own body's, then those it inherits from
    ``_Object`` (``hydrate``, ``object_id`` …) that it does not override."""
    cls = class_def(path, name)
    out = _body_members(owner, cls)
    if any(ast.unparse(b) == "_Object" for b in cls.bases):
        own = {m.key for m in out}
        out += [m for m in _body_members(owner, class_def("modal/_object.py", "_Object")) if m.key not in own]
    return out


def _body_members(owner: str, cls: ast.ClassDef) -> list[Member]:
    out: list[Member] = []
    for node in cls.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            decorators = _decorators(node)
            if node.name.startswith("_") or decorators & {"overload", "setter", "deleter"}:
                continue
            if decorators & {"property", "classproperty"}:
                out.append(Member(f"{owner}.{node.name}", "property", ()))
            else:
                out.append(Member(f"{owner}.{node.name}", "method",
                                  _params(node.args, drop_first="staticmethod" not in decorators)))
        elif (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
              and isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") == "MethodWithAio"):
            # ``map = MethodWithAio(_map_sync, _map_async, synchronizer)``: the sync twin is in parallel_map.py
            sync = node.value.args[0]
            assert isinstance(sync, ast.Name), ast.unparse(node)
            fn = _module_functions("modal/parallel_map.py")[sync.id]
            out.append(Member(f"{owner}.{node.targets[0].id}", "method", _params(fn.args, drop_first=True)))
    return out


def constructor(owner: str, path: str, name: str) -> Member:
    """A class's ``__init__`` keywords, or a dataclass's fields."""
    cls = class_def(path, name)
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            return Member(f"{owner}.__init__", "constructor", _params(node.args, drop_first=True))
    fields = [n for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
    return Member(f"{owner}.__init__", "constructor",
                  tuple(Param(f.target.id, False, i, _default(f.value))  # type: ignore[union-attr]
                        for i, f in enumerate(fields) if not f.target.id.startswith("_")))  # type: ignore[union-attr]


DECORATORS = {  # modal.<name> -> (file, function) in the oracle
    "method": ("modal/_partial_function.py", "_method"),
    "enter": ("modal/_partial_function.py", "_enter"),
    "exit": ("modal/_partial_function.py", "_exit"),
    "batched": ("modal/_partial_function.py", "_batched"),
    "concurrent": ("modal/_partial_function.py", "_concurrent"),
    "fastapi_endpoint": ("modal/_partial_function.py", "_fastapi_endpoint"),
    "web_endpoint": ("modal/_partial_function.py", "_web_endpoint"),
    "asgi_app": ("modal/_partial_function.py", "_asgi_app"),
    "wsgi_app": ("modal/_partial_function.py", "_wsgi_app"),
    "web_server": ("modal/_partial_function.py", "_web_server"),
    "parameter": ("modal/cls.py", "parameter"),
}

CLASSES = {  # compat SDK name -> (file, class) in the oracle, walked for public methods
    "Image": ("modal/_image.py", "_Image"),
    "Secret": ("modal/secret.py", "_Secret"),
    "Volume": ("modal/volume.py", "_Volume"),
    "Function": ("modal/_functions.py", "_Function"),
    "FunctionCall": ("modal/_functions.py", "_FunctionCall"),
    "Cls": ("modal/cls.py", "_Cls"),
}

CONSTRUCTORS = {  # compat SDK name -> (file, class) in the oracle, walked for constructor keywords
    "CloudBucketMount": ("modal/cloud_bucket_mount.py", "_CloudBucketMount"),
    "Retries": ("modal/retries.py", "Retries"),
    "Cron": ("modal/schedule.py", "Cron"),
    "Period": ("modal/schedule.py", "Period"),
}


def members() -> list[Member]:
    """Every member of the real package walked here, in a stable order."""
    out: list[Member] = []
    for owner, (path, name) in CLASSES.items():
        out += class_members(owner, path, name)
    for owner, (path, name) in CONSTRUCTORS.items():
        out.append(constructor(owner, path, name))
    for name, (path, fn) in DECORATORS.items():
        out.append(Member(f"modal.{name}", "decorator", _params(_module_functions(path)[fn].args, drop_first=False)))
    return out


def app_members() -> list[Member]:
    """Real ``App``'s constructor and public methods (their statuses: ``parity.APP_MEMBERS``, else works)."""
    return [constructor("App", "modal/app.py", "_App"), *class_members("App", "modal/app.py", "_App")]


def app_methods() -> list[str]:
    return sorted(n.name for n in class_def("modal/app.py", "_App").body
                  if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and not n.name.startswith("_"))


def summary() -> str:
    """The counts, as ``python3 -m tests.modal_oracle`` prints them."""
    from compiler import parity, parity_members

    names, apps, walked = real_all(), app_methods(), members()
    lines = [f"{pin()}: walked {len(names)} public names, {len(apps)} App methods, {len(walked)} members of "
             f"{len(CLASSES) + len(CONSTRUCTORS)} classes and {len(DECORATORS)} decorators "
             f"({sum(len(m.params) for m in walked)} keywords)"]
    keywords = dict.fromkeys(parity.STATUSES, 0)  # of the members not refused: a row's status, else works
    # @app.function/@app.cls/@app.server take ~40 keywords each as **options; the build notes those it ignores
    # (compiler/lower/features.py): they are left out here.
    for m in [*walked, *(m for m in app_members() if m.key not in ("App.function", "App.cls", "App.server"))]:
        status = parity.APP_MEMBERS.get(m.key.removeprefix("App."), (parity.WORKS, ""))[0]
        if parity_members.MEMBERS.get(m.key, (status, ""))[0] != parity.REFUSED:
            rows = parity_members.KEYWORDS.get(m.key, {})
            for p in m.params:
                keywords[rows.get(p.name, (parity.WORKS, ""))[0]] += 1
    table = [("modal.__all__", parity.counts()), ("App methods", parity_members.app_counts(apps)),
             ("members", parity_members.counts()), ("their keywords*", keywords)]
    for label, c in table:
        lines.append(f"  {label:<16} {sum(c.values()):>4}: " + ", ".join(f"{c[s]} {s}" for s in parity.STATUSES))
    total = {s: sum(c[s] for _, c in table[:3]) for s in parity.STATUSES}
    lines.append(f"  {'names + members':<16} {sum(total.values()):>4}: "
                 + ", ".join(f"{total[s]} {s}" for s in parity.STATUSES))
    lines.append("  * of the members not refused, App's included but for function/cls/server (their options: "
                 "compiler/lower/features.py); a keyword without a row works as in real Modal")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary())

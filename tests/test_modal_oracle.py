"""The real ``modal`` package as the oracle: every public name it exports is implemented or mapped.

The wheel of the version pinned in pyproject's ``oracle`` extra is fetched
with ``pip download --no-deps`` (cached in ``$MODALC_ORACLE_DIR``, default
``~/.cache/modalc-oracle``) and read with ``ast``: the real package is never
imported, so nothing here can shadow the compat SDK named ``modal``. Each
name of its ``modal.__all__`` needs a row in ``compiler/parity.py``; a row
that says it works needs the compat SDK to have it; ``docs/mapping.md``
shows the table as rendered. The SDK never imports the real package.
"""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compiler import parity, parity_members

from . import modal_oracle as oracle

ROOT = Path(__file__).resolve().parents[1]
_pin = oracle.pin


@pytest.fixture(scope="module")
def real_all() -> list[str]:
    try:
        return oracle.real_all()
    except oracle.Missing as exc:
        pytest.fail(str(exc))


def test_every_public_name_of_real_modal_is_mapped(real_all: list[str]) -> None:
    unmapped = sorted(set(real_all) - set(parity.TOP_LEVEL))
    assert not unmapped, f"names of {_pin()}'s modal.__all__ with no row in compiler/parity.py: {unmapped}"
    stale = sorted(set(parity.TOP_LEVEL) - set(real_all))
    assert not stale, f"rows of compiler/parity.py that {_pin()} does not export: {stale}"


@pytest.fixture(scope="module")
def real_app() -> ast.ClassDef:
    return oracle.class_def("modal/app.py", "_App")


def _methods(cls: ast.ClassDef) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {f.name: f for f in cls.body if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
            and not f.name.startswith("_")}


def test_every_public_method_of_real_app_is_implemented_or_mapped(real_app: ast.ClassDef) -> None:
    from agent_runtime.sdk.app import App

    app = App("oracle")
    missing = sorted(n for n in _methods(real_app) if not hasattr(app, n) and n not in parity.APP_MEMBERS)
    assert not missing, f"methods of {_pin()}'s App neither in modalc's App nor in parity.APP_MEMBERS: {missing}"
    stale = sorted(n for n in parity.APP_MEMBERS if n not in _methods(real_app) or hasattr(app, n))
    assert not stale, f"parity.APP_MEMBERS rows that are implemented or not in {_pin()}: {stale}"


@pytest.mark.parametrize("method, known", [("function", "FUNCTION_KEYWORDS"), ("cls", "CLS_KEYWORDS")])
def test_every_keyword_of_real_app_decorators_is_known(real_app: ast.ClassDef, method: str, known: str) -> None:
    from agent_runtime.sdk import _options

    real = [a.arg for a in _methods(real_app)[method].args.kwonlyargs if not a.arg.startswith("_")]
    unknown = sorted(set(real) - getattr(_options, known))
    assert not unknown, f"keywords of {_pin()}'s App.{method} the compat SDK does not know: {unknown}"


def test_local_entrypoint_keywords_and_defaults_match(real_app: ast.ClassDef) -> None:
    import inspect

    from agent_runtime.sdk.app import App

    args = _methods(real_app)["local_entrypoint"].args
    real = {a.arg: ast.literal_eval(d) if d is not None else inspect.Parameter.empty
            for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)}
    mine = {k: p.default for k, p in inspect.signature(App.local_entrypoint).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert mine == real


def test_server_keywords_and_defaults_match(real_app: ast.ClassDef) -> None:
    """``App.server`` (Modal 1.6) takes exactly the real keywords, in order, with the real defaults."""
    import inspect

    from agent_runtime.sdk.app import SERVER_DEFAULTS, App

    args = _methods(real_app)["server"].args
    real = [(a.arg, ast.literal_eval(d) if d is not None else inspect.Parameter.empty)
            for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    mine = [(k, p.default) for k, p in inspect.signature(App.server).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert mine == real
    assert list(SERVER_DEFAULTS.items()) == real


def test_a_name_mapped_as_working_is_in_the_compat_sdk() -> None:
    from agent_runtime.sdk.binding import bind_modal
    from agent_runtime.sdk.cloud import CloudOnly

    sdk = bind_modal()
    wrong = []
    for name, (status, note) in parity.TOP_LEVEL.items():
        assert status in (parity.WORKS, parity.BECOMES, parity.NO_EFFECT, parity.REFUSED) and note, name
        if status == parity.REFUSED:
            continue
        value = getattr(sdk, name, None)
        if value is None or (isinstance(value, type) and issubclass(value, CloudOnly)):
            wrong.append(name)
    assert not wrong, f"compiler/parity.py says these work, but the compat SDK lacks them or refuses them: {wrong}"


def test_docs_show_the_table_as_rendered() -> None:
    text = (ROOT / "docs" / "mapping.md").read_text()
    start, end = text.index(parity.BEGIN), text.index(parity.END) + len(parity.END)
    assert text[start:end] == parity.render_markdown(), (
        "docs/mapping.md's parity table is stale: paste compiler.parity.render_markdown()")


def test_counts_add_up() -> None:
    c = parity.counts()
    assert sum(c.values()) == len(parity.TOP_LEVEL) and all(v > 0 for v in c.values())


def test_the_sdk_never_imports_the_real_package(tmp_path: Path) -> None:
    """A fake real ``modal`` first on the path: binding the SDK and running an app must not import it."""
    fake = tmp_path / "site" / "modal"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise RuntimeError('the real modal package was imported')\n")
    code = ("import sys\n"
            f"sys.path.insert(0, {str(tmp_path / 'site')!r})\n"
            "from agent_runtime.sdk.binding import bind_modal\n"
            "m = bind_modal()\n"
            "import modal\n"
            "assert modal is m, modal\n"
            "app = modal.App('x')\n"
            "@app.function(image=modal.Image.debian_slim().pip_install('x'), schedule=modal.Period(seconds=5))\n"
            "def f():\n    return 1\n"
            "modal.Dict, modal.experimental, modal.forward\n"
            "print('ok', modal.__version__)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ok 1.0.0+modalc" in result.stdout


# -- members: methods, constructors and decorators, with their keywords --------------------------

# Members or "member.keyword"s other branches are implementing: their rows say what they will be;
# the test tolerates only these failing. The lead empties it after merging (then they must pass).
PENDING: set[str] = set()

_KIND = inspect.Parameter
_ABSENT = object()
# Members whose compat-SDK twin takes ``**options`` and checks their names against a set.
_CHECKED_KWARGS = {"Cls.with_options": "CLS_KEYWORDS", "App.function": "FUNCTION_KEYWORDS", "App.cls": "CLS_KEYWORDS"}


@pytest.fixture(scope="module")
def real_members() -> list[oracle.Member]:
    try:
        return oracle.members()
    except oracle.Missing as exc:
        pytest.fail(str(exc))


def _sdk_owners() -> dict[str, object]:
    from agent_runtime.sdk import cls, objects
    from agent_runtime.sdk.app import App
    from agent_runtime.sdk.binding import bind_modal
    from agent_runtime.sdk.functions import Function, FunctionCall
    from agent_runtime.sdk.image import Image

    here = ("<oracle>", 0)
    return {"Image": Image(), "Secret": objects.Secret("name", name="s"), "Volume": objects.Volume("v"),
            "Function": Function(app=None, tag="f", raw_f=None, options={}, location=here),
            "FunctionCall": FunctionCall("fc-x"),
            "Cls": cls.Cls(app=None, user_cls=None, tag="C", options={}, location=here),
            "CloudBucketMount": objects.CloudBucketMount, "Retries": objects.Retries, "Cron": objects.Cron,
            "Period": objects.Period, "modal": bind_modal(), "App": App("oracle"), "App()": App}


def _pending(failure: str, among: str | None = None) -> bool:
    """A failure of a PENDING member or member.keyword (the failure names ``member[.keyword]: ...``)."""
    where = failure.split(":")[0].split(" ")[0]
    return any(where == p or where.startswith(p + ".") for p in (PENDING if among is None else {among}))


def _same_default(real: object, mine: object) -> bool:
    """Equal defaults; a real ``[]`` matches a ``()`` and a real ``{}`` a ``None`` (ruff's B006 keeps mutable
    defaults out of the SDK); a real default that is not a literal only needs some default."""
    if mine is _KIND.empty:
        return False
    if isinstance(real, oracle.Expr):
        return True
    if isinstance(real, list | tuple):
        return isinstance(mine, list | tuple) and tuple(mine) == tuple(real)
    if isinstance(real, dict) and not real:
        return mine is None or mine == {}
    numbers = isinstance(real, int | float) and isinstance(mine, int | float)
    same_type = type(real) is type(mine) or (numbers and not isinstance(real, bool) and not isinstance(mine, bool))
    return same_type and real == mine


def _resolve(owners: dict[str, object], member: oracle.Member) -> tuple[object, str | None]:
    """The compat SDK's twin of a real member (None if absent) and, if it is not usable as one, why."""
    from agent_runtime.sdk.functions import _WithAio

    owner, _, name = member.key.partition(".")
    obj = owners[owner]
    if name == "__init__":
        return owners.get(f"{owner}()", obj), None
    static = inspect.getattr_static(obj, name, _ABSENT)
    if static is _ABSENT:
        return None, None
    if member.kind == "property":
        return name, None  # present (its value may be None)
    target = getattr(obj, name)
    if isinstance(target, _WithAio):
        target = target._sync
    if not callable(target):
        return target, f"{member.key} is a method in real Modal, not callable in the compat SDK"
    return target, None


def _mismatches(member: oracle.Member, target: object) -> list[str]:
    from agent_runtime.sdk import _options

    rows = parity_members.KEYWORDS.get(member.key, {})
    params = list(inspect.signature(target).parameters.values())  # type: ignore[arg-type]
    positional = [p.name for p in params if p.kind in (_KIND.POSITIONAL_ONLY, _KIND.POSITIONAL_OR_KEYWORD)]
    named = {p.name: p for p in params if p.kind not in (_KIND.VAR_POSITIONAL, _KIND.VAR_KEYWORD)}
    var_keyword = any(p.kind is _KIND.VAR_KEYWORD for p in params)
    checked = getattr(_options, _CHECKED_KWARGS.get(member.key, ""), frozenset())
    out: list[str] = []
    real_names = {p.name for p in member.params}
    for real in member.params:
        where = f"{member.key}.{real.name}"
        row = rows.get(real.name)
        if row is not None and row[0] == parity.REFUSED:
            continue
        mine = named.get(real.name)
        if real.positional_only:  # only its position counts
            mine = next((p for p in params if p.kind in (_KIND.POSITIONAL_ONLY, _KIND.POSITIONAL_OR_KEYWORD)
                         and params.index(p) == real.index), None)
            real_names.add(getattr(mine, "name", ""))
        if mine is None:  # only **options may take it: then a row (or the checked names) must say so
            if not (var_keyword and (row is not None or real.name in checked)):
                out.append(f"{where}: missing (real Modal takes `{real.name}=`)")
            continue
        if not real.keyword_only and not real.positional_only and positional[real.index:real.index + 1] != [real.name]:
            out.append(f"{where}: positional #{real.index} in real Modal, not here ({positional})")
        if real.keyword_only and mine.kind is _KIND.POSITIONAL_ONLY:
            out.append(f"{where}: keyword-only in real Modal, positional-only here")
        if real.default is not oracle.EMPTY and not _same_default(real.default, mine.default):
            out.append(f"{where}: defaults to {real.default!r} in real Modal, {mine.default!r} here")
    for p in named.values():
        if p.default is _KIND.empty and p.name not in real_names and not p.name.startswith("_"):
            out.append(f"{member.key}: requires `{p.name}`, which real Modal does not take")
    return out


def test_every_member_of_real_modal_has_a_row(real_members: list[oracle.Member]) -> None:
    keys = [m.key for m in real_members]
    assert len(keys) == len(set(keys))
    unmapped = sorted(set(keys) - set(parity_members.MEMBERS))
    assert not unmapped, f"members of {_pin()} with no row in compiler/parity_members.py MEMBERS: {unmapped}"
    stale = sorted(set(parity_members.MEMBERS) - set(keys))
    assert not stale, f"MEMBERS rows of compiler/parity_members.py naming no member of {_pin()}: {stale}"
    by_key = {m.key: {p.name for p in [*m.params]} for m in [*real_members, *oracle.app_members()]}
    stale_kw = sorted(f"{k}.{kw}" for k, rows in parity_members.KEYWORDS.items() for kw in rows
                      if kw not in by_key.get(k, set()))
    assert not stale_kw, f"KEYWORDS rows of compiler/parity_members.py naming no keyword of {_pin()}: {stale_kw}"
    for status, note in [*parity_members.MEMBERS.values(),
                         *(r for rows in parity_members.KEYWORDS.values() for r in rows.values())]:
        assert status in parity.STATUSES and note


def test_every_member_not_refused_is_in_the_compat_sdk_with_real_keywords(
        real_members: list[oracle.Member]) -> None:
    """Same names, positions and defaults as real Modal, unless compiler/parity_members.py KEYWORDS says."""
    owners = _sdk_owners()
    wrong: list[str] = []
    for member in real_members:
        if parity_members.MEMBERS[member.key][0] == parity.REFUSED:
            continue
        target, why = _resolve(owners, member)
        if target is None:
            wrong.append(f"{member.key}: missing from the compat SDK")
        elif why is not None:
            wrong.append(why)
        elif member.kind != "property":
            wrong += _mismatches(member, target)
    pending = {w for w in wrong if _pending(w)}
    assert not sorted(set(wrong) - pending), (
        "members of real Modal the compat SDK lacks or takes differently (fix the SDK, or give them a row in "
        "compiler/parity_members.py):\n  " + "\n  ".join(sorted(set(wrong) - pending)))
    done = sorted(p for p in PENDING if not p.startswith("App.") and not any(_pending(w, p) for w in pending))
    assert not done, f"PENDING entries that now pass: remove them from tests/test_modal_oracle.py: {done}"


def test_member_counts_add_up(real_members: list[oracle.Member], capsys: pytest.CaptureFixture[str]) -> None:
    c = parity_members.counts()
    assert sum(c.values()) == len(real_members) and all(v > 0 for v in c.values())
    with capsys.disabled():
        print("\n" + oracle.summary())


def test_every_method_of_real_app_not_refused_takes_real_keywords() -> None:
    """App's methods (and constructor) with real Modal's keywords: ``@app.function``/``@app.cls`` take theirs as
    ``**options``, checked by name (``_options``); refused methods are ``parity.APP_MEMBERS``'s rows."""
    owners = _sdk_owners()
    wrong: list[str] = []
    for member in oracle.app_members():
        if member.key.removeprefix("App.") in parity.APP_MEMBERS:
            continue
        target, why = _resolve(owners, member)
        if target is None or why is not None:
            wrong.append(why or f"{member.key}: missing from the compat SDK")
        elif member.kind != "property":
            wrong += _mismatches(member, target)
    pending = {w for w in wrong if _pending(w)}
    assert not sorted(set(wrong) - pending), (
        "methods of real Modal's App the compat SDK takes differently (fix the SDK, or give the keyword a row in "
        "compiler/parity_members.py KEYWORDS):\n  " + "\n  ".join(sorted(set(wrong) - pending)))
    done = sorted(p for p in PENDING if p.startswith("App.") and not any(_pending(w, p) for w in pending))
    assert not done, f"PENDING entries that now pass: remove them from tests/test_modal_oracle.py: {done}"


def test_the_keyword_check_bites() -> None:
    """The comparison itself: names, positions, defaults, extra required parameters."""
    member = oracle.Member("X.f", "method", (oracle.Param("a", False, 0, oracle.EMPTY),
                                              oracle.Param("b", True, -1, 1), oracle.Param("c", True, -1, [])))

    def same(a: object, *, b: int = 1, c: tuple[()] = ()) -> None: ...
    def wrong_default(a: object, *, b: int = 2, c: None = None) -> None: ...
    def wrong_position(b: int = 1, a: object = None, c: tuple[()] = ()) -> None: ...
    def swallowed(a: object, **kw: object) -> None: ...
    def extra(a: object, d: object, *, b: int = 1, c: tuple[()] = ()) -> None: ...

    assert _mismatches(member, same) == []
    assert _mismatches(member, wrong_default) == ["X.f.b: defaults to 1 in real Modal, 2 here",
                                                  "X.f.c: defaults to [] in real Modal, None here"]
    assert _mismatches(member, wrong_position) == ["X.f.a: positional #0 in real Modal, not here (['b', 'a', 'c'])"]
    assert _mismatches(member, swallowed) == ["X.f.b: missing (real Modal takes `b=`)",
                                              "X.f.c: missing (real Modal takes `c=`)"]
    assert _mismatches(member, extra) == ["X.f: requires `d`, which real Modal does not take"]
    assert _same_default({}, None) and _same_default([], ()) and not _same_default(True, 1)
    assert not _same_default(0, False) and _same_default(0, 0.0) and _same_default(oracle.Expr("X"), None)

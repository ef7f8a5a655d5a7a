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
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from compiler import parity

ROOT = Path(__file__).resolve().parents[1]


def _pin() -> str:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (pin,) = [req for req in extras["oracle"] if req.startswith("modal==")]
    return str(pin)


def _wheel() -> Path:
    pin = _pin()
    folder = Path(os.environ.get("MODALC_ORACLE_DIR") or Path.home() / ".cache" / "modalc-oracle") / pin
    version = pin.split("==")[1]
    found = sorted(folder.glob(f"modal-{version}-*.whl"))
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        got = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                              "-d", str(folder), pin], capture_output=True, text=True, timeout=300)
        found = sorted(folder.glob(f"modal-{version}-*.whl"))
        if not found:
            pytest.fail(f"could not fetch the oracle {pin}: {got.stderr.strip()[-500:]}")
    return found[0]


@pytest.fixture(scope="module")
def real_all() -> list[str]:
    with zipfile.ZipFile(_wheel()) as whl:
        tree = ast.parse(whl.read("modal/__init__.py").decode())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            names = ast.literal_eval(node.value)
            assert isinstance(names, list) and len(names) > 30
            return [str(n) for n in names]
    raise AssertionError("the oracle's modal/__init__.py has no __all__")


def test_every_public_name_of_real_modal_is_mapped(real_all: list[str]) -> None:
    unmapped = sorted(set(real_all) - set(parity.TOP_LEVEL))
    assert not unmapped, f"names of {_pin()}'s modal.__all__ with no row in compiler/parity.py: {unmapped}"
    stale = sorted(set(parity.TOP_LEVEL) - set(real_all))
    assert not stale, f"rows of compiler/parity.py that {_pin()} does not export: {stale}"


@pytest.fixture(scope="module")
def real_app() -> ast.ClassDef:
    with zipfile.ZipFile(_wheel()) as whl:
        tree = ast.parse(whl.read("modal/app.py").decode())
    (cls,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "_App"]
    return cls


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

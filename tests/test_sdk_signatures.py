"""What the compat SDK does with the keywords it takes as real Modal 1.6 does (tests/test_modal_oracle.py
checks the names, positions and defaults; these check the behaviour compiler/parity_members.py claims)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from agent_runtime.sdk import Image, Volume, concurrent, fastapi_endpoint
from agent_runtime.sdk.cls import Cls
from agent_runtime.sdk.exception import InvalidError, NotSupportedError
from agent_runtime.sdk.functions import Function, FunctionCall
from tests.helpers import compile_for_run


@pytest.mark.parametrize("build", [
    lambda: Image.debian_slim().pip_install("x", env={"A": "1"}),
    lambda: Image.debian_slim().apt_install("x", env={"A": "1"}),
    lambda: Image.debian_slim().run_commands("true", env={"A": "1"}),
    lambda: Image.debian_slim().run_commands("true", volumes={"/v": Volume.from_name("v")}),
    lambda: Image.debian_slim().dockerfile_commands("RUN true", build_args={"A": "1"}),
    lambda: Image.from_dockerfile("Dockerfile", build_args={"A": "1"}),
])
def test_a_build_step_option_modalc_cannot_honour_is_an_error_at_the_users_line(build: object) -> None:
    with pytest.raises(NotSupportedError) as err:
        build()  # type: ignore[operator]
    assert err.value.location[0] == __file__ and "not supported by modalc" in str(err.value)


def test_ignored_build_step_options_are_accepted_and_leave_the_recipe_unchanged() -> None:
    plain = Image.debian_slim().pip_install("x").apt_install("y").run_commands("z")
    given = (Image.debian_slim(force_build=True).pip_install("x", force_build=True, secrets=[], gpu="T4", env={})
             .apt_install("y", gpu="A10G").run_commands("z", secrets=None, force_build=True))
    assert given.recipe_key == plain.recipe_key
    assert Image.from_registry("python:3.12", None).steps == Image.from_registry("python:3.12").steps


def test_image_pipe_hydrate_and_shell_commands() -> None:
    def add_tools(image: Image, *tools: str, upgrade: bool = False) -> Image:
        return image.apt_install(*tools).run_commands("pip install -U pip" if upgrade else "true")

    image = Image.debian_slim().pipe(add_tools, "git", "curl", upgrade=True)
    assert image.steps[1] == ("apt_install", (("packages", ("git", "curl")),))
    assert image.hydrate() is image
    assert Image.debian_slim().shell(shell_commands=["/bin/bash", "-c"]).steps[-1] == (
        "shell", (("commands", ("/bin/bash", "-c")),))


def test_volume_read_only_is_a_method_and_mounts_read_only(tmp_path: Path) -> None:
    vol = Volume.from_name("data")
    assert vol.read_only().mount_read_only and not vol.mount_read_only
    assert vol.with_mount_options(read_only=True) == vol.read_only() and vol.read_only_view() == vol.read_only()
    assert not vol.read_only().with_mount_options(read_only=False).mount_read_only
    with pytest.raises(NotSupportedError, match="sub_path"):
        vol.with_mount_options(sub_path="a/b")
    data = compile_for_run(tmp_path, "ro", (
        "import modal\napp = modal.App('ro')\nvol = modal.Volume.from_name('data')\n"
        "@app.function(volumes={'/ro': vol.read_only(), '/rw': modal.Volume.from_name('other')})\n"
        "def f():\n    return 1\n"))
    (job,) = data.compiled.functions
    mounts = {m.destination: m.read_only for g in job.job.groups for t in g.tasks for m in t.volume_mounts}
    assert mounts == {"/ro": True, "/rw": False}


def test_read_file_into_fileobj_reports_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent_runtime.sdk import volume

    (tmp_path / "f.bin").write_bytes(b"x" * 10)
    monkeypatch.setattr(volume, "mount_path", lambda vol, method: str(tmp_path))
    seen: list[int] = []
    sink = io.BytesIO()
    assert Volume("v").read_file_into_fileobj("f.bin", sink, lambda advance: seen.append(advance)) == 10
    assert sink.getvalue() == b"x" * 10 and sum(seen) == 10


def test_from_name_takes_real_modals_keywords() -> None:
    f = Function.from_name("app", "f", version=3, environment_name="main", client=None)
    assert f._target().app_name == "app" and f.tag == "f"
    assert Cls.from_name("app", "C", version=1, client=None).app_name == "app"
    assert FunctionCall.from_id("fc-1", None).object_id == "fc-1"


def test_function_call_get_index_other_than_zero_is_an_error() -> None:
    with pytest.raises(NotSupportedError, match="one input"):
        FunctionCall("fc-1").get(index=1)


def test_concurrent_without_max_inputs_is_modals_error() -> None:
    with pytest.raises(InvalidError, match="missing required argument: `max_inputs`"):
        concurrent(target_inputs=4)
    assert concurrent(max_inputs=4)(lambda: 1).flags["concurrent"] == {"max_inputs": 4, "target_inputs": None}


def test_requires_proxy_auth_is_refused_not_ignored() -> None:
    from agent_runtime.sdk import asgi_app, web_server, wsgi_app

    for decorator in (fastapi_endpoint, asgi_app, wsgi_app):
        with pytest.raises(NotSupportedError, match="requires_proxy_auth"):
            decorator(requires_proxy_auth=True)
        decorator(requires_proxy_auth=False, custom_domains=["x.example.com"])
    with pytest.raises(NotSupportedError, match="requires_proxy_auth"):
        web_server(8000, requires_proxy_auth=True)


def test_app_include_inherits_tags_and_takes_real_modals_keywords() -> None:
    from agent_runtime.sdk import App

    main, other = App("main", tags={"team": "a"}), App("other", tags={"team": "b", "env": "prod"})
    assert main.include(other_app=other).tags == {"team": "a", "env": "prod"}
    assert App("x").include(other, inherit_tags=False).tags == {}
    assert App("x").include_source is True

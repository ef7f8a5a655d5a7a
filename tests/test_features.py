"""Every Modal feature real apps declare, one row each: it builds (with a note), fails clearly, or raises on use.

Three tables, each row a tiny app written to ``tmp_path``:

* ``build_rows``: ``modalc build`` succeeds; the notes it prints contain the expected text ("" for none).
* ``fail_rows``: ``modalc build`` exits 2 with ``file:line: message`` and the hint, and no modalc traceback.
  The line is the one marked ``# <-``.
* ``use_rows``: the script loads; calling its ``use()`` raises ``NotSupportedError`` with the message and
  hint, located at the marked line of the user's file.

Then two local runs: the Volume file methods inside functions and on the client, and a cloud-only object
used inside a remote function. docs/mapping.md is the prose version of these tables.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent_runtime.sdk.exception import NotSupportedError
from compiler.cli import main
from compiler.loader import load
from compiler.refs import parse_import_ref

ROOT = Path(__file__).resolve().parents[1]
HEAD = "import modal\n\napp = modal.App('feat')\n"
_MODALC_FRAME = re.compile(r'File "[^"]*/compiler/[^"]*", line')


def _fn(options: str = "", body: str = "return x") -> str:
    return f"\n@app.function({options})\ndef f(x):\n    {body}\n"


def _write(tmp_path: Path, name: str, source: str) -> tuple[Path, int]:
    """Write the app; return its path and the line marked ``# <-`` (0 when none)."""
    path = tmp_path / f"{re.sub(r'[^A-Za-z0-9_]', '_', name)}.py"
    path.write_text(source)
    marked = [i for i, text in enumerate(source.splitlines(), 1) if "# <-" in text]
    return path, marked[0] if marked else 0


# (id, source, expected note text)
build_rows = [
    ("region", HEAD + _fn("region='us-east'"), "region= ignored: Nomad places jobs by --datacenter/--node-pool"),
    ("cloud", HEAD + _fn("cloud='aws'"), "cloud= ignored: Nomad places jobs by --datacenter/--node-pool"),
    ("routing_region", HEAD + _fn("routing_region='us-east'"), "routing_region= ignored"),
    ("nonpreemptible", HEAD + _fn("nonpreemptible=True"), "nonpreemptible= ignored: Nomad nodes are not preempted"),
    ("memory_snapshot", HEAD + _fn("enable_memory_snapshot=True"), "enable_memory_snapshot= ignored: Nomad has no "
     "memory snapshots"),
    ("restrict_modal_access", HEAD + _fn("restrict_modal_access=True"), "restrict_modal_access= ignored"),
    ("i6pn", HEAD + _fn("i6pn=True"), "i6pn= ignored"),
    ("startup_timeout", HEAD + _fn("startup_timeout=60"), "startup_timeout= ignored"),
    ("experimental_options", HEAD + _fn("experimental_options={'a': 1}"), "experimental_options= ignored"),
    # Deployed warm pools act on the autoscaling options (compiler/warm_deploy.py): no note.
    ("min_containers", HEAD + _fn("min_containers=2"), ""),
    ("buffer_containers", HEAD + _fn("buffer_containers=1"), ""),
    ("scaledown_window", HEAD + _fn("scaledown_window=60"), ""),
    ("single_use_containers", HEAD + _fn("single_use_containers=True"), "single_use_containers= ignored: every "
     "dispatched call already gets a fresh allocation"),
    ("max_inputs", HEAD + _fn("max_inputs=1"), "max_inputs= ignored"),
    ("block_network", HEAD + _fn("block_network=True"), ""),
    ("keep_warm (0.x)", HEAD + _fn("keep_warm=1"), ""),
    ("max_containers", HEAD + _fn("max_containers=4"), ""),
    # Declared at module level: loads, nothing to say until used.
    ("Dict.from_name", HEAD + "d = modal.Dict.from_name('cache', create_if_missing=True)\n" + _fn(), ""),
    ("Queue.from_name", HEAD + "q = modal.Queue.from_name('jobs', create_if_missing=True)\n" + _fn(), ""),
    ("Dict.ephemeral", HEAD + "d = modal.Dict.ephemeral()\n" + _fn(), ""),
    ("Sandbox reference", HEAD + "S = modal.Sandbox\n" + _fn(), ""),
    ("Proxy.from_name", HEAD + "p = modal.Proxy.from_name('egress')\n" + _fn(), ""),
    ("Tunnel, forward references", HEAD + "T, fw = modal.Tunnel, modal.forward\n" + _fn(), ""),
    ("Mount reference", HEAD + "M = modal.Mount\n" + _fn(), ""),
    ("Client reference", HEAD + "C = modal.Client\n" + _fn(), ""),
    ("SchedulerPlacement", HEAD + "sp = modal.SchedulerPlacement(region='us-east', spot=False)\n" + _fn(), ""),
    ("FilePatternMatcher", HEAD + "m = modal.FilePatternMatcher('*.pyc')\nassert m('a.pyc')\n" + _fn(), ""),
    ("NetworkFileSystem", HEAD + "n = modal.NetworkFileSystem.from_name('nfs')\n" + _fn("network_file_systems={'/n': n}"),
     ""),
    ("modal.experimental", "import modal.experimental\n" + HEAD + "modal.experimental.stop_fetching_inputs()\n" + _fn(),
     ""),
    ("modal.config", HEAD + "import modal.config\nlevel = modal.config.config.get('loglevel')\n" + _fn(), ""),
    ("modal.runner", HEAD + "from modal.runner import deploy_app\n" + _fn(), ""),
    ("modal.volume", HEAD + "from modal.volume import FileEntry, FileEntryType\n" + _fn(), ""),
    ("modal.exception names", HEAD + "from modal.exception import (AuthError, NotFoundError, SandboxTimeoutError,\n"
     "    ConnectionError, VersionError, FunctionTimeoutError, InputCancellation)\n" + _fn(), ""),
    ("old module paths", HEAD + "from modal.secret import Secret\nfrom modal.schedule import Cron\n"
     "from modal.retries import Retries\nfrom modal.functions import Function, FunctionCall\n" + _fn(), ""),
    ("modal.Error", HEAD + "E = modal.Error\nassert issubclass(modal.exception.NotFoundError, E)\n" + _fn(), ""),
    ("modal.gpu objects", HEAD + _fn("gpu=modal.gpu.A100(size='80GB')"), ""),
    ("context helpers", HEAD + "modal.interact()\nwith modal.enable_output():\n    pass\n"
     "assert modal.is_local() and modal.current_function_call_id() is None\n" + _fn(), ""),
    ("Volume methods referenced", HEAD + "v = modal.Volume.from_name('v')\nops = (v.listdir, v.read_file, v.commit)\n"
     + _fn("volumes={'/v': v}"), ""),
    ("App.include", HEAD + "other = modal.App('other')\n\n@other.function()\ndef g():\n    pass\n\n"
     "app.include(other)\n" + _fn(), ""),
    ("Retries, Cron", HEAD + _fn("retries=modal.Retries(max_retries=2), schedule=modal.Cron('0 9 * * *')"), ""),
]

# (id, source, message, hint)
fail_rows = [
    ("proxy=", HEAD + "p = modal.Proxy.from_name('egress')\n\n@app.function(proxy=p)  # <-\ndef f():\n    pass\n",
     "proxy= (modal.Proxy) is not supported by modalc", "static egress IP"),
    ("cloud_bucket_mounts=", HEAD + "b = modal.CloudBucketMount('bucket')\n\n"
     "@app.function(cloud_bucket_mounts={'/b': b})  # <-\ndef f():\n    pass\n",
     "cloud_bucket_mounts= is not supported by modalc", "in volumes={path: ...}: it becomes a CSI volume"),
    ("mounts=", HEAD + "\n@app.function(mounts=[1])  # <-\ndef f():\n    pass\n",
     "mounts= was removed in Modal 1.0", "add_local_dir"),
    ("Dict as a volume", HEAD + "d = modal.Dict.from_name('d')\n\n@app.function(volumes={'/d': d})  # <-\n"
     "def f():\n    pass\n", "volumes['/d'] must be a modal.Volume, got Dict", ""),
    ("Volume.ephemeral", HEAD + "v = modal.Volume.ephemeral()  # <-\n" + _fn(),
     "modal.Volume.ephemeral() is not supported by modalc", "modal.Volume.from_name"),
    ("Sandbox.create at import", HEAD + "sb = modal.Sandbox.create('echo', 'hi', app=app)  # <-\n" + _fn(),
     "modal.Sandbox.create is not supported by modalc", "run the command inside a function"),
    ("forward at import", HEAD + "t = modal.forward(8000)  # <-\n" + _fn(),
     "modal.forward is not supported by modalc", "web endpoint"),
    ("Mount.from_local_dir", HEAD + "m = modal.Mount.from_local_dir('.')  # <-\n" + _fn(),
     "modal.Mount.from_local_dir is not supported by modalc: Modal 1.0 removed it", "add_local_dir"),
    ("Dict item at import", HEAD + "d = modal.Dict.from_name('d')\nx = d['k']  # <-\n" + _fn(),
     "modal.Dict[key] is not supported by modalc", "external store"),
    ("experimental.clustered", "import modal.experimental\n" + HEAD +
     "\n@app.function()\n@modal.experimental.clustered(size=2)  # <-\ndef f():\n    pass\n",
     "modal.experimental.clustered (multi-node gangs) is not supported by modalc", "group count"),
    ("unknown experimental name", "import modal.experimental\n" + HEAD +
     "x = modal.experimental.flash_forward  # <-\n" + _fn(), "modal.experimental.flash_forward is not supported", ""),
]

# (id, module-level setup, body of use(), message, hint)
use_rows = [
    ("Dict.get", "d = modal.Dict.from_name('d')", "return d.get('k')  # <-", "modal.Dict.get is not supported",
     "external store"),
    ("Dict.put", "d = modal.Dict.from_name('d')", "d.put('k', 1)  # <-", "modal.Dict.put is not supported", "Redis"),
    ("Dict[k] = v", "d = modal.Dict.from_name('d')", "d['k'] = 1  # <-", "modal.Dict[key] = value", "Volume"),
    ("k in Dict", "d = modal.Dict.from_name('d')", "return 'k' in d  # <-", "modal.Dict.contains", ""),
    ("with Dict.ephemeral()", "", "with modal.Dict.ephemeral() as d:  # <-\n        d['k'] = 1",
     "modal.Dict.ephemeral is not supported", ""),
    ("Queue.put", "q = modal.Queue.from_name('q')", "q.put(1)  # <-", "modal.Queue.put is not supported",
     ".map()/.spawn()"),
    ("Queue.get", "q = modal.Queue.from_name('q')", "return q.get()  # <-", "modal.Queue.get is not supported", ""),
    ("len(Queue)", "q = modal.Queue.from_name('q')", "return len(q)  # <-", "modal.Queue.len is not supported", ""),
    ("Dict.delete", "", "modal.Dict.delete('d')  # <-", "modal.Dict.delete is not supported", ""),
    ("Sandbox.create", "", "return modal.Sandbox.create('sleep', '1')  # <-", "modal.Sandbox.create is not "
     "supported by modalc: it lives in Modal's cloud", "its own Nomad job"),
    ("Sandbox.from_id", "", "return modal.Sandbox.from_id('sb-1')  # <-", "modal.Sandbox.from_id", ""),
    ("forward", "", "with modal.forward(8000) as t:  # <-\n        return t.url", "modal.forward is not supported",
     "@modal.web_server"),
    ("Proxy use", "p = modal.Proxy.from_name('p')", "return p.name2  # <-", "modal.Proxy.name2", "static egress"),
    ("Client.from_credentials", "", "return modal.Client.from_credentials('a', 'b').stub  # <-",
     "modal.Client.stub", "NOMAD_ADDR"),
    ("Volume.listdir unmounted", "v = modal.Volume.from_name('v')", "return v.listdir('/')  # <-",
     "Volume('v').iterdir() needs the volume mounted where it runs", "a function that mounts the volume"),
    ("Volume.read_file unmounted", "v = modal.Volume.from_name('v')", "return v.read_file('a.txt')  # <-",
     "Volume('v').read_file() needs the volume mounted", "modalc volume"),
    ("Volume.batch_upload unmounted", "v = modal.Volume.from_name('v')",
     "with v.batch_upload() as b:  # <-\n        b.put_file('x', '/x')", "Volume('v').batch_upload() needs", ""),
    ("Volume.delete", "", "modal.Volume.delete('v')  # <-", "modal.Volume.delete() is not supported", "host volume"),
    ("experimental.get_cluster_info", "import modal.experimental", "return modal.experimental.get_cluster_info()  # <-",
     "modal.experimental.get_cluster_info is not supported", ""),
]


@pytest.mark.parametrize(("name", "source", "note"), build_rows, ids=[r[0] for r in build_rows])
def test_builds(name: str, source: str, note: str, tmp_path: Path) -> None:
    path, _ = _write(tmp_path, name, source)
    result = CliRunner().invoke(main, ["build", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    if note:
        assert any(note in line for line in notes), result.stderr
        assert all(f"{path}:" in line for line in notes if note in line)
    assert_no_modalc_traceback(result.stderr)


@pytest.mark.parametrize(("name", "source", "message", "hint"), fail_rows, ids=[r[0] for r in fail_rows])
def test_build_fails_clearly(name: str, source: str, message: str, hint: str, tmp_path: Path) -> None:
    path, line = _write(tmp_path, name, source)
    result = CliRunner().invoke(main, ["build", str(path)])
    err = result.stderr
    assert result.exit_code == 2, result.output
    first = err.splitlines()[0]
    assert first.startswith("Error: ") and message in first, err
    assert f"{path.name}:{line}: " in first, err
    if hint:
        assert hint in err.split("\n  hint: ", 1)[1], err
    assert_no_modalc_traceback(err)


@pytest.mark.parametrize(("name", "setup", "body", "message", "hint"), use_rows, ids=[r[0] for r in use_rows])
def test_use_raises_not_supported(name: str, setup: str, body: str, message: str, hint: str,
                                  tmp_path: Path) -> None:
    path, line = _write(tmp_path, name, HEAD + setup + "\n\n\ndef use():\n    " + body + "\n" + _fn())
    script = load(parse_import_ref(str(path)))
    with pytest.raises(NotSupportedError) as info:
        script.module.use()
    assert message in str(info.value)
    assert hint in info.value.hint
    assert info.value.location == (str(path), line)


def assert_no_modalc_traceback(text: str) -> None:
    assert not _MODALC_FRAME.search(text), text


# -- local runs -----------------------------------------------------------------------------------

def _run(script: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODALC_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("NOMAD_ADDR", None)
    return subprocess.run([sys.executable, "-m", "compiler", "run", str(script)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=90)


VOLUME_APP = '''
import io
import modal

app = modal.App("volume-methods")
vol = modal.Volume.from_name("files", create_if_missing=True)
MNT = {mnt!r}


@app.function(volumes={{MNT: vol}})
def upload(src: str) -> None:
    with vol.batch_upload() as batch:
        batch.put_file(io.BytesIO(b"alpha"), "/a.txt")
        batch.put_directory(src, "/tree")
    vol.copy_files(["a.txt"], "b.txt")
    vol.commit()


@app.function(volumes={{MNT: vol}})
def inspect() -> list:
    vol.reload()
    entries = vol.listdir("/", recursive=True)
    data = b"".join(vol.read_file("b.txt"))
    vol.remove_file("tree", recursive=True)
    listing = [(e.path, int(e.type)) for e in entries]
    return listing + [data.decode(), sorted(e.path for e in vol.listdir("/")), modal.current_function_call_id()[:3]]


@app.local_entrypoint()
def main(src: str = {src!r}):
    upload.remote(src)
    print("inside:", inspect.remote())
    print("client:", [e.path for e in vol.listdir("/")], modal.current_function_call_id())
    try:
        vol.batch_upload().put_file(io.BytesIO(b""), "/a.txt")
        with vol.batch_upload() as again:
            again.put_file(io.BytesIO(b"x"), "/a.txt")
    except FileExistsError as exc:
        print("exists:", exc)
'''


def test_volume_methods_on_the_mount_path(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "c.txt").write_text("gamma")
    mnt = tmp_path / "mnt"
    script = tmp_path / "volume_app.py"
    script.write_text(VOLUME_APP.format(mnt=str(mnt), src=str(src)))
    result = _run(script, tmp_path / "home")
    assert result.returncode == 0, result.stderr
    # Each directory's subdirectories first, then its files (both sorted); paths relative to the volume root.
    assert ("inside: [('tree', 2), ('a.txt', 1), ('b.txt', 1), ('tree/sub', 2), ('tree/sub/c.txt', 1), 'alpha', "
            "['a.txt', 'b.txt'], 'fc-']") in result.stdout
    assert "client: ['a.txt', 'b.txt'] None" in result.stdout  # the local backend links the mount path during the run
    assert "exists: '/a.txt' already exists in volume 'files'; pass force=True" in result.stdout
    assert (tmp_path / "home" / "volumes" / "files" / "b.txt").read_text() == "alpha"
    assert not mnt.exists()


def test_cloud_only_object_used_remotely_fails_clearly(tmp_path: Path) -> None:
    script = tmp_path / "dict_app.py"
    script.write_text(HEAD + "cache = modal.Dict.from_name('cache', create_if_missing=True)\n\n\n"
                      "@app.function()\ndef f(x):\n    return cache.get(x)\n\n\n"
                      "@app.local_entrypoint()\ndef main():\n    f.remote(1)\n")
    result = _run(script, tmp_path / "home")
    assert result.returncode != 0
    assert "modal.Dict.get is not supported by modalc" in result.stderr, result.stderr
    assert_no_modalc_traceback(result.stderr)


def test_block_network_is_enforced_on_docker_and_refused_where_it_cannot_be(tmp_path: Path) -> None:
    source = HEAD + "\n@app.function(block_network=True)  # <-\ndef f(x):\n    return x\n"
    path, line = _write(tmp_path, "block_network", source)
    assert line
    built = CliRunner().invoke(main, ["build", str(path)])
    assert built.exit_code == 0, built.output
    assert 'network_mode = "none"' in built.stdout
    raw = CliRunner().invoke(main, ["build", str(path), "--driver", "raw_exec"])
    assert raw.exit_code == 2
    assert "block_network=True cannot be enforced with --driver raw_exec" in raw.stderr
    assert f"{path}:{line}:" in raw.stderr

"""``@app.cls`` end to end: real ``modalc run`` processes on the local backend and on the Nomad double.

One app exercises a class's parameters, enter/exit once per container, sync, async,
generator and ``@modal.batched`` methods, ``@modal.concurrent`` (on a class and on a
function), ``Cls.with_options`` variants with their own resources, ``run ::Model.method``
with pooled options, and ``Cls.from_name`` of a deployed class (double).
"""

from __future__ import annotations

import ast
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from tests.nomad_double import NomadDouble
from tests.test_nomad_cli import ephemeral_jobs
from tests.test_nomad_cli import modalc as nomad_modalc
from tests.test_run import modalc as local_modalc

APP = textwrap.dedent('''
    import asyncio
    import os
    import time

    import modal

    app = modal.App("clsapp")


    def note(path, what):
        with open(path, "a") as fh:
            fh.write(f"{what} {os.environ['NOMAD_ALLOC_ID']}\\n")


    @app.cls(memory=200)
    class Model:
        scale: int = modal.parameter(default=1)
        log: str = modal.parameter(default="")

        @modal.enter()
        def load(self):
            self.loaded = self.scale * 100
            if self.log:
                note(self.log, "enter")

        @modal.exit()
        def unload(self):
            if self.log:
                note(self.log, "exit")

        @modal.method()
        def ident(self, x: int):
            return x * self.scale + self.loaded, os.environ["NOMAD_ALLOC_ID"]

        @modal.method()
        def describe(self, word: str, times: int = 1) -> str:
            return f"{word * times}x{self.scale}"

        @modal.method()
        async def double(self, x: int) -> int:
            await asyncio.sleep(0.01)
            return 2 * x * self.scale

        @modal.method()
        def count(self, n: int):
            for i in range(n):
                yield i * self.scale

        @modal.batched(max_batch_size=5, wait_ms=10)
        def batch(self, xs: list[int]) -> list[tuple[int, int]]:
            return [(x * self.scale, len(xs)) for x in xs]

        @modal.method()
        def resources(self) -> tuple[str, str]:
            return os.environ["NOMAD_CPU_LIMIT"], os.environ["NOMAD_MEMORY_LIMIT"]


    @app.cls()
    @modal.concurrent(max_inputs=4)
    class Sleeper:
        @modal.method()
        def nap(self, x: float):
            start = time.time()
            time.sleep(x)
            return start, time.time()

        @modal.method()
        async def anap(self, x: float):
            start = time.time()
            await asyncio.sleep(x)
            return start, time.time()


    @app.function()
    @modal.concurrent(max_inputs=4)
    def fnap(x: float):
        start = time.time()
        time.sleep(x)
        return start, time.time()


    @app.function()
    @modal.batched(max_batch_size=4, wait_ms=0)
    def fbatch(xs: list[int]) -> list[int]:
        return [len(xs)] * len(xs)


    @app.function()
    @modal.batched(max_batch_size=4, wait_ms=5000)
    def fgather(xs: list[int]) -> list[int]:
        return [len(xs)] * len(xs)


    def span(pairs):
        pairs = list(pairs)
        return round(max(e for _, e in pairs) - min(s for s, _ in pairs), 2)


    @app.local_entrypoint()
    def main(log: str = ""):
        m = Model(scale=3, log=log)
        print("idents", [r[0] for r in m.ident.map(range(20))])
        print("allocs", sorted({r[1] for r in m.ident.map(range(20))}))
        print("remote", m.ident.remote(1)[0])
        print("spawn", m.describe.spawn("ab", times=2).get())
        print("async", m.double.remote(5), list(m.double.map([1, 2])))
        print("gen", list(m.count.remote_gen(4)))
        print("batch", list(m.batch.map(range(5))), m.batch.remote(7))
        print("variant", Model.with_options(cpu=1.5, memory=512)(scale=2).resources.remote(),
              Model().resources.remote())
        print("span", span(Sleeper().nap.map([0.5] * 4)), span(Sleeper().anap.map([0.5] * 4)),
              span(fnap.map([0.5] * 4)))
        print("fbatch", list(fbatch.map(range(4))), fbatch.remote(1))
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(8) as pool:  # concurrent .remote() calls gathered into batches of 4
            print("gathered", list(pool.map(fgather.remote, range(8))))
''')


def _lines(stdout: str) -> dict[str, str]:
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in stdout.splitlines() if " " in line}


def _check(result_stdout: str, log: Path) -> None:
    out = _lines(result_stdout)
    assert ast.literal_eval(out["idents"]) == [x * 3 + 300 for x in range(20)]
    allocs = ast.literal_eval(out["allocs"])
    assert out["remote"] == "303"
    assert out["spawn"] == "ababx3"
    assert out["async"] == "30 [6, 12]"
    assert out["gen"] == "[0, 3, 6, 9]"
    assert out["batch"] == "[(0, 5), (3, 5), (6, 5), (9, 5), (12, 5)] (21, 1)"
    assert out["variant"] == "('1500', '512') ('125', '200')"
    spans = [float(s) for s in out["span"].split()]
    assert all(s < 1.2 for s in spans), spans  # four 0.5 s naps at once, not one after another (2 s)
    assert out["fbatch"] == "[4, 4, 4, 4] 1"
    assert out["gathered"] == "[4, 4, 4, 4, 4, 4, 4, 4]"  # full batches at once, long before wait_ms
    # enter once per container, exit once at the end of each
    events = [line.split() for line in log.read_text().splitlines()]
    enters = Counter(a for e, a in events if e == "enter")
    exits = Counter(a for e, a in events if e == "exit")
    assert enters == exits and set(enters.values()) == {1}
    assert set(allocs) <= set(enters) and len(allocs) < 20


def test_class_on_the_local_backend(tmp_path: Path) -> None:
    script = tmp_path / "clsapp.py"
    script.write_text(APP)
    log = tmp_path / "events.log"
    result = local_modalc("run", str(script), "--log", str(log), home=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    _check(result.stdout, log)


def test_class_on_nomad(double: NomadDouble, tmp_path: Path) -> None:
    script = tmp_path / "clsapp.py"
    script.write_text(APP)
    log = tmp_path / "events.log"
    registered = []
    original = double._register

    def spy(ns, body, url_id):  # type: ignore[no-untyped-def]
        registered.append(body.get("Job", body))
        return original(ns, body, url_id)

    double._register = spy  # type: ignore[method-assign]
    result = nomad_modalc(double, tmp_path, "run", str(script), "--log", str(log), timeout=180)
    assert result.returncode == 0, result.stderr
    _check(result.stdout, log)
    variant = [j for j in registered if j["ID"].endswith("-Model-v1")]
    assert len(variant) == 1
    resources = variant[0]["TaskGroups"][0]["Tasks"][0]["Resources"]
    assert resources["CPU"] == 1500 and resources["MemoryMB"] == 512
    assert variant[0]["Meta"]["modalc_function"] == "Model-v1" and variant[0]["Meta"]["modalc_ephemeral"] == "true"
    assert not ephemeral_jobs(double)


def test_run_a_method_with_pooled_options(tmp_path: Path) -> None:
    script = tmp_path / "clsapp.py"
    script.write_text(APP)
    out = tmp_path / "out.txt"
    result = local_modalc("run", "--write-result", str(out), f"{script}::Model.describe", "--scale", "4",
                          "--word", "hi", "--times", "2", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.read_text() == "hihix4"
    several = local_modalc("run", f"{script}::Model", home=tmp_path)
    assert several.returncode == 2 and "Please specify a specific method of Model" in several.stderr
    gen = local_modalc("run", f"{script}::Model.count", "--n", "3", home=tmp_path)
    assert gen.returncode == 0, gen.stderr


CLASH = textwrap.dedent('''
    import modal

    app = modal.App("clash")

    @app.cls()
    class Model:
        word: str = modal.parameter(default="a")

        @modal.method()
        def say(self, word: str) -> str:
            return word
''')


def test_a_name_shared_by_a_parameter_and_the_method_is_an_error(tmp_path: Path) -> None:
    script = tmp_path / "clash.py"
    script.write_text(CLASH)
    result = local_modalc("run", f"{script}::Model.say", "--word", "b", home=tmp_path)
    assert result.returncode == 2
    assert "parameter `word` has the name of a class parameter of Model" in result.stderr


DEPLOYED = textwrap.dedent('''
    import modal

    app = modal.App("dep")

    @app.cls()
    class Model:
        scale: int = modal.parameter(default=1)

        @modal.method()
        def score(self, x: int) -> int:
            return x * self.scale
''')

CALLER = textwrap.dedent('''
    import modal

    app = modal.App("cls-caller")

    @app.local_entrypoint()
    def main():
        Model = modal.Cls.from_name("dep", "Model")
        print("score:", Model(scale=3).score.remote(7), list(Model(scale=2).score.map([1, 2])))
''')


def test_cls_from_name_calls_the_deployed_class(double: NomadDouble, tmp_path: Path) -> None:
    (tmp_path / "dep.py").write_text(DEPLOYED)
    (tmp_path / "caller.py").write_text(CALLER)
    deployed = nomad_modalc(double, tmp_path, "deploy", str(tmp_path / "dep.py"))
    assert deployed.returncode == 0, deployed.stderr
    assert "dep-Model" in deployed.stdout
    called = nomad_modalc(double, tmp_path, "run", str(tmp_path / "caller.py"))
    assert called.returncode == 0, called.stderr
    assert "score: 21 [2, 4]" in called.stdout
    assert ("default", "dep-Model") in double.jobs


@pytest.mark.parametrize("bad", ["@modal.concurrent(max_inputs=0)", "@modal.batched(max_batch_size=-1, wait_ms=1)"])
def test_bad_group_settings_fail_the_build(tmp_path: Path, bad: str) -> None:
    script = tmp_path / "bad.py"
    script.write_text(f"import modal\napp = modal.App('bad')\n\n@app.function()\n{bad}\ndef f(x):\n    return x\n")
    result = local_modalc("build", str(script), "-o", str(tmp_path / "out"), home=tmp_path)
    assert result.returncode == 2 and "must be a positive integer" in result.stderr


GROUPED = textwrap.dedent('''
    import os
    import time

    import modal

    app = modal.App("grouped")


    @app.cls()
    class Plain:
        @modal.method()
        def nap(self, x: float):
            start = time.time()
            time.sleep(x)
            return start, time.time(), os.environ["NOMAD_ALLOC_ID"]

        @modal.method()
        def size(self, xs: list[int]) -> list[int]:
            return [len(xs) if isinstance(xs, list) else 1 for _ in (xs if isinstance(xs, list) else [xs])]


    def span(results):
        results = list(results)
        return round(max(e for _, e, _ in results) - min(s for s, _, _ in results), 2)


    @app.local_entrypoint()
    def main():
        together = list(Plain.with_concurrency(max_inputs=4)().nap.map([0.5] * 4))
        print("concurrent", span(together), len({a for _, _, a in together}))
        print("batched", list(Plain.with_batching(max_batch_size=3, wait_ms=0)().size.map(range(3))))
''')


def test_with_concurrency_and_with_batching_reach_the_allocation(tmp_path: Path) -> None:
    script = tmp_path / "grouped.py"
    script.write_text(GROUPED)
    result = local_modalc("run", str(script), home=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    out = _lines(result.stdout)
    together, allocs = out["concurrent"].split()
    assert float(together) < 1.2 and allocs == "1"  # four 0.5 s naps at once in one dispatch, not 2 s
    assert out["batched"] == "[3, 3, 3]"  # one call with a list of three


STOPPED = textwrap.dedent('''
    import os
    import sys
    import time

    import modal

    app = modal.App("stopped")


    @app.cls()
    class Holder:
        marks: str = modal.parameter()

        @modal.enter()
        def start(self):
            self.pid = os.getpid()

        @modal.method()
        def hold(self):
            open(os.path.join(self.marks, "started"), "w").close()
            time.sleep(60)

        @modal.exit()
        def stop(self):
            with open(os.path.join(self.marks, "exited"), "w") as fh:
                fh.write(str(self.pid))


    @app.local_entrypoint()
    def main(marks: str):
        call = Holder(marks=marks).hold.spawn()
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join(marks, "started")) and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        call.cancel()
        print("cancelled in", round(time.monotonic() - started, 1), flush=True)
''')


def test_a_stopped_allocation_runs_the_exit_methods(tmp_path: Path) -> None:
    script = tmp_path / "stopped.py"
    script.write_text(STOPPED)
    marks = tmp_path / "marks"
    marks.mkdir()
    result = local_modalc("run", str(script), "--marks", str(marks), home=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (marks / "started").exists()
    assert (marks / "exited").read_text().isdigit()  # @modal.exit() ran in the worker that was stopped
    assert float(result.stdout.split("cancelled in ")[1].split()[0]) < 5

"""A plain function's ``.map`` chunk on the local backend runs as one range in its worker (RUN_RANGE /
DONE_RANGE, agent_runtime/worker.py and shim.py): every per-input semantic is kept — exceptions in place,
``return_exceptions``, ``order_outputs=False``, per-input retries and timeouts, ``modal.current_input_id()``,
async functions — and the wire formats round-trip."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from agent_runtime import channel
from agent_runtime.outcomes import call_outcomes, call_parts, ranges_body
from agent_runtime.protocol import Batch, Outcome, decode, dumps_value, encode
from compiler.backends.local import LocalBackend, LogSink
from compiler.run import app_run
from tests.helpers import compile_for_run

APP = '''
import asyncio
import os
import time
import modal

app = modal.App("ranges")


@app.function()
def picky(x):
    if x % 10 == 7:
        raise KeyError(f"no {x}")
    return x * 3


@app.function(retries=modal.Retries(max_retries=2, initial_delay=0.0, backoff_coefficient=1.0))
def flaky(x, marks):
    # Fails on the first attempt of every fifth input (inside its chunk of 5, so in a range): the retry succeeds.
    path = os.path.join(marks, str(x))
    if x % 5 == 2 and not os.path.exists(path):
        open(path, "w").close()
        raise RuntimeError(f"first try of {x}")
    return x


@app.function(timeout=2)
def slow_one(x):
    if x == 27:
        time.sleep(30)
    return x


@app.function()
def ident(x):
    return modal.current_input_id()


@app.function()
async def adouble(x):
    await asyncio.sleep(0)
    return 2 * x
'''


@pytest.fixture(scope="module")
def ranges_app(tmp_path_factory: Any) -> Any:
    tmp = tmp_path_factory.mktemp("ranges")
    os.environ["MODALC_HOME"] = str(tmp / "home")
    data = compile_for_run(Path(tmp), "ranges_app", APP)
    with app_run(data.compiled, data.graph, backend=LocalBackend(sink=LogSink(quiet=True)), quiet=True):
        yield data.script.module, tmp


def test_exceptions_stay_in_place_in_chunked_maps(ranges_app: Any) -> None:
    module, _ = ranges_app
    out = list(module.picky.map(range(60), return_exceptions=True))
    assert len(out) == 60
    for x, value in enumerate(out):
        if x % 10 == 7:
            assert isinstance(value, KeyError) and f"no {x}" in str(value)
            assert any("Remote traceback" in note for note in value.__notes__)
        else:
            assert value == 3 * x
    unordered = list(module.picky.map(range(60), order_outputs=False, return_exceptions=True))
    assert sorted(repr(v) for v in unordered) == sorted(repr(v) for v in out)
    with pytest.raises(KeyError, match="no 7"):
        list(module.picky.map(range(60)))


def test_failed_inputs_of_a_range_are_retried_one_by_one(ranges_app: Any) -> None:
    module, tmp = ranges_app
    marks = tmp / "marks"
    marks.mkdir()
    assert list(module.flaky.map(range(40), kwargs={"marks": str(marks)})) == list(range(40))
    assert sorted(int(p.name) for p in marks.iterdir()) == list(range(2, 40, 5))


def test_an_input_that_overruns_its_timeout_fails_alone(ranges_app: Any) -> None:
    module, _ = ranges_app
    start = time.monotonic()
    out = list(module.slow_one.map(range(40), return_exceptions=True))
    took = time.monotonic() - start
    assert [type(v).__name__ for v in out].count("FunctionTimeoutError") == 1
    assert type(out[27]).__name__ == "FunctionTimeoutError"
    assert [v for i, v in enumerate(out) if i != 27] == [i for i in range(40) if i != 27]
    assert took < 15  # one timeout of 2 s (and the stacks' dump), not a wait for the 30 s sleep


def test_current_input_id_and_async_functions_in_ranges(ranges_app: Any) -> None:
    module, _ = ranges_app
    ids = list(module.ident.map(range(30)))
    assert all(isinstance(i, str) and i.startswith("in-") for i in ids)
    assert len(set(ids)) > 1
    assert list(module.adouble.map(range(30))) == [2 * x for x in range(30)]
    assert list(module.picky.starmap([(1,), (2,)])) == [3, 6]
    assert module.picky.for_each(range(5)) is None


def test_range_messages_round_trip() -> None:
    failed = [(2, channel.pack_outcome(False, True, "KeyError: x", dumps_value(Outcome(ok=False, exc_type="KeyError"))))]
    payload = channel.pack_range(10, 4, dumps_value([1, 2, None, 4]), failed)
    first, count, values, apart = channel.unpack_range(bytearray(payload))
    assert (first, count) == (10, 4)
    assert decode(encode("x", [1]))[1] == [1]
    assert apart[0][0] == 2 and channel.unpack_outcome(apart[0][1])[:3] == (False, True, "KeyError: x")
    assert values == dumps_value([1, 2, None, 4])


def test_ranges_body_unpickles_to_outcomes_in_input_order() -> None:
    bad = Outcome(ok=False, exc_type="KeyError", exc_repr="KeyError('x')")
    body = ranges_body([dumps_value(Outcome(ok=True, value="a")),
                        (3, dumps_value([1, None, 3]), {1: dumps_value(bad)})])
    result = encode("result", body, exit_code=1, error="", inputs=4)
    parts = call_parts("f", result, "", 4)
    assert parts[0] == Outcome(ok=True, value="a")
    assert parts[1] == Batch([1, None, 3], {1: bad})
    assert call_outcomes("f", result, "", 4) == [Outcome(ok=True, value="a"), Outcome(ok=True, value=1), bad,
                                                 Outcome(ok=True, value=3)]
    # A result of the wrong length fails every input with the reason.
    assert all(not o.ok and "gone" in o.exc_repr for o in call_outcomes("f", result, "gone", 5))

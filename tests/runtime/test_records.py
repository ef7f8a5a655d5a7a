"""The runtime's command line and its small records (hand-written in place of argparse and dataclasses)."""

from __future__ import annotations

import copy
import pickle

import pytest

from agent_runtime._frozen import FrozenInstanceError
from agent_runtime.args import parse_args
from agent_runtime.protocol import Call, Outcome
from agent_runtime.sdk.cls import ParameterSpec
from agent_runtime.sdk.functions import Target
from agent_runtime.sdk.image import Image
from agent_runtime.sdk.objects import CloudBucketMount, Cron, NetworkFileSystem, Period, Retries, Secret, Volume

REQUIRED = ["--code", "c", "--module", "m", "--qualname", "q", "--result-dir", "r", "--timeout", "2"]


def test_parse_args_defaults_and_flags() -> None:
    opts = parse_args([*REQUIRED, "--call", "call.pkl"])
    assert (opts.code_dir, opts.module, opts.qualname, opts.result_dir) == ("c", "m", "q", "r")
    assert (opts.timeout_s, opts.retries, opts.backoff, opts.initial_delay_s, opts.max_delay_s) == (2.0, 0, 2.0, 1.0,
                                                                                                    60.0)
    assert opts.call_path == "call.pkl" and not opts.generator
    opts = parse_args([*REQUIRED, "--no-input", "--generator", "--retries=3", "--backoff", "3", "--max-delay", "5"])
    assert opts.call_path is None and opts.generator and opts.retries == 3 and opts.retry_delay_s(3) == 5.0
    with pytest.raises(FrozenInstanceError):
        opts.retries = 1  # type: ignore[misc]


@pytest.mark.parametrize(("argv", "message"), [
    (["--code", "c"], "the following arguments are required: --module MODULE"),
    ([*REQUIRED], "one of the arguments --call --no-input is required"),
    ([*REQUIRED, "--call", "x", "--no-input"], "not allowed with argument --call"),
    ([*REQUIRED, "--call", "x", "--retries", "two"], "argument --retries: invalid int value: 'two'"),
    ([*REQUIRED, "--call"], "argument --call: expected one argument"),
    ([*REQUIRED, "--call", "x", "--retries", "-1"], "--retries must not be negative"),
    ([*REQUIRED[:-1], "0", "--call", "x"], "--timeout must be positive"),
    ([*REQUIRED, "--call", "x", "extra"], "unrecognized arguments: extra"),
])
def test_parse_args_bad_usage_exits_3(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 3
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m agent_runtime") and message in err


def test_help_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m agent_runtime") and "--generator" in out


def test_protocol_records_pickle_and_compare() -> None:
    call = Call(inputs=[((1,), {"a": 2})], method="m", params={"p": 1})
    assert pickle.loads(pickle.dumps(call)) == call and copy.deepcopy(call) == call
    assert Call(inputs=[]).params == {} and Call(inputs=[]) != call
    outcome = Outcome(ok=False, exc=ValueError("x"), exc_type="ValueError", attempts=2)
    back = pickle.loads(pickle.dumps(outcome))
    assert (back.ok, back.exc_type, back.attempts, str(back.exc)) == (False, "ValueError", 2, "x")
    assert Outcome(ok=True, value=1) == Outcome(ok=True, value=1)
    assert repr(Outcome(ok=True)).startswith("Outcome(ok=True, value=None, exc=None")


def test_sdk_records_are_frozen_hashable_and_pickle() -> None:
    secret = Secret.from_dict({"K": "hidden"})
    assert "hidden" not in repr(secret) and secret.values() == {"K": "hidden"}
    assert secret == Secret(kind="dict", keys=("K",), location=secret.location)  # values are not compared
    assert repr(Volume("v")) == "Volume(name='v', create_if_missing=False, mount_read_only=False, location=('<unknown>', 0))"
    records = [secret, Volume.from_name("v").read_only(), NetworkFileSystem("n"), CloudBucketMount("b"),
               Cron("0 9 * * *"), Period(days=1), Retries(2), Image(steps=(("debian_slim", ()),)),
               Target(app_name="a", tag="f"), ParameterSpec("p", str, 1)]
    for record in records:
        back = pickle.loads(pickle.dumps(record))
        assert back == record and hash(back) == hash(record) and copy.copy(record) == record
        assert getattr(back, "location", None) == getattr(record, "location", None)
        with pytest.raises(AttributeError):
            record.name = "x"  # type: ignore[misc, union-attr]
    assert pickle.loads(pickle.dumps(secret)).values() == {"K": "hidden"}
    assert Cron("0 9 * * *").location[0] == __file__  # the user's line, not the SDK's
    assert Retries(3).location[0] == __file__ and Period(hours=1).location[0] == __file__
    assert Cron("0 9 * * *") == Cron("0 9 * * *", timezone="UTC") and Retries(1) != Retries(2)

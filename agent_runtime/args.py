"""The command line of ``python -m agent_runtime``, as ``compiler/lower/job.py`` emits it.

Runs inside allocations; standard library only. Parsed by hand: ``argparse``
(with ``gettext`` and ``locale``) costs every allocation's start-up a few ms
for a fixed set of flags. Bad usage prints the usage and a message to stderr
and exits with code 3 (``exitcodes.INFRA_ERROR``).
"""

from __future__ import annotations

import sys

from ._frozen import Frozen
from .exitcodes import INFRA_ERROR

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

PROG = "python -m agent_runtime"
USAGE = (f"usage: {PROG} [-h] --code CODE --module MODULE --qualname QUALNAME --result-dir RESULT_DIR\n"
         f"{' ' * len('usage: ' + PROG)} --timeout TIMEOUT [--retries RETRIES] [--backoff BACKOFF]\n"
         f"{' ' * len('usage: ' + PROG)} [--initial-delay INITIAL_DELAY] [--max-delay MAX_DELAY]\n"
         f"{' ' * len('usage: ' + PROG)} (--call CALL | --no-input) [--generator]\n"
         f"   or: {PROG} --serve web --code CODE --module MODULE --qualname QUALNAME --port PORT\n")

# flag -> (destination, type or None for a switch, help)
_FLAGS: dict[str, tuple[str, type | None, str]] = {
    "--code": ("code", str, "folder holding the user's script and sibling modules"),
    "--module": ("module", str, "module to import from --code, e.g. hello or pkg.mod"),
    "--qualname": ("qualname", str, "the function's (or class's) qualified name in it"),
    "--result-dir": ("result_dir", str, "where result.pkl (and stream.pkl) are written"),
    "--timeout": ("timeout", float, "seconds per attempt of one input"),
    "--retries": ("retries", int, "retries per input (default: none)"),
    "--backoff": ("backoff", float, "backoff coefficient between retries"),
    "--initial-delay": ("initial_delay", float, "seconds before the first retry"),
    "--max-delay": ("max_delay", float, "cap on the delay between retries"),
    "--call": ("call", str, "the call envelope (protocol.Call)"),
    "--no-input": ("no_input", None, "run once with no arguments (schedules)"),
    "--generator": ("generator", None, "stream yielded values into stream.pkl"),
    "--serve": ("serve", str, "serve instead of running calls: 'web' (the function's HTTP endpoint)"),
    "--port": ("port", int, "with --serve: the port to listen on (e.g. ${NOMAD_PORT_http})"),
}
_REQUIRED = ("--code", "--module", "--qualname", "--result-dir", "--timeout")
_SERVE_REQUIRED = ("--code", "--module", "--qualname", "--port")
_SERVE_MODES = ("web",)
_DEFAULTS: dict[str, object] = {"retries": 0, "backoff": 2.0, "initial_delay": 1.0, "max_delay": 60.0,
                                "call": None, "no_input": False, "generator": False, "serve": None, "port": None,
                                "result_dir": "", "timeout": 0.0}
_TYPE_NAMES = {str: "str", int: "int", float: "float"}


class Options(Frozen):
    __slots__ = ("backoff", "call_path", "code_dir", "generator", "initial_delay_s", "max_delay_s", "module",
                 "port", "qualname", "result_dir", "retries", "serve", "timeout_s")
    _compared = ("code_dir", "module", "qualname", "result_dir", "timeout_s", "retries", "backoff",
                 "initial_delay_s", "max_delay_s", "call_path", "generator", "serve", "port")

    code_dir: str
    module: str
    qualname: str
    result_dir: str
    timeout_s: float
    retries: int
    backoff: float
    initial_delay_s: float
    max_delay_s: float
    call_path: str | None  # None with --no-input: one input with no arguments
    generator: bool
    serve: str | None  # "web": serve the function's HTTP endpoint (agent_runtime/web.py) instead of calls
    port: int | None  # with serve: where to listen

    def __init__(self, *, code_dir: str, module: str, qualname: str, result_dir: str, timeout_s: float,
                 retries: int, backoff: float, initial_delay_s: float, max_delay_s: float, call_path: str | None,
                 generator: bool, serve: str | None = None, port: int | None = None) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "code_dir", code_dir)
        setattr_(self, "module", module)
        setattr_(self, "qualname", qualname)
        setattr_(self, "result_dir", result_dir)
        setattr_(self, "timeout_s", timeout_s)
        setattr_(self, "retries", retries)
        setattr_(self, "backoff", backoff)
        setattr_(self, "initial_delay_s", initial_delay_s)
        setattr_(self, "max_delay_s", max_delay_s)
        setattr_(self, "call_path", call_path)
        setattr_(self, "generator", generator)
        setattr_(self, "serve", serve)
        setattr_(self, "port", port)

    def retry_delay_s(self, retry: int) -> float:
        return retry_delay_s(retry, initial_s=self.initial_delay_s, backoff=self.backoff, max_s=self.max_delay_s)


def retry_delay_s(retry: int, *, initial_s: float, backoff: float, max_s: float) -> float:
    """Modal's rule: the k-th retry waits initial_delay * backoff**(k-1), capped at max_delay."""
    return float(min(initial_s * backoff ** (retry - 1), max_s))


def _help() -> str:
    lines = [USAGE, "Run one Modal function's inputs inside a Nomad allocation.\n", "options:",
             "  -h, --help            show this help message and exit"]
    for flag, (dest, kind, text) in _FLAGS.items():
        spec = flag if kind is None else f"{flag} {dest.upper()}"
        lines.append(f"  {spec:<22}{text}" if len(spec) <= 20 else f"  {spec}\n{' ' * 24}{text}")
    return "\n".join(lines) + "\n"


def _error(message: str) -> NoReturn:
    sys.stderr.write(f"{USAGE}{PROG}: error: {message}\n")
    sys.exit(INFRA_ERROR)


def parse_args(argv: Sequence[str] | None = None) -> Options:
    args = list(sys.argv[1:] if argv is None else argv)
    values: dict[str, object] = dict(_DEFAULTS)
    seen: set[str] = set()
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg in ("-h", "--help"):
            sys.stdout.write(_help())
            sys.exit(0)
        flag, eq, inline = arg.partition("=")
        if not flag.startswith("--") or flag not in _FLAGS:
            _error(f"unrecognized arguments: {arg}")
        dest, kind, _ = _FLAGS[flag]
        if kind is None:
            if eq:
                _error(f"argument {flag}: ignored explicit argument {inline!r}")
            values[dest] = True
        else:
            if eq:
                text = inline
            elif i < len(args) and not (args[i].startswith("-") and len(args[i]) > 1
                                        and not _is_number(args[i])):
                text = args[i]
                i += 1
            else:
                _error(f"argument {flag}: expected one argument")
            try:
                values[dest] = kind(text)
            except ValueError:
                _error(f"argument {flag}: invalid {_TYPE_NAMES[kind]} value: {text!r}")
        seen.add(flag)
    if "--serve" in seen:
        return _serve_options(values, seen)
    missing = [f"{flag} {_FLAGS[flag][0].upper()}" for flag in _REQUIRED if flag not in seen]
    if missing:
        _error(f"the following arguments are required: {', '.join(missing)}")
    if "--call" in seen and "--no-input" in seen:
        _error("argument --no-input: not allowed with argument --call")
    if "--call" not in seen and "--no-input" not in seen:
        _error("one of the arguments --call --no-input is required")
    timeout = values["timeout"]
    retries = values["retries"]
    assert isinstance(timeout, float) and isinstance(retries, int)
    if timeout <= 0:
        _error("--timeout must be positive")
    if retries < 0:
        _error("--retries must not be negative")
    call = values["call"]
    return Options(code_dir=str(values["code"]), module=str(values["module"]), qualname=str(values["qualname"]),
                   result_dir=str(values["result_dir"]), timeout_s=timeout, retries=retries,
                   backoff=float(values["backoff"]),  # type: ignore[arg-type]
                   initial_delay_s=float(values["initial_delay"]),  # type: ignore[arg-type]
                   max_delay_s=float(values["max_delay"]),  # type: ignore[arg-type]
                   call_path=None if values["no_input"] else (None if call is None else str(call)),
                   generator=bool(values["generator"]))


def _serve_options(values: dict[str, object], seen: set[str]) -> Options:
    """``--serve MODE``: a long-running allocation that listens on ``--port`` (no call, no result)."""
    if values["serve"] not in _SERVE_MODES:
        _error(f"argument --serve: invalid choice: {values['serve']!r} (choose from {', '.join(_SERVE_MODES)})")
    missing = [f"{flag} {_FLAGS[flag][0].upper()}" for flag in _SERVE_REQUIRED if flag not in seen]
    if missing:
        _error(f"the following arguments are required: {', '.join(missing)}")
    for flag in ("--call", "--no-input", "--generator"):
        if flag in seen:
            _error(f"argument {flag}: not allowed with argument --serve")
    port = values["port"]
    assert isinstance(port, int)
    if not 0 < port < 65536:
        _error("--port must be between 1 and 65535")
    return Options(code_dir=str(values["code"]), module=str(values["module"]), qualname=str(values["qualname"]),
                   result_dir=str(values["result_dir"]), timeout_s=float(values["timeout"]),  # type: ignore[arg-type]
                   retries=0, backoff=2.0, initial_delay_s=1.0, max_delay_s=60.0, call_path=None, generator=False,
                   serve=str(values["serve"]), port=port)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True

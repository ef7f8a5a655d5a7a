"""Entrypoint parameters → command-line options, by Modal's rules.

Runs on the client. ``foo_bar`` becomes ``--foo-bar``; a parameter without a
default is required; ``bool`` is ``--x/--no-x``; ``Literal[...]`` is a
choice; ``Optional[X]`` unwraps; a ``*args`` entrypoint receives the rest of
argv unparsed. For ``run script.py::Model.method`` the class's
``modal.parameter()`` fields and the method's parameters are one option set.
"""

from __future__ import annotations

import datetime
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

import click

from .errors import UserError


def _unwrap_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _click_type(name: str, annotation: Any, location: tuple[str, int]) -> Any:
    annotation = _unwrap_optional(annotation)
    if annotation in (inspect.Parameter.empty, Any, str):
        return click.STRING
    if annotation is int:
        return click.INT
    if annotation is float:
        return click.FLOAT
    if annotation is bool:
        return click.BOOL
    if annotation is datetime.datetime:
        return click.DateTime()
    if typing.get_origin(annotation) is typing.Literal:
        choices = typing.get_args(annotation)
        if all(isinstance(c, str) for c in choices):
            return click.Choice(list(choices))
        if all(isinstance(c, int) and not isinstance(c, bool) for c in choices):
            return _IntChoice(choices)
    raise UserError(f"Parameter `{name}` has unparseable annotation: {annotation!r}", location=location,
                    hint="entrypoint parameters may be str, int, float, bool, datetime, or Literal[...] of str/int")


class _IntChoice(click.ParamType):  # type: ignore[type-arg]
    name = "choice"

    def __init__(self, choices: tuple[int, ...]):
        self.choices = choices

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = None
        if number not in self.choices:
            self.fail(f"{value!r} is not one of {', '.join(map(str, self.choices))}", param, ctx)
        assert number is not None
        return number


def _signature(f: Callable[..., Any]) -> tuple[inspect.Signature, dict[str, Any]]:
    sig = inspect.signature(f)
    try:
        hints = typing.get_type_hints(f)
    except Exception:
        hints = {}
    return sig, hints


def parse_entrypoint_args(f: Callable[..., Any], argv: list[str], *, prog: str,
                          location: tuple[str, int]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Parse ``argv`` for ``f``; return (args, kwargs). Usage errors exit 2 through click."""
    sig, hints = _signature(f)
    params = list(sig.parameters.values())
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        if len(params) > 1:
            raise UserError(f"{prog}: an entrypoint with *args may have no other parameters", location=location)
        return tuple(argv), {}
    options: list[click.Parameter] = []
    for p in params:
        if p.kind in (p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise UserError(f"{prog}: parameter `{p.name}` cannot be a command-line option", location=location)
        options.append(_option(p.name, hints.get(p.name, p.annotation), p.default, location))
    return (), _parse(prog, options, argv, inspect.getdoc(f))


def _option(name: str, annotation: Any, default: Any, location: tuple[str, int]) -> click.Option:
    """``name`` as ``--name`` (``--name/--no-name`` for a bool); required when ``default`` is empty."""
    ctype = _click_type(name, annotation, location)
    flag = "--" + name.replace("_", "-")
    required = default is inspect.Parameter.empty
    # No default at all for a required option: click treats an explicit None as a default.
    extra: dict[str, Any] = {"required": True} if required else {"default": default, "show_default": True}
    if ctype is click.BOOL:
        return click.Option([f"{flag}/--no-{flag[2:]}", name], **extra)
    return click.Option([flag, name], type=ctype, **extra)


def parse_method_args(cls: Any, method: str, argv: list[str], *, prog: str,
                      location: tuple[str, int]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``run script.py::Model.method``: the class's parameters and the method's, pooled into one option
    set; return (the parameters for ``Model(...)``, the keyword arguments of the method)."""
    sig, hints = _signature(cls.methods[method].raw_f)
    method_params = list(sig.parameters.values())[1:]  # without self
    options: list[click.Parameter] = []
    for spec in cls.parameters.values():
        default = inspect.Parameter.empty if spec.required else spec.default
        options.append(_option(spec.name, spec.annotation, default, location))
    for p in method_params:
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL, p.POSITIONAL_ONLY):
            raise UserError(f"{prog}: parameter `{p.name}` of {cls.tag}.{method} cannot be a command-line option",
                            location=location)
        if p.name in cls.parameters:
            raise UserError(f"{cls.tag}.{method}: parameter `{p.name}` has the name of a class parameter "
                            f"of {cls.tag}; `modalc run` cannot tell them apart", location=location,
                            hint=f"rename the method's parameter, or call {cls.tag}(...).{method}.remote(...) "
                            "from a @app.local_entrypoint()")
        options.append(_option(p.name, hints.get(p.name, p.annotation), p.default, location))
    parsed = _parse(prog, options, argv, inspect.getdoc(cls.methods[method].raw_f))
    params = {k: v for k, v in parsed.items() if k in cls.parameters}
    return params, {k: v for k, v in parsed.items() if k not in cls.parameters}


def _parse(prog: str, options: list[click.Parameter], argv: list[str], doc: str | None) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    command = click.Command(prog, params=options, callback=lambda **kw: parsed.update(kw), help=doc)
    try:
        command.main(args=argv, prog_name=prog, standalone_mode=False)
    except click.exceptions.Exit as exc:  # --help
        raise SystemExit(exc.exit_code) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    return parsed

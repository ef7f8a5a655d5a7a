"""Decorators that mark a function before ``@app.function``/``@app.cls`` see it:
``method``, ``enter``, ``exit``, ``concurrent``, ``batched`` and the web decorators.

Runs on the client and inside allocations; standard library only. Each
returns a ``PartialFunction`` carrying the raw function and its flags;
stacked decorators merge their flags.
"""

from __future__ import annotations

from ._location import caller_location
from .exception import InvalidError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class PartialFunction:
    """A raw function with the flags of the decorators applied to it."""

    def __init__(self, raw_f: Callable[..., Any], flags: dict[str, Any], location: tuple[str, int]):
        self.raw_f = raw_f
        self.flags = flags
        self.location = location

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.raw_f(*args, **kwargs)

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        # Inside a class body accessed on an instance (e.g. by .local()), bind like a method.
        if obj is None:
            return self
        return self.raw_f.__get__(obj, objtype)


def _refuse_proxy_auth(decorator: str, requires_proxy_auth: bool) -> None:
    if requires_proxy_auth:
        from .exception import NotSupportedError

        raise NotSupportedError(
            f"@modal.{decorator}(requires_proxy_auth=True) is not supported by modalc: no proxy authenticates "
            "requests in front of a Nomad service", location=caller_location(),
            hint="drop it and protect the endpoint in your ingress (or check a token in the app)")


def _decorator(flag: str, settings: dict[str, Any], bare: Any = None) -> Callable[[Any], PartialFunction]:
    location = caller_location()
    if bare is not None:
        raise InvalidError(
            f"Did you forget parentheses? Suggestion: `@modal.{flag}()`.",
            hint=f"write `@modal.{flag}()`",
            location=location,
        )

    def wrap(f: Any) -> PartialFunction:
        if isinstance(f, PartialFunction):
            if flag in f.flags:
                raise InvalidError(f"@modal.{flag} is applied twice", location=location)
            return PartialFunction(f.raw_f, {**f.flags, flag: settings}, f.location)
        if not callable(f):
            raise InvalidError(f"@modal.{flag}() must decorate a function, got {type(f).__name__}",
                               location=location)
        return PartialFunction(f, {flag: settings}, location)

    return wrap


def method(_warn_parentheses_missing: Any = None, *, is_generator: bool | None = None) -> Any:
    return _decorator("method", {"is_generator": is_generator}, _warn_parentheses_missing)


def enter(_warn_parentheses_missing: Any = None, *, snap: bool = False) -> Any:
    # snap= (memory snapshots) is accepted and ignored: Nomad has no snapshots;
    # the method still runs once per container before the first input.
    return _decorator("enter", {"snap": snap}, _warn_parentheses_missing)


def exit(_warn_parentheses_missing: Any = None) -> Any:
    return _decorator("exit", {}, _warn_parentheses_missing)


def concurrent(_warn_parentheses_missing: Any = None, *, max_inputs: int | None = None,
               target_inputs: int | None = None) -> Any:
    if max_inputs is None and _warn_parentheses_missing is None:  # as Modal (target_inputs alone is for Flash)
        raise InvalidError("`@modal.concurrent()` missing required argument: `max_inputs`.",
                           hint="write `@modal.concurrent(max_inputs=N)`", location=caller_location())
    return _decorator("concurrent", {"max_inputs": max_inputs, "target_inputs": target_inputs},
                      _warn_parentheses_missing)


def batched(_warn_parentheses_missing: Any = None, *, max_batch_size: int, wait_ms: int) -> Any:
    return _decorator("batched", {"max_batch_size": max_batch_size, "wait_ms": wait_ms},
                      _warn_parentheses_missing)


def fastapi_endpoint(_warn_parentheses_missing: Any = None, *, method: str = "GET",
                     label: str | None = None, docs: bool = False, custom_domains: Any = None,
                     requires_proxy_auth: bool = False) -> Any:
    _refuse_proxy_auth("fastapi_endpoint", requires_proxy_auth)
    return _decorator("web", {"type": "fastapi_endpoint", "method": method, "label": label, "docs": docs},
                      _warn_parentheses_missing)


web_endpoint = fastapi_endpoint


def asgi_app(_warn_parentheses_missing: Any = None, *, label: str | None = None, custom_domains: Any = None,
             requires_proxy_auth: bool = False) -> Any:
    _refuse_proxy_auth("asgi_app", requires_proxy_auth)
    return _decorator("web", {"type": "asgi_app", "label": label}, _warn_parentheses_missing)


def wsgi_app(_warn_parentheses_missing: Any = None, *, label: str | None = None, custom_domains: Any = None,
             requires_proxy_auth: bool = False) -> Any:
    _refuse_proxy_auth("wsgi_app", requires_proxy_auth)
    return _decorator("web", {"type": "wsgi_app", "label": label}, _warn_parentheses_missing)


def web_server(port: int, *, startup_timeout: float = 5.0, label: str | None = None,
               custom_domains: Any = None, requires_proxy_auth: bool = False) -> Any:
    _refuse_proxy_auth("web_server", requires_proxy_auth)
    return _decorator("web", {"type": "web_server", "port": port, "startup_timeout": startup_timeout,
                              "label": label})

"""``modal.Server`` (Modal 1.6): a class whose ``@modal.enter()`` methods start an HTTP server on ``port``.

Runs on the client and inside allocations; standard library only. ``@app.server(...)`` (``app.py``)
checks the declaration as Modal's ``_Server`` does (same messages) and records a ``Server``: the
class, its options, and its HTTP settings (``web``, type ``server``). The compiler makes it a Nomad
service job (``compiler/lower/server.py``); in the allocation ``agent_runtime/web.py`` builds one
instance, runs its enter methods, waits for the port and stays up. A Server has no call API: only
``get_url()`` (``.remote`` is an ``AttributeError``, as in Modal).
"""

from __future__ import annotations

from .exception import InvalidError, NotSupportedError
from .partial import PartialFunction

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Real Modal's Server members that need Modal's control plane: an error on use, with the Nomad way.
_CLOUD_ONLY = {
    "info": "use `nomad job status <app>-<Server>`",
    "stats": "use `nomad job status` / the Nomad UI's allocation metrics",
    "logs": "use `nomad alloc logs`",
    "metrics": "use Nomad's telemetry (allocation metrics)",
    "sessions": "sticky sessions (`@modal.sessioned`) are not implemented",
    "autoscaler": "use `nomad job scale <job> <count>` (or the Nomad Autoscaler)",
    "update_autoscaler": "use `nomad job scale <job> <count>` (or the Nomad Autoscaler)",
    "object_id": "modalc has no Modal object IDs; use the Nomad job ID",
}


def validate_http_config(*, port: Any, routing_region: Any, startup_timeout: Any, exit_grace_period: Any,
                         location: tuple[str, int]) -> None:
    """Modal's ``validate_http_server_config(..., is_server=True)``, with the same messages."""
    if isinstance(port, bool) or not isinstance(port, int) or port < 1 or port > 65535:
        raise InvalidError("Port must be a positive integer between 1 and 65535.", location=location)
    if isinstance(startup_timeout, bool) or not isinstance(startup_timeout, (int, float)) or startup_timeout <= 0:
        raise InvalidError("The `startup_timeout` argument must be positive.", location=location)
    if exit_grace_period is not None:
        if isinstance(exit_grace_period, bool) or not isinstance(exit_grace_period, int) or exit_grace_period < 0:
            raise InvalidError("The `exit_grace_period` argument must be non-negative.", location=location)
        if exit_grace_period > 3600:
            raise InvalidError("The `exit_grace_period` argument must not exceed 3600 seconds (1 hour).",
                               location=location)
    if not routing_region:
        raise InvalidError("The `routing_region` argument must be passed.", location=location)


def validate_autoscaling(*, target_concurrency: Any, max_concurrency: Any, scaleup_window: Any,
                         experimental_options: Any, location: tuple[str, int]) -> None:
    """The checks of Modal's ``App.server`` on its concurrency and window settings."""
    if target_concurrency is not None and (isinstance(target_concurrency, bool)
                                           or not isinstance(target_concurrency, (int, float))
                                           or target_concurrency < 0):
        raise InvalidError("The `target_concurrency` argument must be a non-negative number.", location=location)
    if max_concurrency is not None:
        if experimental_options is not None and "max_concurrency" in experimental_options:
            raise InvalidError("`max_concurrency` cannot be set both as an app.server parameter and an "
                               "experimental option.", location=location)
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, (int, float)):
            raise InvalidError(f"The `max_concurrency` argument must be a number, not "
                               f"{type(max_concurrency).__name__}.", location=location)
        if not isinstance(max_concurrency, int):
            raise InvalidError("The `max_concurrency` argument must be an integer.", location=location)
        if max_concurrency < 0:
            raise InvalidError("The `max_concurrency` argument must be non-negative.", location=location)
        if max_concurrency and target_concurrency is not None and target_concurrency > max_concurrency:
            raise InvalidError("The `target_concurrency` argument cannot be greater than `max_concurrency`.",
                               location=location)
    if scaleup_window is not None and scaleup_window <= 0:
        raise InvalidError("`scaleup_window` must be > 0", location=location)


def _partials(user_cls: type, flag: str) -> list[str]:
    return [n for n, v in vars(user_cls).items() if isinstance(v, PartialFunction) and flag in v.flags]


def validate_server_class(wrapped: Any, enable_memory_snapshot: bool, location: tuple[str, int]) -> type:
    """Modal's ``_Server._validate_*`` checks; returns the user's class."""
    from .cls import _Parameter

    flags: dict[str, Any] = {}
    user_cls = wrapped
    if isinstance(wrapped, PartialFunction) and isinstance(wrapped.raw_f, type):  # e.g. @modal.concurrent
        flags, user_cls = wrapped.flags, wrapped.raw_f
    if not isinstance(user_cls, type):
        raise InvalidError("The @app.server() decorator must be used on a class.", location=location,
                           hint="for a function that starts a server, use @app.function() with "
                           "@modal.web_server(port)")
    name = user_cls.__name__
    if "concurrent" in flags:
        raise InvalidError(f"Server class {name} cannot be decorated with `@modal.concurrent()`. "
                           "Please use `target_concurrency` param instead.", location=location)
    if "web" in flags:
        raise InvalidError(f"Server class {name} cannot be decorated with `@modal.web_server()`. "
                           "Servers already expose HTTP endpoints.", location=location)
    if flags:
        raise InvalidError(f"@modal.{sorted(flags)[0]}() cannot decorate a Server class", location=location)
    if any(isinstance(v, _Parameter) for v in vars(user_cls).values()):
        raise InvalidError(f"Server class {name} cannot use modal.parameter(). "
                           "Servers do not support parameterization.", location=location)
    enters = _partials(user_cls, "enter")
    if not enters:
        raise InvalidError("Server class must have an @modal.enter() to setup the server.", location=location)
    if _partials(user_cls, "method") or _partials(user_cls, "batched"):
        raise InvalidError(f"Server class {name} cannot have `@modal.method()` decorated functions. "
                           "Servers only expose HTTP endpoints.", location=location)
    if _partials(user_cls, "web"):
        raise InvalidError(f"Server class {name} cannot have web endpoint methods. "
                           "Servers already expose HTTP endpoints.", location=location)
    snapped = [n for n in enters if vars(user_cls)[n].flags["enter"].get("snap")]
    if snapped and not enable_memory_snapshot:
        raise InvalidError("Server must have `enable_memory_snapshot=True` to use `snap=True` on "
                           "`@modal.enter` methods.", location=location)
    if user_cls.__init__ is not object.__init__:  # type: ignore[misc]
        raise InvalidError(f"Server class {name} cannot have a custom __init__ method. "
                           "Use @modal.enter() for initialization logic instead.", location=location)
    return user_cls


class Server:
    """A Server registered with ``@app.server(...)``, or looked up with ``Server.from_name``.

    ``options`` are the decorator's keywords that differ from Modal's defaults (real names);
    ``web`` the HTTP settings the runtime serves: ``{"type": "server", "port", "startup_timeout",
    "exit_grace_period"}``."""

    def __init__(self, *, app: Any, user_cls: type | None, tag: str, options: dict[str, Any],
                 web: dict[str, Any] | None, location: tuple[str, int], app_name: str | None = None):
        self.app = app
        self.user_cls = user_cls
        self.tag = tag
        self.options = options
        self.web = web
        self.location = location
        self._app_name = app_name
        if user_cls is not None:
            self.__doc__ = user_cls.__doc__
            self.__name__ = user_cls.__name__
            self.__qualname__ = user_cls.__qualname__
            self.__module__ = user_cls.__module__

    @property
    def app_name(self) -> str | None:
        return self._app_name if self._app_name is not None else getattr(self.app, "name", None)

    def lifecycle(self, flag: str) -> list[str]:
        """Names of the methods marked ``@modal.enter()`` or ``@modal.exit()``, in class order."""
        return _partials(self.user_cls, flag) if self.user_cls is not None else []

    def get_url(self) -> str | None:
        """The URL of this Server: its service job's address in this run, or the deployed app's."""
        from .functions import Target, _invoker

        if self._app_name is not None:  # Server.from_name: the deployed app says
            url = _invoker().deployed_web_url(self._app_name, self.tag)
            return None if url is None else str(url)
        return str(_invoker().web_url(Target(app_name=self.app_name, tag=self.tag)))

    def hydrate(self, client: Any = None) -> Server:
        return self

    @classmethod
    def from_name(cls, app_name: str, name: str, *, environment_name: str | None = None,
                  client: Any = None) -> Server:
        """A Server of a deployed app (``modalc deploy``), found by its app's and its own name."""
        return cls(app=None, user_cls=None, tag=name, options={}, web=None, location=("<from_name>", 0),
                   app_name=app_name)

    @classmethod
    def from_id(cls, server_id: str, *, client: Any = None) -> Server:
        raise NotSupportedError("modal.Server.from_id() needs Modal's object IDs, which modalc does not have",
                                hint="use modal.Server.from_name(app_name, name)")

    def __getattr__(self, name: str) -> Any:
        if name in _CLOUD_ONLY:
            raise NotSupportedError(f"Server.{name} needs Modal's control plane; {_CLOUD_ONLY[name]}")
        raise AttributeError(f"'Server' object has no attribute {name!r}"
                             + (" (a Server only serves HTTP: use get_url())" if not name.startswith("_") else ""))

    def __repr__(self) -> str:
        return f"Server({self.tag!r})"

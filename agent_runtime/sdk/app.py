"""``modal.App``: the registry of an app's functions, classes and entrypoints.

Runs on the client and inside allocations; standard library only. Decorators
record what the user declared (options by name, with the source location);
nothing is validated against Nomad here.
"""

from __future__ import annotations

from ._location import caller_location, definition_location
from ._options import CLS_KEYWORDS, FUNCTION_KEYWORDS, check_keywords, reject_bare_decorator
from .cls import Cls, make_cls
from .exception import InvalidError
from .functions import Function
from .image import Image
from .partial import PartialFunction

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from typing import Any

    from .server import Server

# Modal 1.6's App.server keywords and their defaults: options the user set are those that differ.
SERVER_DEFAULTS: dict[str, Any] = {
    "image": None, "env": None, "secrets": None, "gpu": None, "serialized": False, "volumes": {}, "cpu": None,
    "memory": None, "ephemeral_disk": None, "target_concurrency": None, "max_concurrency": None,
    "min_containers": None, "max_containers": None, "buffer_containers": None, "scaleup_window": None,
    "scaledown_window": None, "startup_timeout": 30, "name": None, "port": 8000, "unauthenticated": False,
    "h2_enabled": False, "exit_grace_period": 0, "routing_region": "us-east", "compute_region": None,
    "cloud": None, "nonpreemptible": False, "proxy": None, "i6pn": None, "enable_memory_snapshot": False,
    "include_source": None, "experimental_options": None,
}


class LocalEntrypoint:
    """A function marked ``@app.local_entrypoint()``: runs on the client."""

    def __init__(self, raw_f: Callable[..., Any], app: App, tag: str, location: tuple[str, int]):
        self.raw_f = raw_f
        self.app = app
        self.tag = tag
        self.location = location
        self.__name__ = getattr(raw_f, "__name__", tag)
        self.__doc__ = raw_f.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.raw_f(*args, **kwargs)

    @property
    def info(self) -> Any:
        return self.raw_f


class App:
    """A Modal app: a name, defaults for its functions, and what they declare."""

    def __init__(self, name: str | None = None, *, image: Image | None = None, secrets: Any = (),
                 volumes: dict[str, Any] | None = None, include_source: bool = True,
                 tags: dict[str, str] | None = None, **kwargs: Any):
        location = caller_location()
        if kwargs:
            check_keywords("modal.App", kwargs, frozenset(), location)
        if name is not None and not isinstance(name, str):
            raise InvalidError(f"App name must be a string, got {type(name).__name__}", location=location)
        self._name = name
        self._image = image
        self.secrets = tuple(secrets or ())
        self.volumes = dict(volumes or {})
        self.include_source = include_source
        self.tags = dict(tags or {})
        self.location = location
        self.registered_functions: dict[str, Function] = {}
        self.registered_classes: dict[str, Cls] = {}
        self.registered_entrypoints: dict[str, LocalEntrypoint] = {}
        self.registered_servers: dict[str, Server] = {}  # @app.server classes (Modal 1.6)

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def image(self) -> Image | None:
        return self._image

    @image.setter
    def image(self, value: Image) -> None:
        self._image = value

    @property
    def description(self) -> str | None:
        return self._name

    def function(self, _warn_parentheses_missing: Any = None, **options: Any) -> Callable[[Any], Function]:
        location = caller_location()
        reject_bare_decorator("@app.function", _warn_parentheses_missing, location)
        checked = check_keywords("@app.function", options, FUNCTION_KEYWORDS, location)

        def wrap(f: Any) -> Function:
            web: dict[str, Any] | None = None
            partial: dict[str, Any] = {}
            if isinstance(f, PartialFunction):
                web = f.flags.get("web")
                partial = {k: v for k, v in f.flags.items() if k in ("concurrent", "batched")}
                other = set(f.flags) - {"web", "concurrent", "batched"}
                if other:
                    raise InvalidError(f"@modal.{sorted(other)[0]}() is only valid on a method of an @app.cls class",
                                       location=location)
                f = f.raw_f
            if isinstance(f, Function):
                raise InvalidError("@app.function() is applied twice", location=location)
            if isinstance(f, type):  # inspect.isclass, without importing inspect
                raise InvalidError("@app.function() decorates functions; use @app.cls() for a class",
                                   location=location)
            if not callable(f):
                raise InvalidError("@app.function() must decorate a function", location=location)
            tag = checked.get("name") or f.__name__
            if tag in self.registered_functions or tag in self.registered_classes:
                import warnings

                warnings.warn_explicit(f"function {tag!r} is registered twice; the later one wins",
                                       UserWarning, location[0], location[1])
            fn = Function(app=self, tag=tag, raw_f=f, options=checked, location=location, web=web,
                          partial=partial)
            fn.definition = definition_location(f)  # type: ignore[attr-defined]
            self.registered_functions[tag] = fn
            return fn

        return wrap

    def cls(self, _warn_parentheses_missing: Any = None, **options: Any) -> Callable[[type], Cls]:
        location = caller_location()
        reject_bare_decorator("@app.cls", _warn_parentheses_missing, location)
        checked = check_keywords("@app.cls", options, CLS_KEYWORDS, location)

        def wrap(user_cls: type) -> Cls:
            cls = make_cls(self, user_cls, checked, location)
            self.registered_classes[cls.tag] = cls
            return cls

        return wrap

    def local_entrypoint(self, _warn_parentheses_missing: Any = None, *,
                         name: str | None = None) -> Callable[[Callable[..., Any]], LocalEntrypoint]:
        location = caller_location()
        reject_bare_decorator("@app.local_entrypoint", _warn_parentheses_missing, location)

        def wrap(f: Callable[..., Any]) -> LocalEntrypoint:
            tag = name or f.__name__
            entry = LocalEntrypoint(f, self, tag, location)
            self.registered_entrypoints[tag] = entry
            return entry

        return wrap

    def server(  # the keywords and defaults of Modal 1.6's App.server, in its order
        self, _warn_parentheses_missing: Any = None, /, *, image: Image | None = None,
        env: dict[str, str | None] | None = None, secrets: Any = None, gpu: Any = None, serialized: bool = False,
        volumes: dict[Any, Any] = {}, cpu: Any = None, memory: Any = None,  # noqa: B006 - Modal's default
        ephemeral_disk: int | None = None, target_concurrency: float | None = None,
        max_concurrency: int | None = None, min_containers: int | None = None, max_containers: int | None = None,
        buffer_containers: int | None = None, scaleup_window: int | None = None,
        scaledown_window: int | None = None, startup_timeout: int = 30, name: str | None = None,
        port: int = 8000, unauthenticated: bool = False, h2_enabled: bool = False, exit_grace_period: int = 0,
        routing_region: str = "us-east", compute_region: Any = None, cloud: str | None = None,
        nonpreemptible: bool = False, proxy: Any = None, i6pn: bool | None = None,
        enable_memory_snapshot: bool = False, include_source: bool | None = None,
        experimental_options: dict[str, Any] | None = None, **unknown: Any,
    ) -> Callable[[Any], Server]:
        """``@app.server(port=...)`` on a class whose ``@modal.enter()`` methods start an HTTP server."""
        from .server import Server, validate_autoscaling, validate_http_config, validate_server_class

        location = caller_location()
        reject_bare_decorator("@app.server", _warn_parentheses_missing, location)
        if unknown:  # a misspelling: the same error (and suggestion) as @app.function's
            check_keywords("@app.server", unknown, frozenset(SERVER_DEFAULTS), location)
            raise InvalidError(f"@app.server got an unexpected keyword argument `{sorted(unknown)[0]}`",
                               hint="Modal 0.x names (keep_warm= ...) are not accepted by @app.server",
                               location=location)
        validate_http_config(port=port, routing_region=routing_region, startup_timeout=startup_timeout,
                             exit_grace_period=exit_grace_period, location=location)
        validate_autoscaling(target_concurrency=target_concurrency, max_concurrency=max_concurrency,
                             scaleup_window=scaleup_window, experimental_options=experimental_options,
                             location=location)
        given = dict(locals())
        defaults = SERVER_DEFAULTS
        options = {k: given[k] for k in defaults if given[k] != defaults[k]}  # what the user set, real names
        web = {"type": "server", "port": port, "startup_timeout": startup_timeout,
               "exit_grace_period": exit_grace_period, "label": None}

        def wrap(wrapped: Any) -> Server:
            user_cls = validate_server_class(wrapped, enable_memory_snapshot, location)
            tag = name or user_cls.__name__
            server = Server(app=self, user_cls=user_cls, tag=tag, options=options, web=web, location=location)
            self.registered_servers[tag] = server
            return server

        return wrap

    def include(self, other_app: App, inherit_tags: bool = True) -> App:
        self.registered_functions.update(other_app.registered_functions)
        self.registered_classes.update(other_app.registered_classes)
        self.registered_servers.update(other_app.registered_servers)
        if inherit_tags:  # this App's tags win
            self.tags = {**other_app.tags, **self.tags}
        return self

    def run(self, *, name: str | None = None, client: Any = None, detach: bool = False, interactive: bool = False,
            environment_name: str | None = None, show_progress: bool | None = None) -> AbstractContextManager[App]:
        """Run this app ephemerally from the user's own script (``python script.py``)."""
        from contextlib import contextmanager  # not at import: allocations import this module at start-up

        # Imported here: the compiler is a client-side package, never loaded in allocations.
        from compiler.run_context import run_app

        @contextmanager
        def running() -> Any:
            with run_app(self, detach=detach):
                yield self

        return running()

    def deploy(self, *, name: str | None = None, environment_name: str | None = None, tag: str = "",
               client: Any = None, strategy: str = "rolling") -> App:
        from compiler.run_context import deploy_app

        deploy_app(self, name=name)
        return self

    def __repr__(self) -> str:
        return f"App({self._name!r})"


class Stub(App):
    """Deprecated alias of ``App`` (Modal 0.x)."""

    def __init__(self, *args: Any, **kwargs: Any):
        location = caller_location()
        import warnings

        warnings.warn_explicit("modal.Stub is deprecated; use modal.App", DeprecationWarning,
                               location[0], location[1])
        super().__init__(*args, **kwargs)
        self.location = location

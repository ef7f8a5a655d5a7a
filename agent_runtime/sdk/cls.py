"""``@app.cls``: Modal classes, their parameters and their methods.

Runs on the client and inside allocations; standard library only. A ``Cls``
records the user's class and options; ``Cls(**params)`` gives an ``Obj``
whose methods carry the Modal call API, with the class name, the method and
the parameters travelling with each call.
"""

from __future__ import annotations

from .._frozen import Frozen
from ._location import caller_location
from ._options import CLS_KEYWORDS, check_keywords
from .exception import InvalidError
from .functions import Target, _Invocable, _invoker, _is_generator_function
from .partial import PartialFunction

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_MISSING = object()
# How an allocation groups its inputs: ``@modal.concurrent`` / ``@modal.batched`` settings, and the
# ``with_concurrency`` / ``with_batching`` overrides of a variant.
GROUPING = ("concurrent", "batched")
GROUPING_ENV = "MODALC_INPUT_GROUPING"  # a variant's grouping, for the worker (compiler/variants.py)


class _Parameter:
    """``modal.parameter(default=...)``: a class field set at construction."""

    def __init__(self, default: Any, init: bool):
        self.default = default
        self.init = init


def parameter(*, default: Any = _MISSING, init: bool = True) -> Any:
    return _Parameter(default, init)


class ParameterSpec(Frozen):
    __slots__ = ("annotation", "default", "name")
    _compared = ("name", "annotation", "default")

    name: str
    annotation: Any
    default: Any

    def __init__(self, name: str, annotation: Any, default: Any = _MISSING) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "annotation", annotation)
        object.__setattr__(self, "default", default)

    @property
    def required(self) -> bool:
        return self.default is _MISSING


class Method(_Invocable):
    """One method of a parameterized class instance, with the call API."""

    def __init__(self, obj: Obj, name: str):
        self._obj = obj
        self._name = name
        self._init_call_api()

    def _target(self) -> Target:
        cls = self._obj._cls
        return Target(app_name=cls.app_name, tag=cls.tag, method=self._name,
                      params=tuple(sorted(self._obj._params.items())),
                      options=tuple(sorted(cls.overrides.items())))

    @property
    def is_generator(self) -> bool:
        """A generator method: its values come back through ``remote_gen``."""
        pf = self._obj._cls.methods.get(self._name)
        return pf is not None and (bool(pf.flags.get("method", {}).get("is_generator"))
                                   or _is_generator_function(pf.raw_f))

    def get_web_url(self) -> str | None:
        """A web method's URL: its own service job, tag ``Class.method`` (compiler/graph.py)."""
        cls = self._obj._cls
        pf = cls.methods.get(self._name)
        if pf is None or "web" not in pf.flags:
            return None
        return str(_invoker().web_url(Target(app_name=cls.app_name, tag=f"{cls.tag}.{self._name}")))

    @property
    def web_url(self) -> str | None:
        return self.get_web_url()

    def local(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._obj._local_instance(), self._name)(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.local(*args, **kwargs)


class Obj:
    """``Model(param=...)``: parameters bound, methods callable remotely."""

    def __init__(self, cls: Cls, params: dict[str, Any]):
        self._cls = cls
        self._params = params
        self._instance: Any = None

    def _local_instance(self) -> Any:
        if self._instance is None:
            user_cls = self._cls.user_cls
            if user_cls is None:
                raise InvalidError(f"{self._cls.tag} was looked up by name; it has no local body")
            instance: Any = object.__new__(user_cls)
            for key, value in self._params.items():
                setattr(instance, key, value)
            for name in self._cls.lifecycle("enter"):
                getattr(instance, name)()
            self._instance = instance
        return self._instance

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._cls.user_cls is not None and name not in self._cls.methods:
            raise AttributeError(f"{self._cls.tag} has no @modal.method() named {name!r}")
        return Method(self, name)


class Cls:
    """A class registered with ``@app.cls``."""

    def __init__(self, *, app: Any, user_cls: type | None, tag: str, options: dict[str, Any],
                 location: tuple[str, int], app_name: str | None = None):
        self.app = app
        self.user_cls = user_cls
        self.tag = tag
        self.options = options
        self.location = location
        self._app_name = app_name
        self.overrides: dict[str, Any] = {}  # what with_options() changed: the variant's own job
        self.methods: dict[str, PartialFunction] = {}
        self.parameters: dict[str, ParameterSpec] = {}
        self.partial: dict[str, Any] = {}
        if user_cls is not None:
            self._inspect(user_cls)

    @property
    def app_name(self) -> str | None:
        return self._app_name if self._app_name is not None else getattr(self.app, "name", None)

    def _inspect(self, user_cls: type) -> None:
        import typing  # only classes need it

        try:
            hints = typing.get_type_hints(user_cls)
        except Exception:
            hints = dict(getattr(user_cls, "__annotations__", {}))
        for name, value in list(vars(user_cls).items()):
            if isinstance(value, _Parameter):
                self.parameters[name] = ParameterSpec(name, hints.get(name, str), value.default)
                if value.default is not _MISSING:
                    setattr(user_cls, name, value.default)
            elif isinstance(value, PartialFunction):
                if "method" in value.flags or "web" in value.flags or "batched" in value.flags:
                    self.methods[name] = value
                if "concurrent" in value.flags:  # Modal puts it on the class; on a method it means the same
                    self.partial["concurrent"] = value.flags["concurrent"]
                setattr(user_cls, name, value)  # @modal.batched stays with its method

    def lifecycle(self, flag: str) -> list[str]:
        """Names of the methods marked ``@modal.enter()`` or ``@modal.exit()``, in class order."""
        if self.user_cls is None:
            return []
        return [n for n, v in vars(self.user_cls).items() if isinstance(v, PartialFunction) and flag in v.flags]

    def __call__(self, *args: Any, **kwargs: Any) -> Obj:
        if args:
            raise InvalidError(f"{self.tag}(...) takes parameters by keyword only", location=caller_location())
        if self.user_cls is None:
            return Obj(self, dict(kwargs))
        unknown = sorted(set(kwargs) - set(self.parameters))
        if unknown:
            raise InvalidError(f"{self.tag} has no parameter {unknown[0]!r}",
                               hint=f"declare it as `{unknown[0]}: str = modal.parameter()`",
                               location=caller_location())
        params: dict[str, Any] = {}
        for name, spec in self.parameters.items():
            if name in kwargs:
                params[name] = kwargs[name]
            elif spec.required:
                raise InvalidError(f"{self.tag} needs the parameter {name!r}", location=caller_location())
            else:
                params[name] = spec.default
        return Obj(self, params)

    def with_options(self, **options: Any) -> Cls:
        location = caller_location()
        checked = check_keywords("Cls.with_options", options, CLS_KEYWORDS, location)
        clone = Cls(app=self.app, user_cls=None, tag=self.tag, options={**self.options, **checked},
                    location=self.location, app_name=self._app_name)
        clone.user_cls, clone.methods, clone.parameters = self.user_cls, self.methods, self.parameters
        clone.partial = self.partial
        clone.overrides = {**self.overrides, **checked}
        return clone

    def _with_grouping(self, key: str, settings: dict[str, Any]) -> Cls:
        """A variant whose inputs are grouped differently: ``concurrent`` or ``batched`` replaces both, as an
        override (sorted items, hashable), so it compiles to its own job (compiler/variants.py)."""
        clone = self.with_options()
        clone.partial = {**{k: v for k, v in self.partial.items() if k not in GROUPING}, key: settings}
        clone.overrides = {**{k: v for k, v in self.overrides.items() if k not in GROUPING},
                           key: tuple(sorted(settings.items()))}
        return clone

    def with_concurrency(self, *, max_inputs: int, target_inputs: int | None = None) -> Cls:
        return self._with_grouping("concurrent", {"max_inputs": max_inputs, "target_inputs": target_inputs})

    def with_batching(self, *, max_batch_size: int, wait_ms: int) -> Cls:
        return self._with_grouping("batched", {"max_batch_size": max_batch_size, "wait_ms": wait_ms})

    @staticmethod
    def from_name(app_name: str, name: str, *, version: int | None = None, environment_name: str | None = None,
                  client: Any = None) -> Cls:
        return Cls(app=None, user_cls=None, tag=name, options={}, location=("<from_name>", 0),
                   app_name=app_name)

    lookup = from_name

    def hydrate(self, client: Any = None) -> Cls:
        return self

    def __repr__(self) -> str:
        return f"Cls({self.tag!r})"


def make_cls(app: Any, user_cls: Any, options: dict[str, Any], location: tuple[str, int]) -> Cls:
    flags: dict[str, Any] = {}
    if isinstance(user_cls, PartialFunction) and isinstance(user_cls.raw_f, type):  # @modal.concurrent on the class
        flags, user_cls = user_cls.flags, user_cls.raw_f
        other = sorted(set(flags) - {"concurrent"})
        if other:
            raise InvalidError(f"@modal.{other[0]}() cannot decorate a class", location=location)
    if not isinstance(user_cls, type):
        raise InvalidError("@app.cls() must decorate a class", location=location)
    cls = Cls(app=app, user_cls=user_cls, tag=user_cls.__name__, options=options, location=location)
    cls.partial.update(flags)
    return cls


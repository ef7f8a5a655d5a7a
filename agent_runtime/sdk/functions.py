"""``modal.Function`` and ``modal.FunctionCall``: the client side of Modal's call API.

Runs on the client and inside allocations; standard library only. Every
remote call is handed to the invoker the backend installed in ``_state``;
this module only shapes arguments and results the way Modal's API does.
"""

from __future__ import annotations

import sys
from types import CodeType, FunctionType, MethodType

from .._frozen import Frozen
from . import _state
from .exception import ExecutionError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
    from typing import Any, TypeVar

    _T = TypeVar("_T")

# inspect.CO_GENERATOR and inspect.CO_ASYNC_GENERATOR: inspect costs ~8 ms to import, and every
# allocation declares its functions at start-up.
_CO_GENERATOR = 0x20
_CO_ASYNC_GENERATOR = 0x200


def _is_generator_function(f: Any) -> bool:
    """``inspect.isgeneratorfunction(f) or inspect.isasyncgenfunction(f)``, without inspect: the
    same unwrapping of bound methods and functools.partial, then the code flags."""
    while isinstance(f, MethodType):
        f = f.__func__
    functools = sys.modules.get("functools")  # no partial exists unless functools was imported
    if functools is not None:
        while isinstance(f, functools.partial):
            f = f.func
    code = getattr(f, "__code__", None)
    if not isinstance(f, FunctionType) and not (isinstance(code, CodeType) and callable(f)):
        return False
    return bool(code.co_flags & (_CO_GENERATOR | _CO_ASYNC_GENERATOR))  # type: ignore[union-attr]


def _to_thread(func: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Awaitable[_T]:
    # asyncio costs tens of ms to import and only the .aio variants need it: every
    # allocation imports this module at start-up.
    import asyncio

    return asyncio.to_thread(func, *args, **kwargs)


class Target(Frozen):
    """What a call runs: a function of an app, or a method of a class with its parameters.

    ``options`` are a ``Cls.with_options(...)`` variant's overrides (sorted items; empty for the
    class as declared): the variant runs as its own job, compiled on first use."""

    __slots__ = ("app_name", "method", "options", "params", "tag")
    _compared = ("app_name", "tag", "method", "params", "options")

    app_name: str | None
    tag: str  # the function's name in its app, or the class name
    method: str | None
    params: tuple[tuple[str, Any], ...]
    options: tuple[tuple[str, Any], ...]

    def __init__(self, app_name: str | None, tag: str, method: str | None = None,
                 params: tuple[tuple[str, Any], ...] = (), options: tuple[tuple[str, Any], ...] = ()) -> None:
        object.__setattr__(self, "app_name", app_name)
        object.__setattr__(self, "tag", tag)
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "options", options)


def _invoker() -> Any:
    inv = _state.invoker()
    if inv is None:
        if not _state.is_local():  # a call from inside an allocation (agent_runtime/nested), set up on first use
            from ..nested import get_invoker

            inv = get_invoker()
            if inv is not None:
                return inv
            raise ExecutionError(
                "this allocation has no channel for calling other functions: on Nomad they go through the Task "
                "API socket ${NOMAD_SECRETS_DIR}/api.sock (Nomad >= 1.5, with `identity { file = true }` in the "
                "task, as `modalc build` emits it), which this task does not have"
            )
        raise ExecutionError(
            "this function is not running in an app: use `modalc run script.py`, "
            "or call it inside `with app.run():`"
        )
    return inv


class _WithAio:
    """A call method with Modal's ``.aio`` async twin (``f.remote.aio(...)``)."""

    __slots__ = ("_aio", "_sync")

    def __init__(self, sync: Callable[..., Any], aio: Callable[..., Any]):
        self._sync = sync
        self._aio = aio

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._sync(*args, **kwargs)

    @property
    def aio(self) -> Callable[..., Any]:
        return self._aio


async def _agen(iterator_factory: Callable[[], Iterator[Any]]) -> AsyncIterator[Any]:
    iterator = await _to_thread(iterator_factory)
    sentinel = object()
    while True:
        item = await _to_thread(next, iterator, sentinel)
        if item is sentinel:
            return
        yield item


class _Invocable:
    """The call API shared by functions and bound class methods."""

    def _target(self) -> Target:
        raise NotImplementedError  # pragma: no cover - abstract

    def _init_call_api(self) -> None:
        self.remote = _WithAio(self._remote, self._remote_aio)
        self.map = _WithAio(self._map, self._map_aio)
        self.starmap = _WithAio(self._starmap, self._starmap_aio)
        self.for_each = _WithAio(self._for_each, self._for_each_aio)
        self.spawn = _WithAio(self._spawn, self._spawn_aio)
        self.remote_gen = _WithAio(self._remote_gen, self._remote_gen_aio)
        self.spawn_map = _WithAio(self._spawn_map, self._spawn_map_aio)

    def _remote(self, *args: Any, **kwargs: Any) -> Any:
        return _invoker().call(self._target(), args, kwargs)

    async def _remote_aio(self, *args: Any, **kwargs: Any) -> Any:
        return await _to_thread(self._remote, *args, **kwargs)

    def _remote_gen(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return iter(_invoker().call_generator(self._target(), args, kwargs))

    def _remote_gen_aio(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        return _agen(lambda: self._remote_gen(*args, **kwargs))

    def _starmap(self, input_iterator: Iterable[Any], *, kwargs: dict[str, Any] | None = None,
                 order_outputs: bool = True, return_exceptions: bool = False,
                 wrap_returned_exceptions: bool | None = None) -> Iterator[Any]:
        return iter(_invoker().map(self._target(), map(tuple, input_iterator), dict(kwargs or {}),
                                   order_outputs=order_outputs, return_exceptions=return_exceptions))

    def _starmap_aio(self, input_iterator: Iterable[Any], **options: Any) -> AsyncIterator[Any]:
        return _agen(lambda: self._starmap(input_iterator, **options))

    def _map(self, *input_iterators: Iterable[Any], kwargs: dict[str, Any] | None = None,
             order_outputs: bool = True, return_exceptions: bool = False,
             wrap_returned_exceptions: bool | None = None) -> Iterator[Any]:
        if not input_iterators:
            raise ExecutionError("map() needs at least one iterable of inputs")
        return self._starmap(zip(*input_iterators, strict=False), kwargs=kwargs, order_outputs=order_outputs,
                             return_exceptions=return_exceptions)

    def _map_aio(self, *input_iterators: Iterable[Any], **options: Any) -> AsyncIterator[Any]:
        return _agen(lambda: self._map(*input_iterators, **options))

    def _for_each(self, *input_iterators: Iterable[Any], kwargs: dict[str, Any] | None = None,
                  ignore_exceptions: bool = False) -> None:
        for _ in self._map(*input_iterators, kwargs=kwargs, order_outputs=False,
                           return_exceptions=ignore_exceptions):
            pass

    async def _for_each_aio(self, *input_iterators: Iterable[Any], **options: Any) -> None:
        await _to_thread(self._for_each, *input_iterators, **options)

    def _spawn(self, *args: Any, **kwargs: Any) -> FunctionCall:
        return FunctionCall(_invoker().spawn(self._target(), args, kwargs))

    async def _spawn_aio(self, *args: Any, **kwargs: Any) -> FunctionCall:
        return await _to_thread(self._spawn, *args, **kwargs)

    def _spawn_map(self, *input_iterators: Iterable[Any], kwargs: dict[str, Any] | None = None) -> None:
        for args in zip(*input_iterators, strict=False):
            self._spawn(*args, **(kwargs or {}))

    async def _spawn_map_aio(self, *input_iterators: Iterable[Any], **options: Any) -> None:
        await _to_thread(self._spawn_map, *input_iterators, **options)


class Function(_Invocable):
    """A function registered on an App with ``@app.function``.

    Attributes fixed at declaration: ``tag`` (its name in the app), ``raw_f``,
    ``options`` (the decorator's keywords, names checked), ``location``
    (file, line of the decorator), ``web`` (a web decorator's settings) and
    ``partial`` (the settings of ``@modal.concurrent``/``@modal.batched``).
    """

    def __init__(self, *, app: Any, tag: str, raw_f: Callable[..., Any] | None, options: dict[str, Any],
                 location: tuple[str, int], web: dict[str, Any] | None = None,
                 partial: dict[str, Any] | None = None, app_name: str | None = None):
        self.app = app
        self.tag = tag
        self.raw_f = raw_f
        self.options = options
        self.location = location
        self.web = web
        self.partial = partial or {}
        self._app_name = app_name
        self.is_generator = bool(options.get("is_generator")) or (
            raw_f is not None and _is_generator_function(raw_f)
        )
        self._init_call_api()
        if raw_f is not None:
            self.__doc__ = raw_f.__doc__
            self.__name__ = getattr(raw_f, "__name__", tag)
            self.__qualname__ = getattr(raw_f, "__qualname__", tag)
            self.__module__ = getattr(raw_f, "__module__", "")

    def _target(self) -> Target:
        app_name = self._app_name if self._app_name is not None else getattr(self.app, "name", None)
        return Target(app_name=app_name, tag=self.tag)

    def local(self, *args: Any, **kwargs: Any) -> Any:
        """Run the Python function here, in this process."""
        if self.raw_f is None:
            raise ExecutionError(f"{self.tag} was looked up by name; it has no local body")
        return self.raw_f(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.local(*args, **kwargs)

    def get_web_url(self) -> str | None:
        if self._app_name is not None:  # Function.from_name: the deployed app says (None: not a web function)
            url = _invoker().deployed_web_url(self._app_name, self.tag)
            return None if url is None else str(url)
        if self.web is None:
            return None
        return str(_invoker().web_url(self._target()))

    @property
    def web_url(self) -> str | None:
        return self.get_web_url()

    @staticmethod
    def from_name(app_name: str, name: str, *, version: int | None = None, environment_name: str | None = None,
                  client: Any = None) -> Function:
        """A function of a deployed app, called through the backend by name."""
        return Function(app=None, tag=name, raw_f=None, options={}, location=("<from_name>", 0),
                        app_name=app_name)

    lookup = from_name

    def hydrate(self, client: Any = None) -> Function:
        return self

    def __repr__(self) -> str:
        return f"Function({self.tag!r})"


class FunctionCall:
    """A spawned call: ``.get()`` its result later, from this or another process."""

    def __init__(self, object_id: str):
        self.object_id = object_id

    def get(self, timeout: float | None = None, *, index: int = 0) -> Any:
        if index != 0:
            from .exception import NotSupportedError

            raise NotSupportedError(f"FunctionCall.get(index={index!r}) is not supported by modalc: a modalc "
                                    "FunctionCall is one input (spawn_map gives no FunctionCall)")
        return _invoker().get(self.object_id, timeout)

    async def _get_aio(self, timeout: float | None = None) -> Any:
        return await _to_thread(self.get, timeout)

    def cancel(self, terminate_containers: bool = False) -> None:
        _invoker().cancel(self.object_id)

    @staticmethod
    def from_id(function_call_id: str, client: Any = None) -> FunctionCall:
        return FunctionCall(function_call_id)

    def hydrate(self, client: Any = None) -> FunctionCall:
        return self

    @staticmethod
    def gather(*function_calls: FunctionCall) -> list[Any]:
        return [call.get() for call in function_calls]

    def __repr__(self) -> str:
        return f"FunctionCall({self.object_id!r})"


def gather(*function_calls: FunctionCall) -> list[Any]:
    """``modal.functions.gather(...)`` (Modal 0.x): the results of several spawned calls, in order."""
    return FunctionCall.gather(*function_calls)

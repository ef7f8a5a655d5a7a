"""``Frozen``: the base of the runtime's and the SDK's small immutable records.

Runs on the client and inside allocations; standard library only. What
``@dataclass(frozen=True)`` gave, without its import and its class-creation
cost (``dataclasses`` pulls in ``inspect``, ``ast`` and more: ~10 ms of every
allocation's start-up). A subclass lists its ``__slots__``, sets them in a
hand-written ``__init__`` with ``object.__setattr__``, and names in
``_compared`` the fields that take part in ``repr``, ``==`` and ``hash`` (in
declaration order, as a dataclass would). Pickling and ``copy`` restore the
slots directly, without running ``__init__``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record (as ``dataclasses.FrozenInstanceError``)."""


class Frozen:
    __slots__ = ()
    _compared: ClassVar[tuple[str, ...]] = ()

    def _key(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self._compared])

    def __repr__(self) -> str:
        fields = ", ".join([f"{name}={getattr(self, name)!r}" for name in self._compared])
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Frozen)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def _slot_names(self) -> list[str]:
        return [name for cls in type(self).__mro__ for name in getattr(cls, "__slots__", ())]

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._slot_names() if hasattr(self, name)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

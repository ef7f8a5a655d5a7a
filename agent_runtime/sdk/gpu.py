"""``modal.gpu.*`` objects (deprecated in Modal 1.x in favour of strings).

Runs on the client and inside allocations; standard library only. Each
object is just its string form, e.g. ``modal.gpu.A100(size="80GB", count=2)``
is ``"A100-80GB:2"``.
"""

from __future__ import annotations


class _GPU(str):
    family = ""

    def __new__(cls, *, count: int = 1, size: str | None = None) -> _GPU:
        name = cls.family + (f"-{size.upper()}" if size else "")
        return super().__new__(cls, f"{name}:{count}" if count != 1 else name)


def _make(family: str) -> type[_GPU]:
    return type(family.replace("-", "_"), (_GPU,), {"family": family})


T4, L4, A10G, A100, L40S, H100, H200, B200 = (
    _make(f) for f in ("T4", "L4", "A10G", "A100", "L40S", "H100", "H200", "B200")
)
Any = _make("any")

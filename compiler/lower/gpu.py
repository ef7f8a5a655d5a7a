"""Modal GPU strings → Nomad ``device "nvidia/gpu"`` requests.

Runs on the client. Model names are matched the way the nvidia device
plugin reports them (NVML's product name, e.g. ``NVIDIA H100 80GB HBM3`` or
``Tesla T4``) with anchored regular expressions; A100 memory variants are
told apart by ``${device.attr.memory}`` with units (a unit-less number would
never compare).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UserError, did_you_mean
from ..ir import Affinity, Constraint, Device

MODEL = "${device.model}"
MEMORY = "${device.attr.memory}"
# 40 GB and 80 GB A100s report 40960 and 81920 MiB; split halfway.
A100_SPLIT = "60 GiB"


@dataclass(frozen=True, slots=True)
class _Family:
    pattern: str  # model-name regexp body, without anchors
    memory: Constraint | None = None
    prefer: str | None = None  # a narrower pattern preferred by affinity (upgradeable families)


_NV = "(NVIDIA |Tesla )?"
_A100 = _NV + "A100([- ].*)?"
FAMILIES: dict[str, _Family] = {
    "T4": _Family(_NV + "T4"),
    "L4": _Family(_NV + "L4"),
    "A10": _Family(_NV + "A10G?"),
    "A10G": _Family(_NV + "A10G?"),
    "A100": _Family(_A100),
    "A100-40GB": _Family(_A100, Constraint(attribute=MEMORY, operator="<", value=A100_SPLIT)),
    "A100-80GB": _Family(_A100, Constraint(attribute=MEMORY, operator=">=", value=A100_SPLIT)),
    "L40S": _Family(_NV + "L40S"),
    # Modal may run an H100 request on an H200; "H100!" forbids that.
    "H100": _Family(_NV + "H(100|200)( .*)?", prefer=_NV + "H100( .*)?"),
    "H100!": _Family(_NV + "H100( .*)?"),
    "H200": _Family(_NV + "H200( .*)?"),
    "B200": _Family(_NV + "B200( .*)?"),
    "B300": _Family(_NV + "B300( .*)?"),
    "ANY": _Family(""),
}
_CANONICAL = {k: k for k in FAMILIES} | {"ANY": "any"}


@dataclass(frozen=True, slots=True)
class GpuChoice:
    family: str  # key of FAMILIES
    count: int


def parse_gpu(text: Any, location: tuple[str, int]) -> GpuChoice:
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"gpu must be a string such as \"H100\" or \"A10G:2\", got {text!r}", location=location)
    name, sep, count_text = text.strip().partition(":")
    family = name.strip().upper()
    if family not in FAMILIES:
        known = [_CANONICAL[k] for k in FAMILIES]
        hint = did_you_mean(family, known) or "known GPUs: " + ", ".join(known)
        raise UserError(f"unknown GPU type {name.strip()!r}", location=location, hint=hint)
    count = 1
    if sep:
        try:
            count = int(count_text)
        except ValueError:
            if re.fullmatch(r"\s*\d*\.\d+\s*", count_text):
                raise UserError(f"gpu={text!r}: fractional GPUs do not exist", location=location,
                                hint=f"request whole GPUs, e.g. \"{name.strip()}:1\"") from None
            raise UserError(f"gpu={text!r}: the count after ':' must be a whole number", location=location,
                            hint=f"e.g. \"{name.strip()}:2\"") from None
        if count < 1:
            raise UserError(f"gpu={text!r}: the GPU count must be at least 1", location=location)
    return GpuChoice(family, count)


def _anchored(pattern: str) -> str:
    return f"^{pattern}$"


def lower_gpu(gpu: Any, location: tuple[str, int]) -> tuple[Device, ...]:
    """``gpu=`` (a string, or an ordered fallback list) → the task's device requests."""
    if gpu is None:
        return ()
    if isinstance(gpu, (int, float)) and not isinstance(gpu, bool):
        raise UserError(f"gpu={gpu!r}: give a GPU type, not a number", location=location,
                        hint="e.g. gpu=\"T4\" or gpu=\"A100:2\"")
    choices: Sequence[Any] = gpu if isinstance(gpu, (list, tuple)) else [gpu]
    if not choices:
        raise UserError("gpu=[] is empty; give at least one GPU type", location=location)
    parsed = [parse_gpu(c, location) for c in choices]
    counts = {c.count for c in parsed}
    if len(counts) > 1:
        raise UserError(f"gpu={list(choices)!r}: every choice of a fallback list must ask for the same count",
                        location=location, hint="Nomad places one device request; give each choice the same :N")
    count = parsed[0].count
    families = [FAMILIES[c.family] for c in parsed]
    if len(parsed) == 1:
        fam = families[0]
        single: list[Constraint] = [] if not fam.pattern else [
            Constraint(attribute=MODEL, operator="regexp", value=_anchored(fam.pattern))]
        if fam.memory:
            single.append(fam.memory)
        prefer = () if not fam.prefer else (Affinity(attribute=MODEL, operator="regexp",
                                                     value=_anchored(fam.prefer), weight=50),)
        return (Device(name="nvidia/gpu", count=count, constraints=tuple(single), affinities=prefer),)
    if any(f.memory for f in families):
        raise UserError(f"gpu={list(choices)!r}: A100-40GB/A100-80GB cannot be part of a fallback list",
                        location=location,
                        hint="Nomad's device memory constraint would apply to every choice; use \"A100\" in the list")
    ordered: list[str] = []
    for c in parsed:
        if c.family not in ordered:
            ordered.append(c.family)
    any_gpu = "ANY" in ordered
    constraints: list[Constraint] = []
    if not any_gpu:
        union = "|".join(f"({FAMILIES[f].pattern})" for f in ordered)
        constraints.append(Constraint(attribute=MODEL, operator="regexp", value=f"^({union})$"))
    preferred = ordered[: ordered.index("ANY")] if any_gpu else ordered
    step = 100 // max(len(preferred), 1)
    affinities = tuple(
        Affinity(attribute=MODEL, operator="regexp", value=_anchored(FAMILIES[f].prefer or FAMILIES[f].pattern),
                 weight=100 - i * step)
        for i, f in enumerate(preferred)
    )
    return (Device(name="nvidia/gpu", count=count, constraints=tuple(constraints), affinities=affinities),)

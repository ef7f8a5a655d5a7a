"""The keywords Modal 1.x accepts on ``@app.function`` / ``@app.cls``, and their checks.

Runs on the client and inside allocations; standard library only. Only the
names are checked here (a misspelling suggests the right one); values are
validated by the compiler's lowering, which knows the Nomad side.
"""

from __future__ import annotations

from .exception import InvalidError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FUNCTION_KEYWORDS: frozenset[str] = frozenset(
    {
        "image", "schedule", "env", "secrets", "gpu", "serialized", "network_file_systems",
        "volumes", "cpu", "memory", "ephemeral_disk", "min_containers", "max_containers",
        "buffer_containers", "scaledown_window", "proxy", "retries", "timeout",
        "startup_timeout", "name", "is_generator", "cloud", "region", "routing_region",
        "nonpreemptible", "enable_memory_snapshot", "block_network", "restrict_modal_access",
        "single_use_containers", "i6pn", "include_source", "experimental_options", "max_inputs",
        "cloud_bucket_mounts", "mounts",
    }
)
CLS_KEYWORDS: frozenset[str] = FUNCTION_KEYWORDS - {"is_generator", "schedule", "name"}  # Modal 1.6 takes serialized=

# Modal 0.x names that 1.x still understands with a deprecation warning.
DEPRECATED_KEYWORDS: dict[str, str] = {
    "keep_warm": "min_containers",
    "concurrency_limit": "max_containers",
    "container_idle_timeout": "scaledown_window",
    "allow_concurrent_inputs": "max_inputs",  # carried to @modal.concurrent by the compiler
}


def check_keywords(
    decorator: str, options: dict[str, Any], allowed: frozenset[str], location: tuple[str, int]
) -> dict[str, Any]:
    """Return ``options`` with deprecated names renamed; raise on unknown names."""
    checked: dict[str, Any] = {}
    for key, value in options.items():
        if key in DEPRECATED_KEYWORDS:
            new = DEPRECATED_KEYWORDS[key]
            import warnings

            warnings.warn_explicit(
                f"`{key}=` is deprecated in Modal 1.x; use `{new}=`",
                DeprecationWarning,
                location[0],
                location[1],
            )
            if key == "allow_concurrent_inputs":
                checked["_allow_concurrent_inputs"] = value
                continue
            key = new
        if key not in allowed:
            import difflib  # only for the error message; kept off the start-up path

            close = difflib.get_close_matches(key, sorted(allowed | DEPRECATED_KEYWORDS.keys()), n=1)
            hint = f"did you mean `{close[0]}=`?" if close else (
                f"{decorator} accepts: {', '.join(sorted(allowed))}"
            )
            raise InvalidError(
                f"{decorator} got an unexpected keyword argument `{key}`",
                hint=hint,
                location=location,
            )
        checked[key] = value
    return checked


def reject_bare_decorator(decorator: str, value: Any, location: tuple[str, int]) -> None:
    """``@app.function`` without parentheses receives the function itself: say so."""
    if value is not None:
        raise InvalidError(
            f"Did you forget parentheses? Suggestion: `{decorator}()`.",
            hint=f"write `{decorator}()` with parentheses, even with no arguments",
            location=location,
        )

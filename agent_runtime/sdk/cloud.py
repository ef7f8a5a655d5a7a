"""Modal's objects that live in Modal's cloud, and the rarer names real apps reference.

Runs on the client and inside allocations; standard library only. Loaded on
first use through ``modal.__getattr__`` (``modal.Proxy``, ``modal.Tunnel`` …),
so plain calls never pay for it. Declaring one of these objects loads (a
script that merely references it imports cleanly); using it raises a
``NotSupportedError`` that names the feature and the Nomad alternative.
"""

from __future__ import annotations

from fnmatch import fnmatch

from ._location import caller_location
from .exception import NotSupportedError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def unsupported(feature: str, hint: str, why: str = "it lives in Modal's cloud and Nomad has no equivalent"
                ) -> NotSupportedError:
    """The error every cloud-only use raises: the feature, why not, and what to do on Nomad."""
    return NotSupportedError(f"{feature} is not supported by modalc: {why}", hint=hint, location=caller_location())


class _CloudOnlyType(type):
    """Class-level uses (``modal.Sandbox.from_id(...)``, ``modal.Dict.delete(...)``) raise the clear error."""

    feature: str
    alternative: str
    why: str

    def __getattr__(cls, item: str) -> Any:
        if item.startswith("_"):
            raise AttributeError(item)
        raise unsupported(f"{cls.feature}.{item}", cls.alternative, cls.why)


class CloudOnly(metaclass=_CloudOnlyType):
    """A Modal object with no Nomad counterpart: ``from_name``/``lookup`` load; any use raises."""

    feature = ""
    alternative = ""
    why = "it lives in Modal's cloud and Nomad has no equivalent"

    def __init__(self, name: str = "", location: tuple[str, int] = ("<unknown>", 0)):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "location", location)

    @classmethod
    def from_name(cls, name: str, *args: Any, **kwargs: Any) -> Any:
        return cls(name, caller_location())

    @classmethod
    def lookup(cls, name: str, *args: Any, **kwargs: Any) -> Any:
        return cls(name, caller_location())

    @classmethod
    def ephemeral(cls, *args: Any, **kwargs: Any) -> Any:
        """Loads; entering it (``with modal.Dict.ephemeral() as d:``) raises."""
        return cls("", caller_location())

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> Any:
        raise unsupported(f"{cls.feature}.create", cls.alternative, cls.why)

    def _fail(self, what: str = "") -> NotSupportedError:
        sep = "" if what.startswith("[") or not what else "." if what[0].isalpha() else " "
        return unsupported(f"{self.feature}{sep}{what}", self.alternative, self.why)

    def hydrate(self, client: Any = None) -> Any:
        return self

    def __getattr__(self, item: str) -> Any:
        if item.startswith("_"):
            raise AttributeError(item)
        raise self._fail(item)

    def __setattr__(self, key: str, value: Any) -> None:
        raise self._fail(key)

    def __getitem__(self, item: Any) -> Any:
        raise self._fail("[key]")

    def __setitem__(self, key: Any, value: Any) -> None:
        raise self._fail("[key] = value")

    def __delitem__(self, key: Any) -> None:
        raise self._fail("del [key]")

    def __contains__(self, key: Any) -> bool:
        raise self._fail("contains")

    def __len__(self) -> int:
        raise self._fail("len")

    def __iter__(self) -> Any:
        raise self._fail("iter")

    def __enter__(self) -> Any:
        raise self._fail("ephemeral")

    def __exit__(self, *exc: Any) -> None:
        return None

    def __repr__(self) -> str:
        return f"{self.feature}({self.name!r})"


class Dict(CloudOnly):
    feature = "modal.Dict"
    alternative = "use a Volume, or an external store (Redis, a database) reachable from the cluster"


class Queue(CloudOnly):
    feature = "modal.Queue"
    alternative = "use .map()/.spawn() for fan-out, or an external queue (Redis, SQS, NATS) reachable from the cluster"


class Sandbox(CloudOnly):
    feature = "modal.Sandbox"
    alternative = "run the command inside a function (subprocess), or as its own Nomad job"


class Proxy(CloudOnly):
    feature = "modal.Proxy"
    alternative = "give the Nomad clients a static egress IP (NAT gateway) and drop proxy="


class Tunnel(CloudOnly):
    feature = "modal.Tunnel"
    alternative = "serve the port from a Nomad service job (network { port ... }) behind your load balancer"


class SandboxSnapshot(CloudOnly):
    feature = "modal.SandboxSnapshot"
    alternative = "run the command inside a function, or as its own Nomad job"


class Client(CloudOnly):
    feature = "modal.Client"
    alternative = "modalc talks to Nomad itself: set NOMAD_ADDR (and NOMAD_TOKEN) instead of Modal credentials"

    @classmethod
    def from_env(cls, *args: Any, **kwargs: Any) -> Any:
        return cls("env", caller_location())

    @classmethod
    def from_credentials(cls, *args: Any, **kwargs: Any) -> Any:
        return cls("credentials", caller_location())


class Mount(CloudOnly):
    feature = "modal.Mount"
    alternative = "use image.add_local_dir(), add_local_file() or add_local_python_source()"
    why = "Modal 1.0 removed it"


class SchedulerPlacement:
    """``modal.SchedulerPlacement(region=, zone=, spot=, instance_type=)``: recorded, not applied.

    Nomad places jobs by datacenter, node pool and constraints; ``modalc build
    --datacenter/--node-pool`` choose them.
    """

    def __init__(self, region: str | list[str] | None = None, zone: str | None = None, spot: bool | None = None,
                 instance_type: str | list[str] | None = None) -> None:
        self.region, self.zone, self.spot, self.instance_type = region, zone, spot, instance_type
        self.location = caller_location()

    def __repr__(self) -> str:
        return f"SchedulerPlacement(region={self.region!r}, zone={self.zone!r}, spot={self.spot!r})"


class FilePatternMatcher:
    """``modal.FilePatternMatcher(*patterns)``: a callable that says whether a path matches (fnmatch rules)."""

    def __init__(self, *patterns: str) -> None:
        self.patterns = tuple(patterns)

    @classmethod
    def from_file(cls, path: str) -> FilePatternMatcher:
        with open(path, encoding="utf-8") as fh:
            lines = [ln.strip() for ln in fh]
        return cls(*[ln for ln in lines if ln and not ln.startswith("#")])

    def __call__(self, path: Any) -> bool:
        text = str(path)
        return any(fnmatch(text, p) or fnmatch(text, p.rstrip("/") + "/*") for p in self.patterns)

    def __invert__(self) -> Any:
        patterns = self.patterns
        return lambda path: not FilePatternMatcher(*patterns)(path)


def forward(port: int, *, unencrypted: bool = False, client: Any = None) -> Any:
    raise unsupported("modal.forward", "give the function a web endpoint (@modal.web_server / @modal.asgi_app); "
                      "on Nomad it becomes a service with a port")

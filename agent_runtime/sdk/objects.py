"""Modal's declarative objects: secrets, volumes, schedules, retries, and the
cloud-only objects modalc refuses clearly.

Runs on the client and inside allocations; standard library only. These
objects only record what the user declared; the compiler decides what each
becomes on Nomad.
"""

from __future__ import annotations

import os

from .._frozen import Frozen
from ._location import caller_location
from .exception import InvalidError, NotSupportedError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_UNKNOWN = ("<unknown>", 0)
_set = object.__setattr__  # the records are frozen: their __init__s set slots with this


class Secret(Frozen):
    """A set of environment variables. ``kind`` is how it was declared."""

    __slots__ = ("_values", "keys", "kind", "location", "name", "path", "required_keys")
    # _values (the values of a from_dict secret) stay out of repr, ==, hash and specs.
    _compared = ("kind", "name", "required_keys", "keys", "path", "location")

    kind: str  # "name" | "dict" | "dotenv" | "local_environ"
    name: str
    required_keys: tuple[str, ...]
    keys: tuple[str, ...]  # only for kind="dict": the keys
    _values: tuple[tuple[str, str], ...]
    path: str
    location: tuple[str, int]

    def __init__(self, kind: str, name: str = "", required_keys: tuple[str, ...] = (), keys: tuple[str, ...] = (),
                 _values: tuple[tuple[str, str], ...] = (), path: str = "",
                 location: tuple[str, int] = _UNKNOWN) -> None:
        _set(self, "kind", kind)
        _set(self, "name", name)
        _set(self, "required_keys", required_keys)
        _set(self, "keys", keys)
        _set(self, "_values", _values)
        _set(self, "path", path)
        _set(self, "location", location)

    @staticmethod
    def from_name(
        name: str,
        *,
        environment_name: str | None = None,
        required_keys: list[str] | tuple[str, ...] = (),
    ) -> Secret:
        if not isinstance(name, str) or not name:
            raise InvalidError("Secret.from_name needs a non-empty name", location=caller_location())
        return Secret(kind="name", name=name, required_keys=tuple(required_keys), location=caller_location())

    @staticmethod
    def from_dict(env_dict: dict[str, str | None] | None = None) -> Secret:
        items = tuple((str(k), "" if v is None else str(v)) for k, v in (env_dict or {}).items())
        return Secret(kind="dict", keys=tuple(k for k, _ in items), _values=items, location=caller_location())

    @staticmethod
    def from_local_environ(env_keys: list[str]) -> Secret:
        return Secret(kind="local_environ", keys=tuple(env_keys), location=caller_location())

    @staticmethod
    def from_dotenv(path: str | None = None, *, filename: str = ".env") -> Secret:
        loc = caller_location()
        base = path if path is not None else os.path.dirname(os.path.abspath(loc[0]))
        return Secret(kind="dotenv", path=os.path.join(base, filename), location=loc)

    def values(self) -> dict[str, str]:
        """The values of a ``from_dict`` secret (client side only, never emitted)."""
        return dict(self._values)


class Volume(Frozen):
    """A named persistent directory shared between functions."""

    __slots__ = ("create_if_missing", "location", "name", "read_only")
    _compared = ("name", "create_if_missing", "read_only", "location")

    name: str
    create_if_missing: bool
    read_only: bool
    location: tuple[str, int]

    def __init__(self, name: str, create_if_missing: bool = False, read_only: bool = False,
                 location: tuple[str, int] = _UNKNOWN) -> None:
        _set(self, "name", name)
        _set(self, "create_if_missing", create_if_missing)
        _set(self, "read_only", read_only)
        _set(self, "location", location)

    @staticmethod
    def from_name(
        name: str,
        *,
        environment_name: str | None = None,
        create_if_missing: bool = False,
        version: int | None = None,
    ) -> Volume:
        return Volume(name=name, create_if_missing=create_if_missing, location=caller_location())

    @staticmethod
    def ephemeral(**_: Any) -> Volume:
        raise NotSupportedError(
            "modal.Volume.ephemeral() is not supported by modalc",
            hint="declare a named volume with modal.Volume.from_name(...)",
            location=caller_location(),
        )

    def read_only_view(self) -> Volume:
        return Volume(name=self.name, create_if_missing=self.create_if_missing, read_only=True,
                      location=self.location)

    def commit(self) -> None:
        """No-op: modalc volumes are shared directories, writes are visible at once."""

    def reload(self) -> None:
        """No-op: modalc volumes are shared directories, always current."""


class NetworkFileSystem(Frozen):
    __slots__ = ("location", "name")
    _compared = ("name", "location")

    name: str
    location: tuple[str, int]

    def __init__(self, name: str, location: tuple[str, int] = _UNKNOWN) -> None:
        _set(self, "name", name)
        _set(self, "location", location)

    @staticmethod
    def from_name(name: str, *, environment_name: str | None = None,
                  create_if_missing: bool = False) -> NetworkFileSystem:
        return NetworkFileSystem(name=name, location=caller_location())


class CloudBucketMount(Frozen):
    __slots__ = ("bucket_endpoint_url", "bucket_name", "key_prefix", "oidc_auth_role_arn", "read_only",
                 "requester_pays", "secret")
    _compared = ("bucket_name", "bucket_endpoint_url", "key_prefix", "secret", "oidc_auth_role_arn", "read_only",
                 "requester_pays")

    bucket_name: str
    bucket_endpoint_url: str | None
    key_prefix: str | None
    secret: Secret | None
    oidc_auth_role_arn: str | None
    read_only: bool
    requester_pays: bool

    def __init__(self, bucket_name: str, bucket_endpoint_url: str | None = None, key_prefix: str | None = None,
                 secret: Secret | None = None, oidc_auth_role_arn: str | None = None, read_only: bool = False,
                 requester_pays: bool = False) -> None:
        _set(self, "bucket_name", bucket_name)
        _set(self, "bucket_endpoint_url", bucket_endpoint_url)
        _set(self, "key_prefix", key_prefix)
        _set(self, "secret", secret)
        _set(self, "oidc_auth_role_arn", oidc_auth_role_arn)
        _set(self, "read_only", read_only)
        _set(self, "requester_pays", requester_pays)


class Cron(Frozen):
    """``modal.Cron("0 9 * * *", timezone="America/New_York")``."""

    __slots__ = ("cron_string", "location", "timezone")
    _compared = ("cron_string", "timezone")  # location: where it was declared, not what it is

    cron_string: str
    timezone: str
    location: tuple[str, int]

    def __init__(self, cron_string: str, timezone: str = "UTC") -> None:
        _set(self, "cron_string", cron_string)
        _set(self, "timezone", timezone)
        _set(self, "location", caller_location())


class Period(Frozen):
    """``modal.Period(days=1)``: a fixed interval."""

    __slots__ = ("days", "hours", "location", "minutes", "months", "seconds", "weeks", "years")
    _compared = ("years", "months", "weeks", "days", "hours", "minutes", "seconds")

    years: int
    months: int
    weeks: int
    days: float
    hours: float
    minutes: float
    seconds: float
    location: tuple[str, int]

    def __init__(self, years: int = 0, months: int = 0, weeks: int = 0, days: float = 0, hours: float = 0,
                 minutes: float = 0, seconds: float = 0) -> None:
        _set(self, "years", years)
        _set(self, "months", months)
        _set(self, "weeks", weeks)
        _set(self, "days", days)
        _set(self, "hours", hours)
        _set(self, "minutes", minutes)
        _set(self, "seconds", seconds)
        _set(self, "location", caller_location())


class Retries(Frozen):
    """Modal's retry policy: per input, with exponential backoff between attempts."""

    __slots__ = ("backoff_coefficient", "initial_delay", "location", "max_delay", "max_retries")
    _compared = ("max_retries", "backoff_coefficient", "initial_delay", "max_delay")

    max_retries: int
    backoff_coefficient: float
    initial_delay: float
    max_delay: float
    location: tuple[str, int]

    def __init__(self, max_retries: int, backoff_coefficient: float = 2.0, initial_delay: float = 1.0,
                 max_delay: float = 60.0) -> None:
        _set(self, "max_retries", max_retries)
        _set(self, "backoff_coefficient", backoff_coefficient)
        _set(self, "initial_delay", initial_delay)
        _set(self, "max_delay", max_delay)
        loc = caller_location()
        _set(self, "location", loc)
        if not isinstance(max_retries, int) or not 0 <= max_retries <= 10:
            raise InvalidError(f"Retries: max_retries must be an integer from 0 to 10, got {max_retries!r}",
                               location=loc)
        if not 1.0 <= backoff_coefficient <= 10.0:
            raise InvalidError("Retries: backoff_coefficient must be between 1.0 and 10.0", location=loc)
        if not 0 <= initial_delay <= 60:
            raise InvalidError("Retries: initial_delay must be between 0 and 60 seconds", location=loc)
        if not 1 <= max_delay <= 60:
            raise InvalidError("Retries: max_delay must be between 1 and 60 seconds", location=loc)

    def delay_s(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based)."""
        delay = self.initial_delay * self.backoff_coefficient ** (retry_number - 1)
        return float(min(delay, self.max_delay))


class _CloudOnly:
    """Objects that live in Modal's cloud: declaring them loads; using them says why not."""

    feature = ""
    alternative = ""

    def __init__(self, name: str = "", location: tuple[str, int] = ("<unknown>", 0)):
        self.name = name
        self.location = location

    @classmethod
    def from_name(cls, name: str, *args: Any, **kwargs: Any) -> Any:
        return cls(name, caller_location())

    @classmethod
    def ephemeral(cls, *args: Any, **kwargs: Any) -> Any:
        return cls("", caller_location())

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> Any:
        raise cls._unsupported()

    @classmethod
    def _unsupported(cls) -> NotSupportedError:
        return NotSupportedError(
            f"{cls.feature} is not supported by modalc: it lives in Modal's cloud and Nomad has no equivalent",
            hint=cls.alternative,
            location=caller_location(),
        )

    def __getattr__(self, item: str) -> Any:
        if item.startswith("__"):
            raise AttributeError(item)
        raise type(self)._unsupported()

    def __getitem__(self, item: Any) -> Any:
        raise type(self)._unsupported()

    def __setitem__(self, key: Any, value: Any) -> None:
        raise type(self)._unsupported()


class Dict(_CloudOnly):
    feature = "modal.Dict"
    alternative = "use a Volume, or an external store (Redis, a database) reachable from the cluster"


class Queue(_CloudOnly):
    feature = "modal.Queue"
    alternative = "use .map()/.spawn() for fan-out, or an external queue reachable from the cluster"


class Sandbox(_CloudOnly):
    feature = "modal.Sandbox"
    alternative = "run the command inside a function, or as its own Nomad job"


def forward(*args: Any, **kwargs: Any) -> Any:
    raise NotSupportedError(
        "modal.forward is not supported by modalc",
        hint="give the function a web endpoint decorator; Nomad registers it as a service with a port",
        location=caller_location(),
    )

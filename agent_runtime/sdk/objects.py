"""Modal's declarative objects: secrets, volumes, schedules, retries.

Runs on the client and inside allocations; standard library only. These
objects only record what the user declared; the compiler decides what each
becomes on Nomad. The cloud-only objects (``modal.Dict``, ``modal.Queue`` …)
are in ``cloud.py``.
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
        client: Any = None,
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
    def from_dotenv(path: str | None = None, *, filename: str = ".env", client: Any = None) -> Secret:
        loc = caller_location()
        base = path if path is not None else os.path.dirname(os.path.abspath(loc[0]))
        return Secret(kind="dotenv", path=os.path.join(base, filename), location=loc)

    def hydrate(self, client: Any = None) -> Secret:
        return self

    def values(self) -> dict[str, str]:
        """The values of a ``from_dict`` secret (client side only, never emitted)."""
        return dict(self._values)


class Volume(Frozen):
    """A named persistent directory shared between functions."""

    # ``mount_read_only``: Modal's ``read_only`` is the method that returns such a view.
    __slots__ = ("create_if_missing", "location", "mount_read_only", "name")
    _compared = ("name", "create_if_missing", "mount_read_only", "location")

    name: str
    create_if_missing: bool
    mount_read_only: bool
    location: tuple[str, int]

    def __init__(self, name: str, create_if_missing: bool = False, mount_read_only: bool = False,
                 location: tuple[str, int] = _UNKNOWN) -> None:
        _set(self, "name", name)
        _set(self, "create_if_missing", create_if_missing)
        _set(self, "mount_read_only", mount_read_only)
        _set(self, "location", location)

    @staticmethod
    def from_name(
        name: str,
        *,
        environment_name: str | None = None,
        create_if_missing: bool = False,
        version: int | None = None,
        create_options: Any = None,
        client: Any = None,
    ) -> Volume:
        return Volume(name=name, create_if_missing=create_if_missing, location=caller_location())

    @staticmethod
    def ephemeral(**_: Any) -> Volume:
        raise NotSupportedError(
            "modal.Volume.ephemeral() is not supported by modalc",
            hint="declare a named volume with modal.Volume.from_name(...)",
            location=caller_location(),
        )

    def read_only(self) -> Volume:
        """This volume, mounted read-only (``read_only = true`` in the task's ``volume_mount``)."""
        return Volume(name=self.name, create_if_missing=self.create_if_missing, mount_read_only=True,
                      location=self.location)

    read_only_view = read_only

    def with_mount_options(self, *, read_only: bool | None = None, sub_path: str | None = None) -> Volume:
        if sub_path is not None:
            raise NotSupportedError("Volume.with_mount_options(sub_path=...) is not supported by modalc",
                                    hint="a Nomad volume_mount has no sub-path: mount the volume and use the "
                                    "folder below its mount path", location=caller_location())
        ro = self.mount_read_only if read_only is None else bool(read_only)
        return Volume(name=self.name, create_if_missing=self.create_if_missing, mount_read_only=ro,
                      location=self.location)

    def commit(self) -> None:
        """No-op: modalc volumes are shared directories, writes are visible at once."""

    def reload(self) -> None:
        """No-op: modalc volumes are shared directories, always current."""

    # The file methods work on the mount path (``volume.py``, loaded on first use).
    def hydrate(self, client: Any = None) -> Volume:
        return self

    @staticmethod
    def lookup(name: str, *, environment_name: str | None = None, create_if_missing: bool = False) -> Volume:
        return Volume(name=name, create_if_missing=create_if_missing, location=caller_location())

    def iterdir(self, path: str = "/", *, recursive: bool = True) -> Any:
        from . import volume

        return volume.iterdir(self, path, recursive)

    def listdir(self, path: str = "/", *, recursive: bool = False) -> list[Any]:
        from . import volume

        return list(volume.iterdir(self, path, recursive))

    def read_file(self, path: str) -> Any:
        from . import volume

        return volume.read_file(self, path)

    def read_file_into_fileobj(self, path: str, fileobj: Any, progress_cb: Any = None) -> int:
        from . import volume

        size = 0
        for chunk in volume.read_file(self, path):
            size += fileobj.write(chunk) or 0
            if progress_cb is not None:
                progress_cb(advance=len(chunk))
        return size

    def remove_file(self, path: str, recursive: bool = False) -> None:
        from . import volume

        volume.remove_file(self, path, recursive)

    def copy_files(self, src_paths: Any, dst_path: str, recursive: bool = False) -> None:
        from . import volume

        volume.copy_files(self, list(src_paths), dst_path, recursive)

    def batch_upload(self, force: bool = False) -> Any:
        from . import volume

        return volume.BatchUpload(self, force)

    @staticmethod
    def delete(name: str, **_: Any) -> None:
        raise NotSupportedError("modal.Volume.delete() is not supported inside an app", location=caller_location(),
                                hint="delete the host volume's directory on the Nomad clients (or the CSI volume)")

    @staticmethod
    def rename(old_name: str, new_name: str, **_: Any) -> None:
        raise NotSupportedError("modal.Volume.rename() is not supported by modalc", location=caller_location(),
                                hint="Nomad host volumes are named in the client configuration; rename it there")


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
    """``modal.CloudBucketMount(bucket_name, ...)``: an S3 (or S3-compatible) bucket mounted in a container."""

    __slots__ = ("bucket_endpoint_url", "bucket_name", "force_path_style", "key_prefix", "oidc_auth_role_arn",
                 "read_only", "requester_pays", "secret")
    _compared = ("bucket_name", "bucket_endpoint_url", "key_prefix", "secret", "oidc_auth_role_arn", "read_only",
                 "requester_pays", "force_path_style")

    bucket_name: str
    bucket_endpoint_url: str | None
    key_prefix: str | None
    secret: Secret | None
    oidc_auth_role_arn: str | None
    read_only: bool
    requester_pays: bool
    force_path_style: bool

    def __init__(self, bucket_name: str, bucket_endpoint_url: str | None = None, key_prefix: str | None = None,
                 secret: Secret | None = None, oidc_auth_role_arn: str | None = None, read_only: bool = False,
                 requester_pays: bool = False, force_path_style: bool = False) -> None:
        _set(self, "bucket_name", bucket_name)
        _set(self, "bucket_endpoint_url", bucket_endpoint_url)
        _set(self, "key_prefix", key_prefix)
        _set(self, "secret", secret)
        _set(self, "oidc_auth_role_arn", oidc_auth_role_arn)
        _set(self, "read_only", read_only)
        _set(self, "requester_pays", requester_pays)
        _set(self, "force_path_style", force_path_style)


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

"""Modal's exception types, as the compat SDK raises them.

Runs on the client and inside allocations; standard library only.
"""

from __future__ import annotations


class Error(Exception):
    """Base class of every error the SDK raises (mirrors ``modal.exception.Error``)."""


class InvalidError(Error):
    """A declaration is wrong. Carries where (``location``) and how to fix it (``hint``)."""

    def __init__(self, message: str, *, hint: str = "", location: tuple[str, int] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.location = location


class NotSupportedError(InvalidError):
    """A Modal feature that has no Nomad equivalent (or not yet)."""


class NotFoundError(Error):
    pass


class ExecutionError(Error):
    pass


class RemoteError(Error):
    pass


class FunctionTimeoutError(Error):
    """A remote attempt ran longer than the function's ``timeout``."""


TimeoutError = FunctionTimeoutError


class OutputExpiredError(Error):
    pass


class InputCancellation(BaseException):
    pass


class DeprecationError(Error):
    pass


# The rest of ``modal.exception``'s names, so ``except modal.exception.X`` always resolves.
class AlreadyExistsError(Error):
    pass


class AuthError(Error):
    pass


class ConflictError(Error):
    pass


class ConnectionError(Error):
    pass


class VersionError(Error):
    pass


class ClientClosed(Error):
    pass


class InternalFailure(Error):
    pass


class RequestSizeError(Error):
    pass


class SerializationError(Error):
    pass


class DeserializationError(Error):
    pass


class SandboxTimeoutError(Error):
    pass


class SandboxTerminatedError(Error):
    pass


class InteractiveTimeoutError(Error):
    pass


class MountUploadTimeoutError(Error):
    pass


class VolumeUploadTimeoutError(Error):
    pass


class ModuleNotMountable(Error):
    pass


class PendingDeprecationError(UserWarning):
    pass


class ServerWarning(UserWarning):
    pass

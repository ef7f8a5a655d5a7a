"""Fetches a call whose input came through the blob store (a "blob" reference envelope).

Runs inside allocations; standard library only, and imported only for a
"blob" envelope, so a small call's start-up is unchanged. The reference holds
a presigned GET URL (no credentials of its own here), the size and the sha256
of the call envelope; both are checked before anything is unpickled. Errors
are one line with a hint and never show the URL (it grants read access).
"""

from __future__ import annotations

import hashlib
import time
import urllib.error
import urllib.request

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CHUNK = 1 << 20
ATTEMPTS = 4
TIMEOUT_S = 60.0


class BlobFetchError(OSError):
    """The call's input could not be fetched (or did not match its size and hash)."""


def fetch(header: dict[str, Any]) -> bytes:
    """The call envelope a "blob" reference points to, checked against its size and sha256."""
    url, size, digest = header.get("url"), header.get("size"), header.get("sha256")
    if not isinstance(url, str) or not isinstance(size, int) or not isinstance(digest, str):
        raise BlobFetchError("the blob reference lacks its url, size or sha256")
    delay = 0.2
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _get(url, size, digest, header)
        except _Retry as exc:
            if attempt == ATTEMPTS:
                raise BlobFetchError(f"the call's input could not be fetched from the blob store after "
                                     f"{ATTEMPTS} attempts: {exc} (hint: can the allocation reach the store's "
                                     "endpoint? AWS_ENDPOINT_URL must be an address the Nomad clients reach)"
                                     ) from None
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


class _Retry(Exception):
    pass


def _get(url: str, size: int, digest: str, header: dict[str, Any]) -> bytes:
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        body = exc.read(2048).decode("utf-8", "replace")
        exc.close()
        if exc.code >= 500:
            raise _Retry(f"HTTP {exc.code}") from None
        raise BlobFetchError(_refused(exc.code, body, header)) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Retry(f"{type(reason).__name__}: {reason}") from None
    with response:
        data = bytearray()
        sha = hashlib.sha256()
        try:
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                data += chunk
                sha.update(chunk)
                if len(data) > size:
                    break
        except OSError as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from None
    if len(data) != size:
        raise BlobFetchError(f"the call's input from the blob store is {len(data)} bytes, expected {size} "
                             "(it was changed or cut short)")
    if sha.hexdigest() != digest:
        raise BlobFetchError("the call's input from the blob store does not match its sha256 (it was changed)")
    return bytes(data)


def _refused(code: int, body: str, header: dict[str, Any]) -> str:
    expires = header.get("expires")
    if (isinstance(expires, int) and time.time() > expires) or "expired" in body.lower():
        return (f"the presigned URL of the call's input has expired (HTTP {code}; the allocation started after "
                "its expiry) (hint: the URL is valid for the placement timeout plus 10 minutes, at least 15 "
                "minutes: raise MODALC_PLACEMENT_TIMEOUT, or make room on the cluster)")
    if code == 404 or "NoSuchKey" in body:
        return (f"the call's input is no longer in the blob store (HTTP {code}; its run ended, or it was deleted) "
                "(hint: the run's blobs are deleted when the run ends or is stopped)")
    return (f"the blob store refused the call's input (HTTP {code}) (hint: the presigned URL is signed with the "
            "client's credentials: they need s3:GetObject on the bucket)")

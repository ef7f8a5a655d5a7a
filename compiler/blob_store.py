"""Large call inputs through an S3-compatible blob store (``MODALC_BLOB_URL=s3://bucket/prefix``).

Runs on the client. A Nomad dispatch payload holds at most 16 KiB; a call (or a
``.map`` chunk) whose envelope is larger is uploaded once, under
``<prefix>/modalc/<run id>/<sha256>``, and the dispatch carries a small "blob"
reference envelope instead: a presigned GET URL with a bounded expiry, the
size and the sha256 (``agent_runtime/blob_fetch.py`` fetches and checks it in
the allocation, with no credentials of its own). See docs/blob-store.md.

Credentials, region and endpoint come from boto3's usual chain (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE and the shared files,
AWS_DEFAULT_REGION, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3), so AWS S3, MinIO,
Ceph and Garage all work; a non-AWS endpoint is addressed path-style. boto3 is
imported on the first upload only. Errors become one-line ``UserError``s with
a hint; no message ever holds a key, a token or a presigned URL.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent_runtime import protocol

from .errors import UserError

BLOB_ENV = "MODALC_BLOB_URL"
MIN_EXPIRY_S = 15 * 60
MAX_EXPIRY_S = 7 * 24 * 3600  # SigV4's limit for a presigned URL
START_MARGIN_S = 10 * 60  # image pull and start-up, beyond the placement timeout
DELETE_BATCH = 1000  # keys per DeleteObjects request (S3's limit)
DEPLOYED_SCOPE = "deployed"  # calls of deployed apps: <prefix>/modalc/deployed/<app>/<sha256>
# Job meta naming the store a job's calls' inputs go to (``modalc deploy --blob-url``, a run's store): callers
# of a deployed function and ``modalc app stop`` find it there. A bucket and a prefix, never a credential.
BLOB_META = "modalc_blob_url"
_HINT_CONFIG = f"set {BLOB_ENV}=s3://BUCKET[/PREFIX] (or --blob-url)"


@dataclass(frozen=True, slots=True)
class BlobConfig:
    """Where blobs go: a bucket and a key prefix ("" or ``a/b``, no slashes around)."""

    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def scope_prefix(self, scope: str) -> str:
        """The key prefix of one run's (or one deployed app's) blobs, ending in ``/``."""
        return f"{self.prefix + '/' if self.prefix else ''}modalc/{scope}/"


def parse_blob_url(url: str, source: str = BLOB_ENV) -> BlobConfig:
    """``s3://bucket[/prefix]`` as a BlobConfig (a UserError, exit 2, for anything else)."""
    scheme, sep, rest = url.partition("://")
    bucket, _, prefix = rest.partition("/")
    if not sep or scheme != "s3" or not bucket or any(c in bucket for c in " ?#"):
        raise UserError(f"{source}={url!r} is not an s3:// URL", hint=f"{_HINT_CONFIG}, e.g. s3://my-bucket/modalc")
    return BlobConfig(bucket=bucket, prefix=prefix.strip("/"))


def config_from(flag: str | None = None, environ: Mapping[str, str] | None = None) -> BlobConfig | None:
    """The store a command uses: ``--blob-url``, else ``MODALC_BLOB_URL``, else None (inline inputs only)."""
    if flag:
        return parse_blob_url(flag, "--blob-url")
    raw = (os.environ if environ is None else environ).get(BLOB_ENV, "").strip()
    return parse_blob_url(raw) if raw else None


def config_from_meta(meta: Mapping[str, str] | None) -> BlobConfig | None:
    """The store a job records in its meta (``BLOB_META``), or None (none recorded, or not an s3:// URL)."""
    raw = (meta or {}).get(BLOB_META, "")
    try:
        return parse_blob_url(raw, BLOB_META) if raw else None
    except UserError:
        return None


def expiry_s(placement_timeout_s: float) -> int:
    """How long a presigned URL stays valid: it is fetched when the allocation starts, so long enough for
    the placement and the start-up, at least ``MIN_EXPIRY_S``, at most ``MAX_EXPIRY_S``."""
    return int(min(MAX_EXPIRY_S, max(MIN_EXPIRY_S, placement_timeout_s + START_MARGIN_S)))


class BlobStore:
    """One bucket's client side: put, presign, delete; boto3 imported on first use."""

    def __init__(self, config: BlobConfig, *, client: Any = None):
        self.config = config
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = _make_client()
            return self._client

    def put(self, key: str, data: bytes) -> None:
        self._call("upload to", lambda c: c.put_object(Bucket=self.config.bucket, Key=key, Body=data,
                                                      ContentLength=len(data)))

    def presign(self, key: str, expires_s: int) -> str:
        return str(self._call("presign a URL in", lambda c: c.generate_presigned_url(
            "get_object", Params={"Bucket": self.config.bucket, "Key": key}, ExpiresIn=expires_s)))

    def delete(self, keys: list[str]) -> None:
        for i in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": k} for k in keys[i:i + DELETE_BATCH]]
            self._call("delete from", lambda c, b=batch: c.delete_objects(
                Bucket=self.config.bucket, Delete={"Objects": b, "Quiet": True}))

    def delete_scope(self, scope: str) -> int:
        """Delete every blob of one run (or deployed app); how many there were."""
        prefix = self.config.scope_prefix(scope)

        def listed(c: Any) -> list[str]:
            keys: list[str] = []
            for page in c.get_paginator("list_objects_v2").paginate(Bucket=self.config.bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents") or ())
            return keys

        keys = self._call("list", listed)
        self.delete(keys)
        return len(keys)

    def _call(self, action: str, f: Any) -> Any:
        client = self.client
        try:
            return f(client)
        except Exception as exc:  # botocore's errors, translated
            raise translate(exc, action, self.config) from None


def _make_client() -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise UserError(f"{BLOB_ENV} needs boto3, which is not installed",
                        hint="pip install 'modalc[s3]' (or pip install boto3)") from None
    session = boto3.session.Session()
    region = session.region_name or "us-east-1"
    base = {"signature_version": "s3v4", "connect_timeout": 5, "read_timeout": 120,
            "retries": {"max_attempts": 4, "mode": "standard"}}
    client = session.client("s3", region_name=region, config=Config(**base))
    if "amazonaws.com" not in str(client.meta.endpoint_url):  # MinIO, Ceph, Garage, moto: path-style keys
        client = session.client("s3", region_name=region,
                                config=Config(**base, s3={"addressing_style": "path"}))
    return client


def translate(exc: Exception, action: str, config: BlobConfig) -> UserError:
    """One line with a hint for botocore's errors (never the key, the credentials or a URL)."""
    name = type(exc).__name__
    where = f"the blob store {config.url}"
    code = ""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str((response.get("Error") or {}).get("Code") or "")
    if code in ("NoSuchBucket", "404") or name == "NoSuchBucket":
        return UserError(f"cannot {action} {where}: the bucket {config.bucket!r} does not exist",
                         hint=f"create it, or point {BLOB_ENV} at an existing bucket")
    if code in ("AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                "ExpiredToken", "InvalidToken", "AccountProblem"):
        return UserError(f"cannot {action} {where}: access denied ({code})",
                         hint="check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or AWS_PROFILE): they need "
                         f"s3:PutObject, s3:GetObject, s3:ListBucket and s3:DeleteObject on {config.bucket}")
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"):
        return UserError(f"cannot {action} {where}: the endpoint is unreachable ({name})",
                         hint="check AWS_ENDPOINT_URL (MinIO, Ceph, Garage) and the network")
    if name in ("NoCredentialsError", "PartialCredentialsError", "ProfileNotFound", "NoRegionError"):
        return UserError(f"cannot {action} {where}: {name}",
                         hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
    if isinstance(exc, UserError):
        return exc
    return UserError(f"cannot {action} {where}: {name}{f' ({code})' if code else ''}",
                     hint="check the bucket, the credentials and AWS_ENDPOINT_URL")


class RunBlobs:
    """The blobs of one run: uploaded once per content, presigned per dispatch, deleted once no call of the
    run still needs them (each call's after its result was read; all of a scope when the run ends)."""

    def __init__(self, store: BlobStore, run_id: str):
        self.store = store
        self.run_id = run_id
        self._lock = threading.Lock()
        self._refs: dict[str, int] = {}  # key -> calls that still need it
        self._scopes: set[str] = set()

    def reference(self, payload: bytes, *, scope: str | None = None, expires_s: int = MIN_EXPIRY_S
                  ) -> tuple[bytes, str]:
        """Upload ``payload`` (once per content and scope) and the small envelope a dispatch carries instead."""
        digest = hashlib.sha256(payload).hexdigest()
        scope = scope or self.run_id
        key = self.store.config.scope_prefix(scope) + digest
        with self._lock:
            known = key in self._refs
            self._refs[key] = self._refs.get(key, 0) + 1
            self._scopes.add(scope)
        try:
            if not known:
                self.store.put(key, payload)
            url = self.store.presign(key, expires_s)
        except BaseException:
            self.release(key, delete=False)
            raise
        envelope = protocol.encode("blob", None, url=url, size=len(payload), sha256=digest,
                                   expires=int(time.time()) + expires_s, key=key)
        return envelope, key

    def release(self, key: str, *, delete: bool = True) -> None:
        """One call no longer needs ``key``; deleted when it was the last."""
        with self._lock:
            left = self._refs.get(key, 0) - 1
            if left > 0:
                self._refs[key] = left
                return
            self._refs.pop(key, None)
        if delete:
            try:
                self.store.delete([key])
            except UserError:
                pass  # the run's end sweeps its scope again

    def close(self) -> list[str]:
        """The run ended: delete every blob of the run's own scope; warnings for what could not be deleted."""
        warnings: list[str] = []
        if not self.used:
            return warnings  # no blob was uploaded: boto3 is not even imported
        try:
            self.store.delete_scope(self.run_id)
        except UserError as exc:
            warnings.append(f"could not delete the run's blobs: {exc.message}\n  delete them with: "
                            f"aws s3 rm --recursive s3://{self.store.config.bucket}/"
                            f"{self.store.config.scope_prefix(self.run_id)}")
        return warnings

    @property
    def used(self) -> bool:
        return bool(self._scopes)

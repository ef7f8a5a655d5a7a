"""modalc's low-level Nomad HTTP client: connection settings like the nomad CLI, and NomadAPI.

Runs on the client (the machine that runs ``modalc``), never inside a task.

``NomadSettings.from_env`` reads the same variables as the ``nomad`` CLI
(NOMAD_ADDR, NOMAD_TOKEN, NOMAD_NAMESPACE, NOMAD_REGION, NOMAD_CACERT,
NOMAD_CLIENT_CERT, NOMAD_CLIENT_KEY, NOMAD_SKIP_VERIFY). TLS is verified by
default: python-nomad defaults to ``verify=False``, so ``verify`` is always set
explicitly (the CA path, or True).

``NomadAPI`` wraps python-nomad 2.1.0 (``nomad.Nomad``) and works around its
quirks (nomad-reference.md 1e): the dispatch idempotency token is sent as the
``?idempotency_token=`` query parameter, files are read as bytes
(``.content``), the namespace is passed explicitly on every call (python-nomad
does not add it for evaluations and variables), and the timeout is long enough
for blocking queries. Safe requests (GET, DELETE, plan, and dispatch with an
idempotency token) are retried on 5xx and connection errors with a short
backoff; a register is never retried. Errors become ``ModalcError``/``UserError``;
the token never appears in messages or reprs.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import nomad
import nomad.api.exceptions as nomad_exc
import requests
from nomad.api.base import Requester

from ..errors import ModalcError, UserError

DEFAULT_ADDR = "http://127.0.0.1:4646"
PAYLOAD_LIMIT = 16384  # bytes of decoded dispatch payload (nomad/job_endpoint.go)
TOKEN_HINT = ("set NOMAD_TOKEN (or --token) to an ACL token allowed to submit, dispatch and read jobs "
              "and to read allocation files and logs in this namespace")

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False", ""}


class NomadError(ModalcError):
    """Talking to Nomad failed (not the user's fault as far as modalc can tell)."""


class NomadNotFound(NomadError):
    """Nomad answered 404 (no such job, allocation, variable, or a garbage-collected allocation)."""


class NomadNoSuchFile(NomadNotFound):
    """The allocation is there but the file is not. Nomad answers **400** ``stat <path>: no such file or
    directory`` (client/fs_endpoint.go ``stream``: an ``fs.Stat`` error is sent with http.StatusBadRequest;
    ``cat`` and ``readat`` are ``FileSystem.Stream`` since Nomad 0.8: command/agent/fs_endpoint.go)."""


class NomadTaskNotStarted(NomadError):
    """404 ``task "main" not started yet. No logs available`` (client/fs_endpoint.go ``logs``:
    ``taskState.StartedAt.IsZero()``): the allocation exists and may still start (an image pull, a busy
    node). Never a garbage-collected allocation, which is 404 ``Unknown allocation "<id>"`` (client) or
    ``unknown alloc ID "<id>"`` (server, nomad/client_fs_endpoint.go)."""


def fs_error(status: int, text: str, what: str) -> NomadError | None:
    """The exception for a /v1/client/fs answer that is not a plain failure, matched on Nomad's texts."""
    low = text.lower()
    if "not started yet" in low:
        return NomadTaskNotStarted(f"Nomad: {what}: the task has not started yet ({text})")
    if "no such file or directory" in low:
        return NomadNoSuchFile(f"Nomad: {what}: no such file ({text})")
    if status == 404:
        return NomadNotFound(f"Nomad: {what}: not found ({text})")
    return None


class NomadRejected(UserError):
    """Nomad refused the request itself (a 400, or one of its server's RPC errors, which it sends as 500):
    retrying cannot change the answer. ``text`` is Nomad's own message."""

    def __init__(self, message: str, *, text: str = "", **kw: Any):
        super().__init__(message, **kw)
        self.text = text


# Errors of Nomad's server RPCs carry no HTTP code, so Nomad answers them with **500** and their text
# (command/agent/http.go ``errCodeFromHandler``: 500 unless an HTTPCodedError, an RPC-coded error, or the
# "Permission denied" / "ACL token not found" suffixes, which are 403). These texts are answers, not
# outages; an unknown 500 ("No cluster leader", a lost RPC connection) is still retried.
RPC_REJECTIONS = (
    "error occurred:", "errors occurred:",  # job validation (nomad/job_endpoint.go Register/Plan: multierror)
    "Enforcing job modify index",  # RegisterEnforceIndexErrPrefix, nomad/job_endpoint.go
    "parameterized job not found", "is not a parameterized job", "is stopped",  # Dispatch
    "Payload is not provided but required", "Payload provided but forbidden",  # validateDispatchRequest
    "Payload exceeds maximum size", "unpermitted metadata keys", "did not provide required meta keys",
    "can't force launch non-periodic job",  # nomad/periodic_endpoint.go Force
    "ACL token expired", "ACL token is invalid",  # nomad/structs/errors.go, not mapped to 403 by http.go
    "disabled by the scheduler configuration",  # ErrJobRegistrationDisabled (403 in newer agents)
    "variables are limited to 64KiB", 'invalid path "', "is a reserved top-level directory path",
    "is a reserved directory path", "are valid paths under the top-level",  # nomad/structs/variables.go
)


def rejection(status: int, text: str) -> bool:
    """Whether a 5xx answer of Nomad is one of its server's RPC errors (see RPC_REJECTIONS)."""
    return status == 500 and any(marker in text for marker in RPC_REJECTIONS)


class StreamStop:
    """Ends a streaming read from another thread: ``stop`` shuts the response's socket down for reading
    (urllib3's ``HTTPResponse.shutdown``, urllib3 >= 2.3, made to unblock a read in progress), so the
    reader's loop ends at once; a stream opened after ``stop`` is closed unread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._responses: list[requests.Response] = []
        self.stopped = False

    def attach(self, resp: requests.Response) -> bool:
        with self._lock:
            if not self.stopped:
                self._responses.append(resp)
            return not self.stopped

    def detach(self, resp: requests.Response) -> None:
        with self._lock:
            if resp in self._responses:
                self._responses.remove(resp)

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            responses, self._responses = self._responses, []
        for resp in responses:
            try:
                resp.raw.shutdown()
            except (AttributeError, OSError, RuntimeError, ValueError):  # released or closed meanwhile
                resp.close()


class NomadConflict(NomadError):
    """A check-and-set write lost (409); ``current`` is the variable Nomad holds now."""

    def __init__(self, message: str, *, current: dict[str, Any] | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.current = current


def _parse_bool(name: str, value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UserError(f"{name}={value!r} is not a boolean", hint="use true or false")


@dataclass(frozen=True)
class NomadSettings:
    """Where and how to reach Nomad. ``repr`` never shows the token."""

    address: str = DEFAULT_ADDR
    token: str | None = field(default=None, repr=False)
    namespace: str = "default"
    region: str | None = None
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    skip_verify: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> NomadSettings:
        """Settings from NOMAD_* variables, then non-None ``overrides`` (CLI flags) on top."""
        env = os.environ if environ is None else environ
        settings = cls(
            address=(env.get("NOMAD_ADDR") or DEFAULT_ADDR).rstrip("/"),
            token=env.get("NOMAD_TOKEN") or None,
            namespace=env.get("NOMAD_NAMESPACE") or "default",
            region=env.get("NOMAD_REGION") or None,
            ca_cert=env.get("NOMAD_CACERT") or None,
            client_cert=env.get("NOMAD_CLIENT_CERT") or None,
            client_key=env.get("NOMAD_CLIENT_KEY") or None,
            skip_verify=_parse_bool("NOMAD_SKIP_VERIFY", env.get("NOMAD_SKIP_VERIFY", "")),
        )
        unknown = set(overrides) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown Nomad settings: {', '.join(sorted(unknown))}")
        flags = {k: v for k, v in overrides.items() if v is not None}
        if "address" in flags:
            flags["address"] = str(flags["address"]).rstrip("/")
        settings = replace(settings, **flags)
        if "://" not in settings.address:
            raise UserError(f"Nomad address {settings.address!r} needs a scheme",
                            hint="e.g. NOMAD_ADDR=http://127.0.0.1:4646 or https://nomad.example:4646")
        if bool(settings.client_cert) != bool(settings.client_key):
            raise UserError("NOMAD_CLIENT_CERT and NOMAD_CLIENT_KEY must be set together")
        return settings

    @property
    def verify(self) -> bool | str:
        """The ``requests`` verify value: False only with skip_verify, else the CA path or True."""
        if self.skip_verify:
            return False
        return self.ca_cert or True

    def __repr__(self) -> str:
        token = "<set>" if self.token else None
        return (f"NomadSettings(address={self.address!r}, token={token}, namespace={self.namespace!r}, "
                f"region={self.region!r}, ca_cert={self.ca_cert!r}, client_cert={self.client_cert!r}, "
                f"client_key={self.client_key!r}, skip_verify={self.skip_verify!r})")

    __str__ = __repr__


class _VolumeEndpoint(Requester):  # type: ignore[misc]  # python-nomad 2.1.0 has no /v1/volume endpoint
    ENDPOINT = "volume"


class _VolumesEndpoint(Requester):  # type: ignore[misc]
    ENDPOINT = "volumes"


class _ServiceEndpoint(Requester):  # type: ignore[misc]  # Nomad-native service registrations
    ENDPOINT = "service"


class _ServicesEndpoint(Requester):  # type: ignore[misc]
    ENDPOINT = "services"


class _ClientAllocationEndpoint(Requester):  # type: ignore[misc]
    ENDPOINT = "client/allocation"


class NomadAPI:
    """The Nomad calls modalc makes, on top of python-nomad. Use as a context manager or call close()."""

    def __init__(self, settings: NomadSettings, *, connect_timeout: float = 10.0, read_timeout: float = 330.0,
                 retries: int = 4, backoff: float = 0.2):
        self.settings = settings
        self.retries = retries
        self.backoff = backoff
        self._session = requests.Session()
        self._session.verify = settings.verify
        if settings.client_cert:
            self._session.cert = (settings.client_cert, settings.client_key)  # type: ignore[assignment]
        self._timeout = (connect_timeout, read_timeout)
        cert: tuple[str, ...] = (settings.client_cert, settings.client_key) if settings.client_cert else ()  # type: ignore[assignment]
        self._n = nomad.Nomad(address=settings.address, token=settings.token, namespace=settings.namespace,
                              region=settings.region, timeout=(connect_timeout, read_timeout),
                              verify=settings.verify, cert=cert, session=self._session)
        self._volume = _VolumeEndpoint(**self._n.requester_settings)
        self._volumes = _VolumesEndpoint(**self._n.requester_settings)
        self._service = _ServiceEndpoint(**self._n.requester_settings)
        self._services = _ServicesEndpoint(**self._n.requester_settings)
        self._client_alloc = _ClientAllocationEndpoint(**self._n.requester_settings)
        # python-nomad falls back to NOMAD_TOKEN itself; the settings are the only source of truth.
        for ep in (self._n.job, self._n.jobs, self._n.allocation, self._n.evaluation, self._n.variable,
                   self._n.variables, self._n.client.cat, self._n.client.read_at, self._n.client.stream_logs,
                   self._n.client.ls, self._n.node, self._n.nodes, self._volume, self._volumes, self._service, self._services,
                   self._client_alloc):
            ep.token = settings.token

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> NomadAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NomadAPI({self.settings!r})"

    # ------------------------------------------------------------------ transport
    def _call(self, endpoint: Any, *parts: str, method: str, params: Mapping[str, Any] | None = None,
              json: Any = None, retry: bool = False, what: str = "") -> requests.Response:
        attempts = 1 + (self.retries if retry else 0)
        query = {"namespace": self.settings.namespace, **(params or {})}
        what = what or f"{method.upper()} {'/'.join((endpoint.ENDPOINT, *parts))}"
        last = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            try:
                return endpoint.request(*parts, method=method, params=dict(query), json=json)  # type: ignore[no-any-return]
            except nomad_exc.URLNotAuthorizedNomadException as exc:
                raise self._refused(_text(exc), what) from None
            except nomad_exc.BadRequestNomadException as exc:
                text = _text(exc)
                raise (fs_error(400, text, what) or NomadRejected(f"Nomad rejected {what}: {text}", text=text)) \
                    from None
            except nomad_exc.URLNotFoundNomadException as exc:
                raise (fs_error(404, _text(exc), what) or NomadNotFound(what)) from None
            except nomad_exc.VariableConflict as exc:
                current = _json(exc)
                raise NomadConflict(f"Nomad: {what}: check-and-set conflict (409)", current=current) from None
            except nomad_exc.BaseNomadException as exc:
                resp = exc.nomad_resp
                if isinstance(resp, requests.Response):
                    text = _text(exc)
                    if text.startswith("ACL token"):
                        raise self._refused(text, what, resp.status_code) from None
                    if rejection(resp.status_code, text):
                        raise NomadRejected(f"Nomad rejected {what}: {text}", text=text) from None
                    if resp.status_code < 500:
                        raise NomadError(f"Nomad: {what} failed ({resp.status_code}): {text}") from None
                    last = f"HTTP {resp.status_code}: {text}"
                else:
                    last = f"{type(resp).__name__}: {resp}"
            except requests.RequestException as exc:  # TimeoutNomadException and friends
                last = f"{type(exc).__name__}: {exc}"
        tried = f" (tried {attempts} times)" if attempts > 1 else ""
        raise NomadError(f"Nomad: {what} failed{tried}: {last}",
                         hint=f"check that Nomad is reachable at {self.settings.address} (NOMAD_ADDR)")

    def _refused(self, text: str, what: str, status: int = 403) -> UserError:
        """The error for an ACL refusal. Nomad says which (nomad/structs/errors.go): "ACL token not found"
        (no such token: revoked, expired or from another cluster), "ACL token expired", or
        "Permission denied" (the token, or the anonymous policy when none is sent, lacks a capability)."""
        text = text or "Permission denied"
        if not self.settings.token:
            hint = "no token was sent: " + TOKEN_HINT
        elif text.startswith("ACL token"):
            hint = "this cluster does not know the token (revoked, expired, or another cluster's): " + TOKEN_HINT
        else:
            hint = TOKEN_HINT
        return UserError(f"Nomad refused {what} ({status} {text})", hint=hint)

    # ------------------------------------------------------------------ jobs
    def register(self, job: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /v1/jobs. ``job`` is the API Job (or the ``{"Job": ...}`` envelope). Never retried."""
        body = dict(job) if "Job" in job else {"Job": dict(job)}
        return _obj(self._call(self._n.jobs, method="post", json=body, what=f"register job {body['Job'].get('ID')!r}"))

    def deregister(self, job_id: str, purge: bool = True) -> dict[str, Any]:
        """DELETE /v1/job/<id>?purge=..."""
        resp = self._call(self._n.job, job_id, method="delete", params={"purge": "true" if purge else "false"},
                          retry=True, what=f"stop job {job_id!r}")
        return _obj(resp)

    def job(self, job_id: str) -> dict[str, Any] | None:
        """GET /v1/job/<id>, or None when it does not exist."""
        try:
            return _obj(self._call(self._n.job, job_id, method="get", retry=True, what=f"read job {job_id!r}"))
        except NomadNotFound:
            return None

    def jobs(self, prefix: str = "", filter_: str | None = None) -> list[dict[str, Any]]:
        """GET /v1/jobs?prefix= (job stubs)."""
        return self.jobs_index(prefix, filter_)[0]

    def jobs_index(self, prefix: str = "", filter_: str | None = None, index: int | None = None,
                   wait: str = "5m") -> tuple[list[dict[str, Any]], int]:
        """GET /v1/jobs, blocking until the index passes ``index`` when given; (stubs, X-Nomad-Index)."""
        params: dict[str, Any] = {"prefix": prefix, "meta": "true"}  # stubs with Meta (Nomad >= 1.6)
        if filter_:
            params["filter"] = filter_
        if index is not None:
            params.update(index=index, wait=wait)
        resp = self._call(self._n.jobs, method="get", params=params, retry=True, what="list jobs")
        return _list(resp), int(resp.headers.get("X-Nomad-Index") or 0)

    def plan(self, job_id: str, job: Mapping[str, Any], diff: bool = True) -> dict[str, Any]:
        """POST /v1/job/<id>/plan (read-only, so retried)."""
        return _obj(self._call(self._n.job, job_id, "plan", method="post", json={"Job": dict(job), "Diff": diff},
                                retry=True, what=f"plan job {job_id!r}"))

    def dispatch(self, job_id: str, payload: bytes = b"", meta: Mapping[str, str] | None = None,
                 idempotency_token: str | None = None) -> dict[str, Any]:
        """POST /v1/job/<id>/dispatch; retried only with an idempotency token (sent as a query parameter)."""
        if len(payload) > PAYLOAD_LIMIT:
            raise UserError(f"dispatch payload is {len(payload)} bytes; Nomad's limit is {PAYLOAD_LIMIT} (16 KiB)",
                            hint="set MODALC_BLOB_URL=s3://BUCKET/PREFIX for large inputs, or pass a reference (a volume path)")
        body: dict[str, Any] = {"Meta": dict(meta or {})}
        if payload:
            body["Payload"] = base64.b64encode(payload).decode()
        params = {"idempotency_token": idempotency_token} if idempotency_token else {}
        return _obj(self._call(self._n.job, job_id, "dispatch", method="post", params=params, json=body,
                                retry=bool(idempotency_token), what=f"dispatch job {job_id!r}"))

    def job_allocations(self, job_id: str, index: int | None = None,
                        wait: str = "5m") -> tuple[list[dict[str, Any]], int]:
        """GET /v1/job/<id>/allocations, blocking until the index passes ``index``; (allocs, X-Nomad-Index)."""
        params: dict[str, Any] = {}
        if index is not None:
            params = {"index": index, "wait": wait}
        resp = self._call(self._n.job, job_id, "allocations", method="get", params=params, retry=True,
                          what=f"list allocations of {job_id!r}")
        return _list(resp), int(resp.headers.get("X-Nomad-Index") or 0)

    def allocation(self, alloc_id: str, index: int | None = None, wait: str = "5m") -> dict[str, Any]:
        """GET /v1/allocation/<id>, blocking until the index passes ``index`` when given."""
        params: dict[str, Any] = {"index": index, "wait": wait} if index is not None else {}
        return _obj(self._call(self._n.allocation, alloc_id, method="get", params=params, retry=True,
                                what=f"read allocation {alloc_id}"))

    def versions(self, job_id: str) -> list[dict[str, Any]]:
        """GET /v1/job/<id>/versions: the job's versions, newest first."""
        data = _obj(self._call(self._n.job, job_id, "versions", method="get", retry=True,
                               what=f"read versions of {job_id!r}"))
        return list(data.get("Versions") or [])

    def evaluation(self, eval_id: str) -> dict[str, Any]:
        """GET /v1/evaluation/<id> (namespace passed explicitly)."""
        return _obj(self._call(self._n.evaluation, eval_id, method="get", retry=True,
                                what=f"read evaluation {eval_id}"))

    # ------------------------------------------------------------------ services (provider = "nomad")
    def services(self) -> list[dict[str, Any]]:
        """GET /v1/services: ``[{"Namespace": ..., "Services": [{"ServiceName": ..., "Tags": [...]}]}]``."""
        return _list(self._call(self._services, method="get", retry=True, what="list services"))

    def service(self, name: str, index: int | None = None, wait: str = "5m") -> tuple[list[dict[str, Any]], int]:
        """GET /v1/service/<name>: its registrations (``Address``, ``Port``, ``AllocID``, ``JobID`` ...), blocking
        until the index passes ``index`` when given; (registrations, X-Nomad-Index)."""
        params: dict[str, Any] = {"index": index, "wait": wait} if index is not None else {}
        resp = self._call(self._service, name, method="get", params=params, retry=True,
                          what=f"read service {name!r}")
        return _list(resp), int(resp.headers.get("X-Nomad-Index") or 0)

    def alloc_checks(self, alloc_id: str) -> dict[str, Any]:
        """GET /v1/client/allocation/<id>/checks: the latest result of each Nomad-native service check
        (``{check id: {"Status": "success"|"failure"|"pending", "Service", "Check", "Output", ...}}``)."""
        return _obj(self._call(self._client_alloc, alloc_id, "checks", method="get", retry=True,
                               what=f"read the checks of allocation {alloc_id}"))

    # ------------------------------------------------------------------ files and logs
    def read_file(self, alloc_id: str, path: str) -> bytes:
        """GET /v1/client/fs/cat/<alloc>?path= as raw bytes."""
        resp = self._call(self._n.client.cat, alloc_id, method="get", params={"path": path}, retry=True,
                          what=f"read {path} of allocation {alloc_id}")
        return _content(resp)

    def read_at(self, alloc_id: str, path: str, offset: int, limit: int) -> bytes:
        """GET /v1/client/fs/readat/<alloc>?path=&offset=&limit= as raw bytes."""
        resp = self._call(self._n.client.read_at, alloc_id, method="get",
                          params={"path": path, "offset": offset, "limit": limit}, retry=True,
                          what=f"read {path} of allocation {alloc_id}")
        return _content(resp)

    def logs(self, alloc_id: str, task: str, type_: str = "stdout", offset: int = 0,
             origin: str = "start") -> bytes:
        """GET /v1/client/fs/logs/<alloc>?plain=true (no follow): the log bytes from ``offset``."""
        resp = self._call(self._n.client.stream_logs, alloc_id, method="get",
                          params={"task": task, "type": type_, "plain": "true", "follow": "false",
                                  "offset": offset, "origin": origin},
                          retry=True, what=f"read {type_} of task {task!r} in allocation {alloc_id}")
        return _content(resp)

    def follow_logs(self, alloc_id: str, task: str, type_: str = "stdout", offset: int = 0,
                    stop: StreamStop | None = None) -> Iterator[bytes]:
        """GET /v1/client/fs/logs/<alloc>?follow=true&plain=true: log bytes as they are written.

        Nomad does **not** end this stream when the task ends: following, client/fs_endpoint.go
        ``logsImpl`` returns only when the request is cancelled, on an error, or when the log file is
        deleted (the allocation collected); hashicorp/nomad#18369. The caller ends it with ``stop``
        (compiler/backends/nomad_logs.py watches the allocation for that). Not retried here: the caller
        resumes with ``offset`` plus the bytes it got (so nothing is printed twice).
        """
        params: dict[str, Any] = {"task": task, "type": type_, "plain": "true", "follow": "true",
                                  "offset": offset, "origin": "start", "namespace": self.settings.namespace}
        if self.settings.region:
            params["region"] = self.settings.region
        headers = {"X-Nomad-Token": self.settings.token} if self.settings.token else {}
        what = f"follow {type_} of task {task!r} in allocation {alloc_id}"
        url = f"{self.settings.address}/v1/client/fs/logs/{alloc_id}"
        try:
            resp = self._session.get(url, params=params, headers=headers, stream=True, timeout=self._timeout)
        except requests.RequestException as exc:
            raise NomadError(f"Nomad: {what} failed: {type(exc).__name__}: {exc}") from None
        if stop is not None and not stop.attach(resp):
            resp.close()
            return
        with resp:
            if resp.status_code == 403:
                raise self._refused(resp.text.strip(), what)
            if resp.status_code in (400, 404):
                error = fs_error(resp.status_code, resp.text.strip(), what)
                if error is not None:
                    raise error
            if resp.status_code != 200:
                raise NomadError(f"Nomad: {what} failed ({resp.status_code}): {resp.text.strip()[:200]}")
            try:
                yield from resp.iter_content(chunk_size=None)
            except requests.RequestException as exc:
                if stop is not None and stop.stopped:
                    return
                raise NomadError(f"Nomad: {what} broke off: {type(exc).__name__}") from None
            finally:
                if stop is not None:
                    stop.detach(resp)

    # ------------------------------------------------------------------ ACL policies
    def put_acl_policy(self, name: str, rules: str, description: str, job: tuple[str, str] | None = None) -> None:
        """POST /v1/acl/policy/<name> (management token). ``job`` = (namespace, job ID) attaches the policy
        to a job's workload identities (``JobACL``, Nomad >= 1.5: api/acl.go ``JobACL``). Not retried."""
        body: dict[str, Any] = {"Name": name, "Description": description, "Rules": rules}
        if job is not None:
            body["JobACL"] = {"Namespace": job[0], "JobID": job[1]}
        self._call(self._n.acl, "policy", name, method="post", json=body, what=f"write ACL policy {name!r}").close()

    def delete_acl_policy(self, name: str) -> None:
        """DELETE /v1/acl/policy/<name> (management token)."""
        self._call(self._n.acl, "policy", name, method="delete", retry=True,
                   what=f"delete ACL policy {name!r}").close()

    # ------------------------------------------------------------------ variables
    def get_variable(self, path: str) -> dict[str, Any] | None:
        """GET /v1/var/<path>, or None if absent."""
        try:
            return _obj(self._call(self._n.variable, path, method="get", retry=True,
                                    what=f"read variable {path!r}"))
        except NomadNotFound:
            return None

    def put_variable(self, path: str, items: Mapping[str, str], cas: int | None = None) -> dict[str, Any]:
        """PUT /v1/var/<path>[?cas=]; NomadConflict on a lost check-and-set. Not retried (a retried
        check-and-set whose first answer was lost would report a false conflict)."""
        params = {"cas": cas} if cas is not None else {}
        return _obj(self._call(self._n.variable, path, method="put", params=params,
                                json={"Path": path, "Items": dict(items)},
                                what=f"write variable {path!r}"))

    def delete_variable(self, path: str, cas: int | None = None) -> None:
        """DELETE /v1/var/<path>[?cas=]."""
        params = {"cas": cas} if cas is not None else {}
        self._call(self._n.variable, path, method="delete", params=params, retry=True,
                   what=f"delete variable {path!r}").close()

    def list_variables(self, prefix: str = "") -> list[dict[str, Any]]:
        """GET /v1/vars?prefix= (metadata only, no items)."""
        return _list(self._call(self._n.variables, method="get", params={"prefix": prefix}, retry=True,
                                what="list variables"))

    # ------------------------------------------------------------------ volumes and nodes
    def volumes(self, type_: str) -> list[dict[str, Any]]:
        """GET /v1/volumes?type=csi|host (stubs; ``host`` lists dynamic host volumes, Nomad >= 1.10)."""
        return _list(self._call(self._volumes, method="get", params={"type": type_}, retry=True,
                                what=f"list {type_} volumes"))

    def volume(self, type_: str, volume_id: str) -> dict[str, Any] | None:
        """GET /v1/volume/<csi|host>/<id>, or None when it does not exist."""
        try:
            return _obj(self._call(self._volume, type_, volume_id, method="get", retry=True,
                                   what=f"read {type_} volume {volume_id!r}"))
        except NomadNotFound:
            return None

    def create_csi_volume(self, volume: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /v1/volume/csi/<id>/create with ``{"Volumes": [volume]}``. Never retried."""
        vid = str(volume["ID"])
        return _obj(self._call(self._volume, "csi", vid, "create", method="put", json={"Volumes": [dict(volume)]},
                               what=f"create csi volume {vid!r}"))

    def register_csi_volume(self, volume: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /v1/volume/csi/<id> with ``{"Volumes": [volume]}``: an existing volume (ExternalID). Never retried."""
        vid = str(volume["ID"])
        return _obj(self._call(self._volume, "csi", vid, method="put", json={"Volumes": [dict(volume)]},
                               what=f"register csi volume {vid!r}"))

    def create_host_volume(self, volume: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /v1/volume/host/create with ``{"Volume": volume}`` (dynamic host volumes). Never retried."""
        return _obj(self._call(self._volume, "host", "create", method="put", json={"Volume": dict(volume)},
                               what=f"create host volume {volume.get('Name')!r}"))

    def delete_volume(self, type_: str, volume_id: str) -> None:
        """DELETE /v1/volume/<csi|host>/<id>/delete (the storage too, then deregistered)."""
        self._call(self._volume, type_, volume_id, "delete", method="delete", retry=True,
                   what=f"delete {type_} volume {volume_id!r}").close()

    def nodes(self) -> list[dict[str, Any]]:
        """GET /v1/nodes (stubs)."""
        return _list(self._call(self._n.nodes, method="get", retry=True, what="list nodes"))

    def node(self, node_id: str) -> dict[str, Any]:
        """GET /v1/node/<id> (with ``HostVolumes``)."""
        return _obj(self._call(self._n.node, node_id, method="get", retry=True, what=f"read node {node_id}"))


def _text(exc: nomad_exc.BaseNomadException) -> str:
    resp = exc.nomad_resp
    if isinstance(resp, requests.Response):
        try:
            return resp.text.strip()
        finally:
            resp.close()
    return str(resp)


def _json(exc: nomad_exc.BaseNomadException) -> dict[str, Any] | None:
    resp = exc.nomad_resp
    if isinstance(resp, requests.Response):
        try:
            data = resp.json()
            return data if isinstance(data, dict) else None
        except ValueError:
            return None
        finally:
            resp.close()
    return None


def _close(exc: nomad_exc.BaseNomadException) -> None:
    if isinstance(exc.nomad_resp, requests.Response):
        exc.nomad_resp.close()


def _content(resp: requests.Response) -> bytes:
    try:
        return resp.content
    finally:
        resp.close()


def _body(resp: requests.Response) -> Any:
    try:
        if not resp.content:
            return {}
        return resp.json()
    except ValueError as exc:
        raise NomadError(f"Nomad sent a response that is not JSON: {resp.text[:200]!r}") from exc
    finally:
        resp.close()


def _obj(resp: requests.Response) -> dict[str, Any]:
    data = _body(resp)
    if not isinstance(data, dict):
        raise NomadError(f"Nomad sent {type(data).__name__} where an object was expected")
    return data


def _list(resp: requests.Response) -> list[dict[str, Any]]:
    data = _body(resp)
    if not isinstance(data, list):
        raise NomadError(f"Nomad sent {type(data).__name__} where a list was expected")
    return data

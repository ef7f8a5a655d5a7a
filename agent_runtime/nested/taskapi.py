"""A Nomad HTTP client over the Task API socket, for calls made inside an allocation.

Runs inside allocations (on Nomad); standard library only. Nomad gives every task a Unix domain socket at
``${NOMAD_SECRETS_DIR}/api.sock`` that reaches the local agent's HTTP API (Nomad >= 1.5). It "always
requires authentication even if ACLs are disabled" and accepts workload identities; once authenticated,
"the normal endpoint-specific authorization is applied when ACLs are enabled", and the anonymous policy is
not available through it (website/content/api-docs/task-api.mdx). The credential is the task's default
workload identity, which ``identity { file = true }`` writes to ``${NOMAD_SECRETS_DIR}/nomad_token``
(website/content/docs/job-specification/identity.mdx); it is read on every request, since Nomad renews it.
The user's own token is never involved.

``TaskAPI`` offers the subset of ``compiler.backends.nomad_api.NomadAPI``'s methods that a call needs, with
the same names and shapes, so the waiting logic can serve both.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import threading
import time
from urllib.parse import quote, urlencode

from . import IDENTITY_FILE, TASK_API_SOCKET

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any

_SUN_PATH_MAX = 107  # sockaddr_un.sun_path holds 108 bytes with the terminating NUL (unix(7))


class TaskAPIError(Exception):
    """A Task API request failed; ``status`` is the HTTP status (0: the socket could not be reached)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class TaskAPINotFound(TaskAPIError):
    """404: no such job, allocation or file (the text says which)."""


class TaskAPIForbidden(TaskAPIError):
    """403 Permission denied: the workload identity's policies do not grant the request."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class TaskAPI:
    """Requests to the local Nomad agent through the task's socket, authenticated by its workload identity."""

    def __init__(self, secrets_dir: str, namespace: str, *, timeout: float = 330.0, retries: int = 4,
                 backoff: float = 0.2) -> None:
        self.secrets_dir = secrets_dir
        self.namespace = namespace
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        path = os.path.join(secrets_dir, TASK_API_SOCKET)
        if len(os.fsencode(path)) > _SUN_PATH_MAX:  # a deep task dir: reach the socket through a short path
            self._dir_fd = os.open(secrets_dir, os.O_RDONLY | os.O_DIRECTORY)
            path = f"/proc/self/fd/{self._dir_fd}/{TASK_API_SOCKET}"
        self.socket_path = path
        self._local = threading.local()

    def _token(self) -> str:
        try:
            with open(os.path.join(self.secrets_dir, IDENTITY_FILE), encoding="utf-8") as fh:
                return fh.read().strip()
        except OSError:
            return os.environ.get("NOMAD_TOKEN", "")  # identity { env = true }

    def _conn(self) -> _UnixConnection:
        conn: _UnixConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _UnixConnection(self.socket_path, self.timeout)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def request(self, method: str, path: str, params: Mapping[str, Any] | None = None, body: Any = None, *,
                retry: bool = False, what: str = "") -> tuple[int, dict[str, str], bytes]:
        """One request; JSON ``body``. Retried on connection errors and 5xx when ``retry`` (safe requests)."""
        query = {"namespace": self.namespace, **(params or {})}
        url = f"{path}?{urlencode(query)}"
        raw = b"" if body is None else json.dumps(body).encode()
        what = what or f"{method} {path}"
        attempts = 1 + (self.retries if retry else 0)
        last = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            conn = self._conn()
            try:
                conn.request(method, url, body=raw, headers={"X-Nomad-Token": self._token(),
                                                             "Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status >= 500 and retry:
                last = f"{resp.status}: {data.decode('utf-8', 'replace').strip()[:200]}"
                continue
            self._check(resp.status, data, what)
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        raise TaskAPIError(f"Nomad Task API ({self.socket_path}): {what} failed: {last}")

    @staticmethod
    def _check(status: int, data: bytes, what: str) -> None:
        if status < 400:
            return
        text = data.decode("utf-8", "replace").strip()
        if status == 403:
            raise TaskAPIForbidden(f"Nomad refused {what}: 403 {text or 'Permission denied'}", 403)
        if status == 404:
            raise TaskAPINotFound(f"Nomad: {what}: not found ({text})", 404)
        raise TaskAPIError(f"Nomad rejected {what} ({status}): {text[:300]}", status)

    def _json(self, method: str, path: str, params: Mapping[str, Any] | None = None, body: Any = None, *,
              retry: bool = True, what: str = "") -> tuple[Any, int]:
        _, headers, data = self.request(method, path, params, body, retry=retry, what=what)
        return (json.loads(data) if data else {}), int(headers.get("x-nomad-index") or 0)

    # -- the NomadAPI subset ----------------------------------------------------------
    def dispatch(self, job_id: str, payload: bytes = b"", meta: Mapping[str, str] | None = None,
                 idempotency_token: str | None = None) -> dict[str, Any]:
        """POST /v1/job/<id>/dispatch; retried only with an idempotency token (nomad/job_endpoint.go)."""
        body: dict[str, Any] = {"Meta": dict(meta or {})}
        if payload:
            body["Payload"] = base64.b64encode(payload).decode()
        params = {"idempotency_token": idempotency_token} if idempotency_token else {}
        data, _ = self._json("POST", f"/v1/job/{quote(job_id, safe='')}/dispatch", params, body,
                             retry=bool(idempotency_token), what=f"dispatch job {job_id!r}")
        return dict(data)

    def job(self, job_id: str) -> dict[str, Any] | None:
        try:
            data, _ = self._json("GET", f"/v1/job/{quote(job_id, safe='')}", what=f"read job {job_id!r}")
        except TaskAPINotFound:
            return None
        return dict(data)

    def job_allocations(self, job_id: str, index: int | None = None,
                        wait: str = "5m") -> tuple[list[dict[str, Any]], int]:
        params: dict[str, Any] = {"index": index, "wait": wait} if index is not None else {}
        data, idx = self._json("GET", f"/v1/job/{quote(job_id, safe='')}/allocations", params,
                               what=f"list allocations of {job_id!r}")
        return list(data or []), idx

    def allocation(self, alloc_id: str, index: int | None = None, wait: str = "5m") -> dict[str, Any]:
        params: dict[str, Any] = {"index": index, "wait": wait} if index is not None else {}
        data, _ = self._json("GET", f"/v1/allocation/{alloc_id}", params, what=f"read allocation {alloc_id}")
        return dict(data)

    def evaluation(self, eval_id: str) -> dict[str, Any]:
        data, _ = self._json("GET", f"/v1/evaluation/{eval_id}", what=f"read evaluation {eval_id}")
        return dict(data)

    def stop_allocation(self, alloc_id: str) -> None:
        """POST /v1/allocation/<id>/stop (capability alloc-lifecycle)."""
        self.request("POST", f"/v1/allocation/{alloc_id}/stop", retry=True, what=f"stop allocation {alloc_id}")

    def service(self, name: str, index: int | None = None, wait: str = "5m") -> tuple[list[dict[str, Any]], int]:
        params: dict[str, Any] = {"index": index, "wait": wait} if index is not None else {}
        data, idx = self._json("GET", f"/v1/service/{quote(name, safe='')}", params, what=f"read service {name!r}")
        return list(data or []), idx

    def read_file(self, alloc_id: str, path: str) -> bytes:
        _, _, data = self.request("GET", f"/v1/client/fs/cat/{alloc_id}", {"path": path}, retry=True,
                                  what=f"read {path} of allocation {alloc_id}")
        return data

    def read_at(self, alloc_id: str, path: str, offset: int, limit: int) -> bytes:
        _, _, data = self.request("GET", f"/v1/client/fs/readat/{alloc_id}",
                                  {"path": path, "offset": offset, "limit": limit}, retry=True,
                                  what=f"read {path} of allocation {alloc_id}")
        return data

    def logs(self, alloc_id: str, task: str, type_: str = "stdout", offset: int = 0,
             origin: str = "start") -> bytes:
        _, _, data = self.request("GET", f"/v1/client/fs/logs/{alloc_id}",
                                  {"task": task, "type": type_, "plain": "true", "follow": "false",
                                   "offset": offset, "origin": origin}, retry=True,
                                  what=f"read {type_} of task {task!r} in allocation {alloc_id}")
        return data

    def follow_logs(self, alloc_id: str, task: str, type_: str = "stdout", offset: int = 0) -> Iterator[bytes]:
        """GET /v1/client/fs/logs/<alloc>?follow=true&plain=true: bytes as they are written, until the task
        is dead. A connection of its own (the stream holds it)."""
        what = f"follow {type_} of task {task!r} in allocation {alloc_id}"
        query = urlencode({"namespace": self.namespace, "task": task, "type": type_, "plain": "true",
                           "follow": "true", "offset": offset, "origin": "start"})
        conn = _UnixConnection(self.socket_path, self.timeout)
        try:
            try:
                conn.request("GET", f"/v1/client/fs/logs/{alloc_id}?{query}", headers={"X-Nomad-Token": self._token()})
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise TaskAPIError(f"Nomad Task API: {what} failed: {type(exc).__name__}: {exc}") from None
            if resp.status != 200:
                self._check(resp.status, resp.read(), what)
            while True:
                try:
                    chunk = resp.read1(65536)
                except (OSError, http.client.HTTPException) as exc:
                    raise TaskAPIError(f"Nomad Task API: {what} broke off: {type(exc).__name__}") from None
                if not chunk:
                    return
                yield chunk
        finally:
            conn.close()

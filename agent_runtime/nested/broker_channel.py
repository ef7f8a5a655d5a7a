"""The nested-call channel of the local backend: HTTP to the run's call broker on the client.

Runs inside allocations (local backend only); standard library only. The broker
(``compiler/call_broker.py``) dispatches each call as an allocation of the run and hands back its result
envelope; every request carries the run's token (``MODALC_CALLS_TOKEN``). One keep-alive connection per
thread.
"""

from __future__ import annotations

import http.client
import json
import threading
from urllib.parse import unquote, urlencode, urlsplit

from ..sdk.exception import ExecutionError
from .invoker import Channel, Ended

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..sdk.functions import Target

WAIT_S = 30  # one long-poll of /v1/wait; asked again until the call ends


class BrokerChannel(Channel):
    name = "local"

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._auth = f"Bearer {token}"
        self._local = threading.local()
        self._concurrency: dict[tuple[str, str], int] = {}

    def _request(self, method: str, path: str, query: dict[str, str] | None = None,
                 body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        if query:
            path += "?" + urlencode(query)
        headers = {"Authorization": self._auth, "Content-Length": str(len(body))}
        for attempt in (1, 2):  # a kept-alive connection the broker closed meanwhile is opened again once
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = http.client.HTTPConnection(self._host, self._port, timeout=WAIT_S + 30)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                conn.close()
                self._local.conn = None
                if attempt == 2 or method == "POST":
                    raise ExecutionError(f"the run's call channel is unreachable ({type(exc).__name__}: {exc}); "
                                         "has the app run ended?") from None
                continue
            if resp.status >= 400:
                try:
                    message = json.loads(data).get("error") or data.decode("utf-8", "replace")
                except ValueError:
                    message = data.decode("utf-8", "replace")
                raise ExecutionError(message)
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        raise AssertionError("unreachable")

    @staticmethod
    def _names(target: Target) -> dict[str, str]:
        return {"app": target.app_name or "", "function": target.tag}

    def dispatch(self, target: Target, payload: bytes, *, keep: bool = False) -> str:
        query = {**self._names(target), **({"keep": "1"} if keep else {})}
        _, _, data = self._request("POST", "/v1/dispatch", query, payload)
        return str(json.loads(data)["id"])

    def wait(self, handle: str, timeout: float | None) -> Ended | None:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait_s = WAIT_S if deadline is None else max(0.0, min(WAIT_S, deadline - time.monotonic()))
            status, headers, data = self._request("GET", f"/v1/wait/{handle}", {"wait": f"{wait_s:.3f}"})
            if status == 200:
                result = data if headers.get("x-modalc-result") == "1" else None
                return Ended(result, unquote(headers.get("x-modalc-failure", "")))
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def read_stream(self, handle: str, offset: int) -> tuple[bytes, bool]:
        _, headers, data = self._request("GET", f"/v1/stream/{handle}", {"offset": str(offset)})
        done = headers.get("x-modalc-done") == "1"
        if not data and not done:
            import time

            time.sleep(0.02)
        return data, done

    def cancel(self, handle: str) -> None:
        self._request("POST", f"/v1/cancel/{handle}")

    def web_url(self, app_name: str, tag: str) -> str | None:
        _, _, data = self._request("GET", "/v1/web_url", {"app": app_name, "function": tag})
        url: Any = json.loads(data).get("url")
        return None if url is None else str(url)

    def concurrency(self, target: Target) -> int:
        key = (target.app_name or "", target.tag)
        if key not in self._concurrency:
            _, _, data = self._request("GET", "/v1/function", self._names(target))
            self._concurrency[key] = int(json.loads(data)["concurrency"])
        return self._concurrency[key]

"""Following a task's log on Nomad until the task has ended. Runs on the client.

Nomad's followed log stream (``GET /v1/client/fs/logs/<alloc>?follow=true``) does not end when the task
does: when following, client/fs_endpoint.go ``logsImpl`` returns only when the request is cancelled, on an
error, or when the log file is deleted, i.e. when the allocation is collected (hashicorp/nomad#18369,
#26693: ``nomad alloc logs -f`` stays open after the task exited). So the end is read from the allocation:
``TaskEnd`` follows it with blocking queries (``GET /v1/allocation/<id>?index=``) in a thread and, once it
is terminal, shuts the log streams down (``StreamStop``); ``follow_log`` then reads, without following,
whatever the task wrote after the last streamed byte, so no line is lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .nomad_api import NomadAPI, NomadError, NomadNotFound, NomadTaskNotStarted, StreamStop

LIVE = ("pending", "running")


class TaskEnd:
    """Watches one allocation until it is terminal (or gone), then stops every registered log stream."""

    def __init__(self, api: NomadAPI, alloc_id: str, *, index: int = 0, wait_s: int = 60):
        self.api, self.alloc_id = api, alloc_id
        self.streams = StreamStop()
        self.ended = threading.Event()
        self.alloc: dict[str, Any] | None = None  # the terminal allocation, once read
        self.gone = False
        self._index, self._wait = index, f"{wait_s}s"
        self._cancelled = False
        self._thread = threading.Thread(target=self._watch, name=f"task-end-{alloc_id[:8]}", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        index = self._index or None
        failures = 0
        try:
            while not self._cancelled:
                try:
                    full = self.api.allocation(self.alloc_id, index=index, wait=self._wait)
                except NomadNotFound:
                    self.gone = True
                    return
                except NomadError:
                    failures += 1
                    if failures > self.api.retries:
                        return  # the streams end on their own errors; the caller explains the rest
                    time.sleep(self.api.backoff * failures)
                    continue
                failures = 0
                if full.get("ClientStatus") not in LIVE:
                    self.alloc = full
                    return
                index = int(full.get("ModifyIndex") or 0)
        finally:
            self.ended.set()
            self.streams.stop()

    def cancel(self) -> None:
        """The caller is done: stop the streams and let the watcher end after its current query."""
        self._cancelled = True
        self.streams.stop()


def follow_log(api: NomadAPI, alloc_id: str, task: str, type_: str, feed: Callable[[bytes], None],
               end: TaskEnd, *, await_start: Callable[[], bool] | None = None) -> bool:
    """Feed one log stream of the task from its start until the task has ended; True if the allocation
    was collected meanwhile. A broken stream is resumed at the byte it broke off; a task that has not
    started yet (404 ``not started yet``) is waited for with ``await_start`` (False: it never will)."""
    offset, attempts = 0, 0
    while True:
        try:
            for chunk in api.follow_logs(alloc_id, task, type_, offset=offset, stop=end.streams):
                offset += len(chunk)
                feed(chunk)
        except NomadTaskNotStarted:  # an image pull, a busy node: wait for the task, not a GC
            if await_start is None or not await_start():
                return False
            time.sleep(0.2)  # the client may report the start before its log endpoint sees it: no spin
            continue
        except NomadNotFound:
            return True
        except NomadError:
            attempts += 1
            if attempts > api.retries or end.ended.is_set():
                raise
            time.sleep(api.backoff * attempts)
            continue
        if end.ended.is_set() or end.streams.stopped:
            break
        time.sleep(0.2)  # the stream closed under a live task (a proxy, an agent restart): resume it
    if end.gone:
        return True
    try:  # what was written after the last streamed byte
        rest = api.logs(alloc_id, task, type_, offset=offset)
    except NomadTaskNotStarted:
        return False
    except NomadNotFound:
        return True
    if rest:
        feed(rest)
    return False

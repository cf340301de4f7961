"""The control API's guard: the token and the body size are checked before a byte of the body is read.

A pure ASGI middleware (:class:`RequestGuard`) in front of the FastAPI app.  In a live session it is
the second check: the front door process (:mod:`kpremia.live.http.front_door`) applies the same rules
(:mod:`kpremia.live.http.refusals`) to the request head before forwarding, so a flood is turned away
outside the session's interpreter; ``serve`` has the guard alone.
FastAPI reads and parses a request's body while it resolves the endpoint's
arguments, *before* any ``Depends`` runs, and it does so on the server's event
loop thread; in the same process as the trading loop, a 50 MB body parsed
there holds the GIL for seconds and makes bars late.  So the guard looks only
at the request line and headers:

1. a path that needs the token (everything but ``GET /health`` and the page
   ``GET /``) without ``Authorization: Bearer <token>`` -> **401**;
2. a ``Content-Length`` above ``max_body_bytes`` -> **413**;
3. otherwise the body is read here, up to the limit (a chunked body, which has
   no ``Content-Length``, gets **413** as soon as it passes it, and the rest is
   never read), and handed to the app in one piece.

Once the session's storage failed (:class:`~kpremia.live.loop.storage.StorageAlarm`
tripped: a full disk under a ``/save`` or a journal commit), every request is
answered **503** with the cause, until the session has stopped.

Refusals are answered with ``Connection: close``: the server closes the socket
instead of draining a body nobody will read.  Every answer is counted by class
(:class:`RequestCounters`, shown by ``/status`` and the status page) and a
refusal never writes a row of its own to the model journal: one summary row at
most every ``summary_every_s`` seconds, so a flood of bad requests cannot push
the real events off the page or fill the disk.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kpremia.live.http.refusals import (DEFAULT_MAX_BODY_BYTES, UNAUTHENTICATED, authorised, oversized, refusal,
                                        storage_failed, too_large)
from kpremia.live.loop.storage import StorageAlarm

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestCounters:
    """Answers by class since the server started; a summary row to the model journal now and then.

    Classes: ``accepted`` (2xx/3xx), ``unauthenticated`` (401), ``too_large`` (413),
    ``rejected`` (any other 4xx: malformed body, out-of-range value, unknown path, read-only),
    ``failed`` (5xx).
    """

    KINDS = ("accepted", "unauthenticated", "too_large", "rejected", "failed")

    def __init__(self, write_summary: Callable[[dict[str, int]], None] | None = None,
                 summary_every_s: float = 60.0) -> None:
        self._lock = threading.Lock()
        self.counts = dict.fromkeys(self.KINDS, 0)
        self._unsummarised = dict.fromkeys(self.KINDS[1:], 0)
        self._write_summary = write_summary
        self.summary_every_s = float(summary_every_s)
        self._last_summary = time.monotonic()

    def count(self, status: int, times: int = 1) -> None:
        """Count ``times`` answers of ``status`` (the front door reports its refusals in batches)."""
        kind = ("accepted" if status < 400 else "unauthenticated" if status == 401 else "too_large"
                if status == 413 else "rejected" if status < 500 else "failed")
        due = None
        with self._lock:
            self.counts[kind] += times
            if kind != "accepted":
                self._unsummarised[kind] += times
                if time.monotonic() - self._last_summary >= self.summary_every_s:
                    due = self._take()
        if due:
            self._emit(due)

    def _take(self) -> dict[str, int]:
        out = {k: v for k, v in self._unsummarised.items() if v}
        self._unsummarised = dict.fromkeys(self._unsummarised, 0)
        self._last_summary = time.monotonic()
        return out

    def _emit(self, summary: dict[str, int]) -> None:
        if self._write_summary is not None:
            self._write_summary(summary)

    def flush(self) -> None:
        """Write the refusals not summarised yet (at server stop)."""
        with self._lock:
            due = self._take()
        if due:
            self._emit(due)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


class RequestGuard:
    """ASGI middleware: token, then size limit, before the wrapped app sees the request.

    Args:
        app: the ASGI app behind the guard.
        token: the bearer token, or None (no token: every request is let through to the size check).
        max_body_bytes: largest accepted body.
        counters: where answers are counted.
        alarm: the session's storage alarm (tripped: 503 to everything).
    """

    def __init__(self, app: ASGIApp, token: str | None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 counters: RequestCounters | None = None, alarm: StorageAlarm | None = None) -> None:
        self.app = app
        self.alarm = alarm
        self.expected = token.encode() if token else None
        self.max_body_bytes = int(max_body_bytes)
        self.counters = counters or RequestCounters()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.alarm is not None and self.alarm.tripped:
            await self._refuse(send, 503, storage_failed(self.alarm.message))
            return
        if not authorised(scope["method"], scope["path"], _header(scope, b"authorization"), self.expected):
            await self._refuse(send, 401, UNAUTHENTICATED)
            return
        if oversized(_header(scope, b"content-length"), self.max_body_bytes):
            await self._refuse(send, 413, too_large(self.max_body_bytes))
            return
        body = bytearray()
        more = True
        while more:  # at most max_body_bytes + one chunk, however the body is framed
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await self._refuse(send, 413, too_large(self.max_body_bytes))
                return
            more = bool(message.get("more_body", False))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        async def counted_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.counters.count(int(message["status"]))
            await send(message)

        await self.app(scope, replay, counted_send)

    async def _refuse(self, send: Send, status: int, detail: str) -> None:
        self.counters.count(status)
        headers, body = refusal(detail)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None

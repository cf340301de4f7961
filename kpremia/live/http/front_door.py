"""The live session's front door: a small HTTP process that checks request heads before the session sees a byte.

Why a process of its own: the control API of a live session (FastAPI on uvicorn) runs in the session's
process, and whatever its event loop does -- even refusing a flood of unauthenticated uploads from the
headers alone -- takes the GIL from the thread that decides the bars.  A flood aimed at the session made
bars later than the same flood aimed at another process on the machine.  So the session binds the
public ``live.api.host:live.api.port`` here, in a separate interpreter (standard library only, asyncio
streams), and uvicorn binds ``127.0.0.1`` on a free port that only this process forwards to.

Per client connection, at most :data:`HEAD_LIMIT` bytes of request head are read within
:data:`HEAD_TIMEOUT_S` seconds, and the rules of :mod:`kpremia.live.http.refusals` (the ones
:class:`~kpremia.live.http.api_guard.RequestGuard` applies) are checked, in this order:

* a head over the limit -> **431**; a head with a bare CR, LF or NUL, or not ``METHOD target HTTP/1.x``
  -> **400**;
* the storage alarm tripped -> **503** with its cause, to every request (authenticated or not: the
  session is stopping, and the same answer as the guard's);
* more than ``max_connections`` connections at once -> **503** (uvicorn's limit answered the same way);
* a path other than ``GET``/``HEAD`` ``/health`` and ``/`` without ``Authorization: Bearer <token>`` -> **401**;
* a ``Content-Length`` over the body limit (or not a plain number) -> **413**;
* a body framed ambiguously (two Content-Lengths, ``Content-Length`` with ``Transfer-Encoding``) -> **400**,
  a coding other than ``chunked`` -> **501**.

Every refusal is a JSON ``{"detail": "...; nothing was changed"}`` with ``Connection: close``, and the
connection is closed without reading the body.  An accepted request is forwarded to the backend with
``Connection: close`` -- one request per forwarded connection, and its body forwarded exactly as framed
(``Content-Length`` bytes, or the chunks up to the last one), so nothing after it reaches the backend --
the backend's answer is streamed back and the client's connection closed: a second request on a
keep-alive connection is never read.  (When the backend answered before the body was all sent -- it cut
a chunked body at the limit -- the rest is read and dropped for a moment, bounded, so the client reads
the answer rather than a reset; a refusal from the head hangs up at once, as the guard does.)  The backend's own RequestGuard still checks the token and the size
(a chunked body over the limit is cut there).

The process lowers its own scheduling priority (niceness +:data:`NICE`): on a machine short of CPU --
a flood keeps this process busy -- the scheduler runs the session's bar thread first.  It stays in the
session's process group and session on purpose: where the kernel groups CPU shares by session
(autogroup), a ``setsid`` child would get a share of its own beside the session's, and its niceness would
count only inside it.  Ctrl-C reaches the whole group, so this process ignores SIGINT: the session
stops it after its last bar, as it stops everything else.

Talking to the session (one JSON object a line): the first line on stdin is the configuration (the token
travels here, never in argv or the environment); a later ``{"alarm": "<cause>"}`` trips the storage
alarm; stdin closing (the session stopped, or was killed) shuts this process down.  On stdout: first
``{"listening": <port>}`` or ``{"error": "<why>"}``, then ``{"counts": {"401": n, ...}}`` now and then
with the refusals answered here, which the session adds to its
:class:`~kpremia.live.http.api_guard.RequestCounters`.

Run by :class:`~kpremia.live.http.front_process.FrontDoorProcess` as
``python -m kpremia.live.http.front_door``.
"""

from __future__ import annotations

import asyncio
import http
import json
import os
import signal
import sys
import threading
from collections import Counter
from typing import Any, TextIO

from kpremia.live.http.refusals import UNAUTHENTICATED, authorised, oversized, refusal, storage_failed, too_large

HEAD_LIMIT = 16 * 1024
HEAD_TIMEOUT_S = 10.0
COUNTS_EVERY_S = 0.5
COPY_BYTES = 1 << 16
LINGER_S, LINGER_BYTES = 2.0, 8 << 20
NICE = 10  # added to this process's niceness: under CPU contention, the session's bar thread wins
HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"te", b"upgrade"}


class BadHead(Exception):
    """A request head the front door will not forward: its status and detail."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Head:
    """A parsed request head: method, path (without the query), headers (lower-case names), the raw lines."""

    def __init__(self, raw: bytes) -> None:
        lines = raw[:-4].split(b"\r\n")
        if any(b"\n" in line or b"\r" in line or b"\0" in line for line in lines):
            # a bare LF the backend might read as a line end would hide a header from these checks
            raise BadHead(400, "malformed request head: lines end with CRLF, no bare CR, LF or NUL")
        parts = lines[0].decode("latin-1").split(" ")
        if len(parts) != 3 or parts[2] not in ("HTTP/1.0", "HTTP/1.1") or not parts[1]:
            raise BadHead(400, "malformed request line: expected 'METHOD /path HTTP/1.1'")
        self.method, self.target, _ = parts
        self.request_line = lines[0]
        self.path = self.target.partition("?")[0]
        self.headers: list[tuple[bytes, bytes]] = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
                raise BadHead(400, "malformed request header line")
            self.headers.append((name.lower(), value.strip()))

    def get(self, name: bytes) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None

    def all(self, name: bytes) -> list[str]:
        return [value.decode("latin-1") for key, value in self.headers if key == name]

    def forwarded(self) -> bytes:
        """The head for the backend: the same request, hop-by-hop headers dropped, ``Connection: close``."""
        kept = [name + b": " + value for name, value in self.headers if name not in HOP_BY_HOP]
        return b"\r\n".join([self.request_line, *kept, b"Connection: close", b"", b""])


class FrontDoor:
    """Accepts connections on the public address; refuses from the head, forwards the rest to the backend."""

    def __init__(self, token: str | None, backend_port: int, max_body_bytes: int, max_connections: int,
                 out: TextIO) -> None:
        self.expected = token.encode() if token else None
        self.backend_port = int(backend_port)
        self.max_body_bytes = int(max_body_bytes)
        self.max_connections = int(max_connections)
        self.out = out
        self.alarm: str | None = None
        self.open = 0
        self.refused: Counter[int] = Counter()

    # ----------------------------------------------------------------- one client connection
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            await self._serve(reader, writer)
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError):
            pass  # the client went away, stalled or broke the framing mid-body: nothing more to answer
        finally:
            self.open -= 1
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        except asyncio.LimitOverrunError:
            await self._refuse(writer, 431, f"request head over {HEAD_LIMIT} bytes")
            return
        try:
            head = Head(raw)
            refused = self._check(head)
        except BadHead as bad:
            refused = bad
        if refused is not None:
            await self._refuse(writer, refused.status, refused.detail)
            return
        await self._forward(head, reader, writer)

    def _check(self, head: Head) -> BadHead | None:
        """RequestGuard's rules, in its order, then the framing this process must be sure of to forward."""
        if self.alarm is not None:
            return BadHead(503, storage_failed(self.alarm))
        if self.open > self.max_connections:
            return BadHead(503, f"more than {self.max_connections} connections at once: try again shortly")
        if not authorised(head.method, head.path, head.get(b"authorization"), self.expected):
            return BadHead(401, UNAUTHENTICATED)
        lengths = head.all(b"content-length")
        if any(oversized(length, self.max_body_bytes) for length in lengths):
            return BadHead(413, too_large(self.max_body_bytes))
        codings = head.all(b"transfer-encoding")
        if len(set(lengths)) > 1 or (lengths and codings):
            return BadHead(400, "ambiguous body framing: one Content-Length, or Transfer-Encoding: chunked, not both")
        if codings and [c.strip().lower() for c in codings] != ["chunked"]:
            return BadHead(501, "only Transfer-Encoding: chunked is understood")
        return None

    async def _refuse(self, writer: asyncio.StreamWriter, status: int, detail: str) -> None:
        self.refused[status] += 1
        headers, body = refusal(detail)
        lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}".encode()]
        lines += [name + b": " + value for name, value in headers]
        writer.write(b"\r\n".join([*lines, b"", b""]) + body)
        await writer.drain()

    async def _forward(self, head: Head, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            back_reader, back_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        except OSError:
            await self._refuse(writer, 502, "the session's API is not answering (is the session stopping?)")
            return
        try:
            back_writer.write(head.forwarded())
            body = asyncio.create_task(self._body(head, reader, back_writer))
            try:
                while chunk := await back_reader.read(COPY_BYTES):  # the answer, until the backend closes
                    writer.write(chunk)
                    await writer.drain()
            finally:
                whole = body.done() and not body.cancelled() and body.exception() is None and body.result()
                body.cancel()
                await asyncio.gather(body, return_exceptions=True)
        finally:
            back_writer.close()
        if not whole:  # answered before the body was all read (the backend cut it): the answer, not a reset
            await _linger(reader, writer)

    async def _body(self, head: Head, reader: asyncio.StreamReader, back: asyncio.StreamWriter) -> bool:
        """Copy the request's body as framed, and nothing after it; whether it was all copied.

        A chunked body stops one byte past the limit: the backend's guard answers 413 to that, with
        nothing left unread on its side (a socket closed with unread data resets the connection, and
        the reset can beat the answer).  The client gone mid-body: hang up on the backend too."""
        try:
            return await self._copy_body(head, reader, back)
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            back.close()  # the backend sees the disconnect and answers nobody
            return False

    async def _copy_body(self, head: Head, reader: asyncio.StreamReader, back: asyncio.StreamWriter) -> bool:
        length = head.get(b"content-length")
        if length is not None:
            await _copy(reader, back, int(length))
        elif head.get(b"transfer-encoding") is not None:
            left = self.max_body_bytes + 1  # payload bytes the backend may still be sent
            while True:
                line = await reader.readuntil(b"\r\n")
                back.write(line)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    await back.drain()
                    return False  # the backend answers the broken framing
                if size == 0:
                    while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                        back.write(trailer)
                    back.write(b"\r\n")
                    break
                if size >= left:
                    await _copy(reader, back, left)
                    await back.drain()
                    return False  # over the limit: the guard refuses it, the rest is not sent
                await _copy(reader, back, size + 2)
                left -= size
        await back.drain()
        return True

    # ----------------------------------------------------------------- reports to the session
    def report(self) -> None:
        """The refusals answered since the last report, as one line on stdout."""
        if self.refused:
            counts, self.refused = self.refused, Counter()
            try:
                _say(self.out, {"counts": {str(k): v for k, v in counts.items()}})
            except OSError:
                pass  # the session is gone; this process is on its way out too


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
    while n > 0:
        chunk = await reader.read(min(n, COPY_BYTES))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", n)
        writer.write(chunk)
        await writer.drain()
        n -= len(chunk)


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close, then read and drop what the client still sends (bounded): closing a socket with unread
    data resets the connection, and a reset can throw away the answer before the client has read it.
    Only for forwarded requests (a client with the token); a refusal from the head hangs up at once."""
    writer.write_eof()
    loop = asyncio.get_running_loop()
    end, dropped = loop.time() + LINGER_S, 0
    while dropped < LINGER_BYTES and (left := end - loop.time()) > 0:
        chunk = await asyncio.wait_for(reader.read(COPY_BYTES), left)
        if not chunk:
            return
        dropped += len(chunk)


def _say(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


async def serve(config: dict[str, Any], control: TextIO, out: TextIO) -> int:
    """Listen, report the port, serve until ``control`` closes; the exit code."""
    door = FrontDoor(config.get("token"), config["backend_port"], config["max_body_bytes"],
                     config["max_connections"], out)
    loop = asyncio.get_running_loop()
    closed = asyncio.Event()

    def listen_to_the_session() -> None:  # a thread: stdin is a blocking pipe
        try:
            for line in control:
                message = json.loads(line)
                if "alarm" in message:
                    loop.call_soon_threadsafe(setattr, door, "alarm", str(message["alarm"]))
        finally:  # end of stdin: the session stopped or died
            loop.call_soon_threadsafe(closed.set)

    try:
        server = await asyncio.start_server(door.handle, config["host"], int(config["port"]), limit=HEAD_LIMIT,
                                            backlog=4 * door.max_connections)
    except OSError as exc:
        _say(out, {"error": exc.strerror or str(exc)})
        return 1
    _say(out, {"listening": server.sockets[0].getsockname()[1]})
    threading.Thread(target=listen_to_the_session, name="front-door-control", daemon=True).start()
    while not closed.is_set():
        try:
            await asyncio.wait_for(closed.wait(), COUNTS_EVERY_S)
        except asyncio.TimeoutError:
            pass
        door.report()
    server.close()  # open connections are cancelled as the loop ends
    return 0


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the session stops us
    try:
        os.nice(NICE)  # the bars come first: on a busy machine the scheduler runs the session before a flood
    except OSError:
        pass
    first = sys.stdin.readline()
    if not first:
        return 1
    return asyncio.run(serve(json.loads(first), sys.stdin, sys.stdout))


if __name__ == "__main__":
    sys.exit(main())

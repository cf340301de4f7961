"""The control API's request rules from the request head alone, shared by both of its doors.

Two places apply them: :class:`~kpremia.live.http.api_guard.RequestGuard` (the ASGI middleware in front of
FastAPI) and the live session's front door (:mod:`kpremia.live.http.front_door`, a separate process
that reads only request heads).  Both must refuse the same requests with the same words, so the rules
and the refusal's bytes live here, in the standard library only (the front door imports nothing else).
"""

from __future__ import annotations

import hmac
import json

PUBLIC = {("GET", "/health"), ("HEAD", "/health"), ("GET", "/"), ("HEAD", "/")}
DEFAULT_MAX_BODY_BYTES = 1 << 20
UNAUTHENTICATED = "missing or wrong token: send 'Authorization: Bearer <token>'"


def too_large(max_body_bytes: int) -> str:
    return f"request body over {max_body_bytes} bytes; send less"


def storage_failed(message: str) -> str:
    return f"storage failed ({message}): the session is stopping; start it again once the disk has space"


def authorised(method: str, path: str, authorization: str | None, expected: bytes | None) -> bool:
    """True for a public path, no token set, or ``Authorization: Bearer <expected>`` (constant-time compare)."""
    if expected is None or (method, path) in PUBLIC:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


def oversized(content_length: str | None, max_body_bytes: int) -> bool:
    """A ``Content-Length`` that is not a plain number, or one above the limit (a missing one is not)."""
    if content_length is None:
        return False
    return not (content_length.isascii() and content_length.isdigit()) or int(content_length) > max_body_bytes


def refusal(detail: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and JSON body of a refusal: ``Connection: close`` (nobody reads the rest of the body)."""
    body = json.dumps({"detail": f"{detail}; nothing was changed"}).encode()
    return [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")], body

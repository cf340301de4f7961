"""HTTP/1.1 requests over a plain socket, for what an HTTP client library will not do on purpose:
announce a body and not send it, send a body in chunks without a Content-Length, keep sending after
the server has answered."""

from __future__ import annotations

import socket
import time


def read_response(sock: socket.socket, timeout_s: float) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and the body bytes read until the server closed or sent Content-Length."""
    sock.settimeout(timeout_s)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    want = int(headers.get("content-length", "0"))
    while len(body) < want:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def request_head(port: int, method: str, path: str, headers: dict[str, str]) -> socket.socket:
    """A connected socket on which the request line and headers (not the body) were sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    sock.sendall("\r\n".join(lines).encode("latin-1"))
    return sock


def hostile_upload(port: int, body: bytes | memoryview, path: str = "/act", token: str | None = None,
                   timeout_s: float = 30.0) -> tuple[str, float]:
    """Send ``body`` in full (as far as the server lets us) and read the answer.

    Returns (outcome, seconds): outcome is the status code as a string, or ``reset`` when the server
    closed the connection before the answer could be read (it refused and hung up mid-upload).
    """
    t0 = time.perf_counter()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    sock = request_head(port, "POST", path, headers)
    try:
        try:
            sock.sendall(body)
        except OSError:
            pass  # the server answered and closed: the rest of the body was never read
        try:
            status, _, _ = read_response(sock, timeout_s)
            return str(status), time.perf_counter() - t0
        except (OSError, ValueError, IndexError):
            return "reset", time.perf_counter() - t0
    finally:
        sock.close()

"""The live session's front door: a real child process in front of a real uvicorn over a real ModelHost.

What reaches the backend is recorded by an outermost ASGI middleware on the backend app, so "refused
without reaching the backend" is seen, not assumed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch

from kpremia.core.errors import UserError
from kpremia.live.http.api import create_app
from kpremia.live.http.front_process import FrontedApi
from kpremia.live.http.status import StatusSource
from kpremia.live.learning.challenger import ChallengerConfig
from kpremia.live.learning.control_log import read_events
from kpremia.live.learning.host import ModelHost
from kpremia.live.loop.storage import StorageAlarm
from kpremia.run.live_config import ApiConfig, OnlineLearnConfig
from tests.live.online_fixtures import tiny_module
from tests.live.raw_http import read_response, request_head

TOKEN = "front-door-token-0123456789-abcdefghij"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROOT = Path(__file__).resolve().parents[2]


class Seen:
    """ASGI middleware: the (method, path) of every request that reached the backend."""

    def __init__(self, app, log: list) -> None:
        self.app, self.log = app, log

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.log.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def module():
    return tiny_module()[0]


@pytest.fixture
def api(module, tmp_path):
    """A started FrontedApi (port 0), its host, the backend's request log and the storage alarm."""
    host = ModelHost(module, tmp_path, learn=OnlineLearnConfig(), challenger=ChallengerConfig(enabled=False))
    alarm = StorageAlarm()
    app = create_app(host, StatusSource(tmp_path), TOKEN, alarm=alarm, save_every_s=0.0)
    seen: list = []
    app.add_middleware(Seen, log=seen)
    server = FrontedApi(app, ApiConfig(port=0, max_connections=4), TOKEN, alarm)
    server.start()
    try:
        yield server, host, seen, alarm
    finally:
        server.stop()
        host.close()


def _obs(host) -> dict:
    """A zero observation of the policy's shapes, as JSON lists."""
    return {k: torch.zeros(tuple(int(d) for d in shape)).tolist() for k, shape in host.module.spec.shapes.items()}


def _counts(server, want: dict, timeout_s: float = 5.0) -> dict:
    """The session's counters once they show ``want`` (the front door reports every half second)."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = server.counters.snapshot()
        if all(counts[k] == v for k, v in want.items()) or time.monotonic() > deadline:
            return counts
        time.sleep(0.05)


def test_unauthenticated_is_refused_by_the_front_and_counted_once(api, tmp_path):
    server, host, seen, _ = api
    base = f"http://127.0.0.1:{server.port}"
    answer = httpx.post(f"{base}/act", json={"obs": {}}, timeout=10)
    assert answer.status_code == 401 and answer.headers["connection"] == "close"
    assert answer.json() == {"detail": "missing or wrong token: send 'Authorization: Bearer <token>'; nothing was "
                                       "changed"}
    wrong = httpx.post(f"{base}/save", json={}, headers={"Authorization": "Bearer " + "x" * 38}, timeout=10)
    assert wrong.status_code == 401
    assert seen == [], "a refused request never reaches the session's process"
    assert httpx.get(f"{base}/health", timeout=10).status_code == 200  # public: no token
    assert seen == [("GET", "/health")]
    counts = _counts(server, {"unauthenticated": 2})
    assert counts["unauthenticated"] == 2 and counts["accepted"] == 1
    status = httpx.get(f"{base}/status", headers=AUTH, timeout=10).json()
    assert status["requests"]["unauthenticated"] == 2  # /status (and the page) show the front's refusals
    server.stop()
    refused = [e["detail"] for e in read_events(tmp_path / "model_journal.sqlite", source="api")]
    assert sum(d.get("unauthenticated", 0) for d in refused) == 2  # the summary row at stop, counted once each


def test_oversized_content_length_is_refused_413_before_the_body(api):
    server, _, seen, _ = api
    sock = request_head(server.port, "POST", "/act", {**AUTH, "Content-Length": str(50_000_000),
                                                      "Content-Type": "application/json"})
    status, headers, body = read_response(sock, timeout_s=10)
    sock.close()
    assert status == 413 and headers["connection"] == "close"
    assert json.loads(body)["detail"] == f"request body over {1 << 20} bytes; send less; nothing was changed"
    assert seen == []
    assert _counts(server, {"too_large": 1})["too_large"] == 1


def test_an_authorised_act_is_forwarded_and_answered(api):
    server, host, seen, _ = api
    obs = _obs(host)
    answer = httpx.post(f"http://127.0.0.1:{server.port}/act", json={"obs": obs, "deterministic": True},
                        headers=AUTH, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["action_name"] in host.module.action_names
    assert seen == [("POST", "/act")]
    # the same body sent chunked (no Content-Length) is forwarded chunk by chunk and answered alike
    payload = json.dumps({"obs": obs, "deterministic": True}).encode()
    sock = request_head(server.port, "POST", "/act", {**AUTH, "Transfer-Encoding": "chunked",
                                                      "Content-Type": "application/json"})
    half = len(payload) // 2
    for part in (payload[:half], payload[half:]):
        sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
    sock.sendall(b"0\r\n\r\n")
    status, _, body = read_response(sock, timeout_s=30)
    sock.close()
    assert status == 200 and json.loads(body)["action"] == answer.json()["action"]
    assert _counts(server, {"accepted": 2})["accepted"] == 2


def test_a_chunked_body_over_the_limit_is_cut_by_the_backend(api):
    server, _, _, _ = api
    sock = request_head(server.port, "POST", "/act", {**AUTH, "Transfer-Encoding": "chunked"})
    chunk = b"1," * (1 << 15)
    try:
        for _ in range(40):  # 2.6 MB, over the 1 MiB limit
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    except OSError:
        pass  # refused and hung up mid-upload
    status, _, _ = read_response(sock, timeout_s=10)
    sock.close()
    assert status == 413


def test_keep_alive_cannot_smuggle_a_second_request(api):
    server, host, seen, _ = api
    versions = [v.name for v in host.versions.list()]
    first = json.dumps({"obs": _obs(host)}).encode()
    smuggled = b'POST /save HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}'
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(f"POST /act HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\nAuthorization: Bearer {TOKEN}"
                 f"\r\nContent-Type: application/json\r\nContent-Length: {len(first)}\r\n\r\n".encode() + first
                 + smuggled + b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    sock.settimeout(30)
    data = b""
    while chunk := sock.recv(65536):  # read until the front door closes the connection
        data += chunk
    sock.close()
    assert data.startswith(b"HTTP/1.1 200") and data.count(b"HTTP/1.1 ") == 1, data[:500]
    assert b"connection: close" in data.lower()
    assert seen == [("POST", "/act")], "nothing after the first request's body reached the backend"
    assert [v.name for v in host.versions.list()] == versions
    # a header hidden behind a bare LF (read as a line end by lenient parsers) is refused, never forwarded
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: 1\nContent-Length: 5\r\n\r\n")
    status, _, body = read_response(sock, timeout_s=10)
    sock.close()
    assert status == 400 and b"bare CR, LF or NUL" in body
    assert seen == [("POST", "/act")]


def test_connections_beyond_the_limit_are_answered_503(api):
    server, _, _, _ = api
    idle = []
    try:
        for _ in range(4):  # slow clients holding every slot: heads never finished
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            idle.append(sock)
        time.sleep(0.2)
        sock = request_head(server.port, "GET", "/health", {})
        status, _, body = read_response(sock, timeout_s=10)
        sock.close()
        assert status == 503 and b"connections at once" in body
    finally:
        for s in idle:
            s.close()
    assert httpx.get(f"http://127.0.0.1:{server.port}/health", timeout=10).status_code == 200


def test_after_the_storage_alarm_every_request_is_answered_503(api):
    server, _, seen, alarm = api
    alarm.trip("No space left on device")
    base = f"http://127.0.0.1:{server.port}"
    deadline = time.monotonic() + 5
    while httpx.get(f"{base}/health", timeout=10).status_code != 503 and time.monotonic() < deadline:
        time.sleep(0.05)  # the session relays the alarm to the front door within a fraction of a second
    before = len(seen)
    for answer in (httpx.get(f"{base}/health", timeout=10), httpx.post(f"{base}/act", json={}, timeout=10),
                   httpx.post(f"{base}/save", json={}, headers=AUTH, timeout=10)):
        assert answer.status_code == 503  # unauthenticated too: the same answer as the guard's, with the cause
        assert answer.json()["detail"].startswith("storage failed (No space left on device): the session is stopping")
    assert len(seen) == before, "answered by the front door"


def test_the_token_is_not_on_the_front_doors_command_line_or_environment(api):
    server, _, _, _ = api
    pid = server.front.pid
    assert TOKEN.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert TOKEN.encode() not in Path(f"/proc/{pid}/environ").read_bytes()


def test_a_port_in_use_is_one_line_and_nothing_keeps_running(module, tmp_path):
    host = ModelHost(module, tmp_path, learn=OnlineLearnConfig(), challenger=ChallengerConfig(enabled=False))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        alarm = StorageAlarm()
        server = FrontedApi(create_app(host, StatusSource(tmp_path), TOKEN, alarm=alarm),
                            ApiConfig(port=port), TOKEN, alarm)
        with pytest.raises(UserError) as refused:
            server.start()
    host.close()
    assert str(refused.value).startswith(f"the control API could not start on 127.0.0.1:{port} (")
    assert str(refused.value).endswith("pick another live.api.port") and "\n" not in str(refused.value)
    assert server.front._proc.poll() is not None  # the child is gone
    assert not server.backend._thread.is_alive()  # and the backend was stopped


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody has reaped yet (it holds no socket)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_the_front_door_exits_when_the_session_is_killed(tmp_path):
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "live" / "front_child.py"), str(tmp_path)],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "KPREMIA_API_TOKEN": TOKEN, "PYTHONWARNINGS": "ignore"})
    try:
        port, front_pid = (int(x) for x in proc.stdout.readline().split())
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        proc.send_signal(signal.SIGKILL)  # no on_stop, no cleanup: only the closed pipe tells the child
        proc.wait(10)
        deadline = time.monotonic() + 10
        while not _gone(front_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(front_pid), "the front door outlived the session"
        with socket.socket() as again:  # nobody listens on the port (SO_REUSEADDR: TIME_WAIT is no holder)
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            again.bind(("127.0.0.1", port))
            again.listen()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_live_session_on_a_port_in_use_refuses_in_one_line(checkpoint, live_cli, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = live_cli(f"ckpt={checkpoint}", f"live.state_dir={tmp_path / 'state'}", "live.api.enabled=true",
                        f"live.api.port={port}", "live.max_bars=3", env={"KPREMIA_API_TOKEN": TOKEN})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert f"could not start on 127.0.0.1:{port}" in proc.stderr and "pick another live.api.port" in proc.stderr

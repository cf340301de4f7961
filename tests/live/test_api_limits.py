"""The control API's limits on work per client: connections at once, and /save's rate."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from kpremia.run.live_config import ApiConfig
from kpremia.live.http.api import ApiServer, create_app
from kpremia.live.http.status import StatusSource
from kpremia.live.learning.challenger import ChallengerConfig
from kpremia.live.learning.host import ModelHost
from kpremia.run.live_config import OnlineLearnConfig
from tests.live.online_fixtures import tiny_module
from tests.live.raw_http import read_response, request_head

TOKEN = "limits-token-0123456789-abcdefghij"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    module, _, _ = tiny_module()
    host = ModelHost(module, tmp_path_factory.mktemp("limits"), learn=OnlineLearnConfig(),
                     challenger=ChallengerConfig(enabled=False))
    yield host
    host.close()


def _serve(host, **config):
    server = ApiServer(create_app(host, StatusSource(host.state_dir), TOKEN, save_every_s=config.pop("save_every_s",
                                                                                                       0.0)),
                       ApiConfig(port=0, **config))
    server.start()
    return server


def test_save_is_rate_limited_with_retry_after(host):
    server = _serve(host, save_every_s=60.0)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=30) as client:
            first = client.post("/save", json={"note": "one"})
            assert first.status_code == 200
            versions = [v.name for v in host.versions.list()]
            again = client.post("/save", json={"note": "two"})
            assert again.status_code == 429 and 55 <= int(again.headers["retry-after"]) <= 60
            assert "one save every 60 s" in again.json()["detail"]
            assert [v.name for v in host.versions.list()] == versions, "a refused save writes nothing"
            assert client.get("/health").status_code == 200  # the rest of the API is not limited
    finally:
        server.stop()


def test_connections_beyond_the_limit_are_answered_503_at_once(host):
    server = _serve(host, max_connections=3)
    idle: list[socket.socket] = []
    try:
        for _ in range(3):  # slow clients: headers never finished
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            idle.append(sock)
        time.sleep(0.2)
        sock = request_head(server.port, "GET", "/health", {})
        status, _, _ = read_response(sock, timeout_s=10)
        sock.close()
        assert status == 503
        for s in idle:
            s.close()
        idle.clear()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the slots free up as the slow clients go away
            if httpx.get(f"http://127.0.0.1:{server.port}/health", timeout=10).status_code == 200:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the server did not take requests again after the idle connections closed")
    finally:
        for s in idle:
            s.close()
        server.stop()

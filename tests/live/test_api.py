"""The control API over a real uvicorn server on 127.0.0.1 and a real HTTP client (httpx, or a raw socket
where a client library would not misbehave on purpose)."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
import torch

from kpremia.core.errors import UserError
from kpremia.live.http.api import MIN_TOKEN_CHARS, ApiConfig, ApiServer, check_bind, create_app
from kpremia.live.http.status import StatusSource
from kpremia.live.learning.challenger import ChallengerConfig
from kpremia.live.learning.control_log import read_events
from kpremia.live.learning.host import ModelHost
from kpremia.run.live_config import OnlineLearnConfig
from kpremia.live.learning.versions import parse_version
from tests.live.online_fixtures import tiny_module, transitions
from tests.live.raw_http import hostile_upload, read_response, request_head

TOKEN = "test-token-0123456789-abcdefghijklmnop"
FIFTY_MB = 50_000_000


def _json_obs(obs: dict[str, torch.Tensor]) -> dict[str, list]:
    return {k: v.tolist() for k, v in obs.items()}


class _Served(tuple):
    """(host, client, stream, state_dir), plus the server's ``port`` and request ``counters``."""

    def __new__(cls, host, client, stream, state_dir, server):
        out = super().__new__(cls, (host, client, stream, state_dir))
        out.port, out.counters = server.port, server.counters
        return out


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    module, market, cfg = tiny_module()
    stream = transitions(module, market, cfg, 20)
    state_dir = tmp_path_factory.mktemp("serve")
    host = ModelHost(module, state_dir, learn=OnlineLearnConfig(), challenger=ChallengerConfig(enabled=False))
    # saves back to back (the rate limit of /save has its own test: test_api_limits.py)
    server = ApiServer(create_app(host, StatusSource(state_dir), TOKEN, save_every_s=0), ApiConfig(port=0))
    server.start()
    client = httpx.Client(base_url=f"http://127.0.0.1:{server.port}", headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=30)
    yield _Served(host, client, stream, state_dir, server)
    client.close()
    server.stop()
    host.close()


def _base(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


def _weights(net) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_health_and_tokens(served):
    host, client, stream, _ = served
    assert httpx.get(f"{_base(client)}/health").json()["model_version"] == "v1_0_0"  # no token needed
    body = {"obs": _json_obs(stream[0].obs)}
    assert client.post("/act", json=body).status_code == 200
    bad = httpx.post(f"{_base(client)}/act", json=body, headers={"Authorization": "Bearer wrong"})
    none = httpx.post(f"{_base(client)}/act", json=body)
    assert bad.status_code == none.status_code == 401 and "token" in bad.json()["detail"]
    assert httpx.get(f"{_base(client)}/status").status_code == 401
    assert httpx.get(f"{_base(client)}/").status_code == 200  # the page itself; its data needs the token


def test_act_matches_the_network(served):
    host, client, stream, _ = served
    for t in stream[:5]:
        answer = client.post("/act", json={"obs": _json_obs(t.obs)}).json()
        with torch.no_grad():
            logp, _ = host.net(t.obs)
        assert answer["action"] == int(logp[0].argmax())
        assert answer["probs"] == pytest.approx(logp[0].exp().tolist(), abs=1e-5)
        assert answer["action_name"] == host.module.action_names[answer["action"]]


def _journal_rows(state_dir) -> int:
    return len(read_events(state_dir / "model_journal.sqlite"))


@pytest.mark.parametrize("path,raw,fragment", [
    ("/load", '{"versio": "v1_0_0"}', "versio"),
    ("/set_hparams", '{"lr": "fast"}', "lr"),
    ("/set_hparams", '{"lr": -1.0}', "lr"),
    ("/set_hparams", '{"temperature": 0}', "temperature"),
    # the values the issue found accepted: each must name its field and change nothing
    ("/set_hparams", '{"entropy_coef": Infinity}', "entropy_coef"),
    ("/set_hparams", '{"entropy_coef": NaN}', "entropy_coef"),
    ("/set_hparams", '{"lr": 1e308}', "lr"),
    ("/set_hparams", '{"lr": true}', "lr"),
    ("/set_hparams", '{"lr": "0.0001"}', "lr"),
    ("/set_hparams", '{"temperature": 1e-320}', "temperature"),
    ("/set_hparams", '{"lr": 1e-4, "anchor": -1}', "anchor"),  # all or nothing: the good lr is not applied
    ("/set_hparams", '{"clip_epsilon": 0.9}', "clip_epsilon"),
    ("/set_hparams", '{"value_coef": 1e9}', "value_coef"),
    ("/load", json.dumps({"version": "v" + "9" * 5000 + "_0_0"}), "version"),
    ("/load", '{"version": "v1_0_0-../../x"}', "version"),
    ("/load", '{"version": "../v1_0_0"}', "version"),
    ("/load", '{"version": "v1_0_0\\n"}', "version"),
    ("/load", '{"version": "v1234567_0_0"}', "version"),
    ("/load", '{"version": 100}', "version"),
    ("/act", '{"obs": {"price_bars": [1, 2]}}', "observation keys"),
    ("/load", '{"version": "v7_0_0"}', "not found"),
    ("/learn", '{"transitions": [{"obs": {}, "action": -1, "reward": 0, "next_obs": {}}]}', "action"),
    ("/learn", '{"transitions": [{"obs": {}, "action": 0, "reward": Infinity, "next_obs": {}}]}', "reward"),
    ("/act", "{not json", "body"),
])
def test_bad_requests_get_400_naming_the_field_and_change_nothing(served, path, raw, fragment):
    host, client, _, state_dir = served
    before = (host.version, host.hparams(), _weights(host.net), [v.name for v in host.versions.list()])
    rows, rejected = _journal_rows(state_dir), served.counters.snapshot()["rejected"]
    answer = client.post(path, content=raw.encode(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert fragment in detail and "nothing was changed" in detail and len(detail) < 300, detail
    assert (host.version, host.hparams()) == before[:2]
    assert all(torch.equal(v, before[2][k]) for k, v in _weights(host.net).items())
    assert [v.name for v in host.versions.list()] == before[3]
    assert _journal_rows(state_dir) == rows  # counted, not journaled
    assert served.counters.snapshot()["rejected"] == rejected + 1


def test_unauthenticated_50mb_body_is_refused_before_it_is_read(served):
    host, _, _, state_dir = served
    rows, counts = _journal_rows(state_dir), served.counters.snapshot()
    # Announce 50 MB and send none of it: only a server that answers from the headers can reply at all.
    sock = request_head(served.port, "POST", "/act", {"Content-Type": "application/json",
                                                      "Content-Length": str(FIFTY_MB)})
    try:
        t0 = time.perf_counter()
        status, headers, body = read_response(sock, timeout_s=10)
        assert status == 401 and "token" in json.loads(body)["detail"]
        assert headers["connection"] == "close" and time.perf_counter() - t0 < 5
    finally:
        sock.close()
    # The same with the whole 50 MB sent: refused at once, the socket closed instead of drained.
    outcome, seconds = hostile_upload(served.port, b"[" + b"1," * (FIFTY_MB // 2 - 1) + b"1]")
    assert outcome in ("401", "reset") and seconds < 20
    after = served.counters.snapshot()
    assert after["unauthenticated"] == counts["unauthenticated"] + 2 and after["accepted"] == counts["accepted"]
    assert _journal_rows(state_dir) == rows


def test_unauthenticated_and_malformed_floods_are_counted_not_journaled(served):
    host, client, _, state_dir = served
    rows, counts = _journal_rows(state_dir), served.counters.snapshot()
    base = _base(client)
    with httpx.Client(base_url=base, timeout=30) as anonymous:
        for _ in range(200):
            assert anonymous.post("/act", content=b"{not json").status_code == 401
    for _ in range(50):
        assert client.post("/act", content=b"{not json").status_code == 400
    status = client.get("/status").json()["requests"]
    assert status["unauthenticated"] == counts["unauthenticated"] + 200
    assert status["rejected"] == counts["rejected"] + 50
    assert _journal_rows(state_dir) == rows
    served.counters.flush()  # the periodic summary (every 60 s, and at server stop): one row for all of them
    summary = read_events(state_dir / "model_journal.sqlite")[rows:]
    assert [(e["source"], e["kind"]) for e in summary] == [("api", "refused")]
    assert summary[0]["detail"]["unauthenticated"] >= 200 and summary[0]["detail"]["rejected"] >= 50


def test_body_size_limit_with_and_without_content_length(served):
    host, _, _, _ = served
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    sock = request_head(served.port, "POST", "/act", {**auth, "Content-Length": str(FIFTY_MB)})
    try:
        status, headers, _ = read_response(sock, timeout_s=10)
        assert status == 413 and headers["connection"] == "close"
    finally:
        sock.close()
    # chunked, no Content-Length: refused once the body passes the limit, the rest never read
    limit = 1 << 20
    sock = request_head(served.port, "POST", "/set_hparams", {**auth, "Transfer-Encoding": "chunked"})
    try:
        chunk = b" " * (limit + 1)
        sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        status, headers, body = read_response(sock, timeout_s=10)
        assert status == 413 and "bytes" in json.loads(body)["detail"]
    finally:
        sock.close()
    # a chunked body under the limit is read and served
    sock = request_head(served.port, "POST", "/set_hparams", {**auth, "Transfer-Encoding": "chunked"})
    try:
        chunk = json.dumps({"temperature": host.temperature}).encode()
        sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n")
        assert read_response(sock, timeout_s=10)[0] == 200
    finally:
        sock.close()


def test_rollback_setting_must_be_a_version_exactly():
    for bad in ("v1_0_0-../../x", "v" + "9" * 5000 + "_0_0", "v1_0", " v1_0_0", "v1_0_0 ", "v1_0_0/.."):
        with pytest.raises(UserError, match="is not a model version") as info:
            parse_version(bad)
        assert len(str(info.value)) < 200
    assert parse_version("v12_3_456789") == (12, 3, 456789)


def test_learn_save_load_roundtrip_is_bit_for_bit(served):
    host, client, stream, state_dir = served
    saved = client.post("/save", json={"note": "before learning"}).json()
    snapshot = _weights(host.net)
    body = {"transitions": [{"obs": _json_obs(t.obs), "action": t.action, "reward": t.reward,
                             "next_obs": _json_obs(t.next_obs), "logprob": t.logprob} for t in stream[:19]]}
    learned = client.post("/learn", json=body).json()
    assert learned["added"] == 19 and len(learned["updates"]) == 2  # at 16 and 19 transitions
    assert learned["model_version"] != saved["version"]
    assert not all(torch.equal(v, snapshot[k]) for k, v in _weights(host.net).items())
    back = client.post("/load", json={"version": saved["version"]}).json()
    assert back["version"] == saved["version"]
    assert all(torch.equal(v, snapshot[k]) for k, v in _weights(host.net).items())
    hp = client.post("/set_hparams", json={"lr": 3e-5, "temperature": 0.5}).json()["hparams"]
    assert hp["lr"] == 3e-5 and hp["temperature"] == 0.5
    status = client.get("/status").json()
    assert status["model_version"] == saved["version"] and status["learning"]["updates"] == 2


def test_concurrent_requests_lose_no_journal_writes(served):
    host, client, stream, state_dir = served
    before = len(read_events(state_dir / "model_journal.sqlite", source="api"))
    n = 48
    answers: list[int] = []

    def worker(i: int) -> None:
        with httpx.Client(base_url=_base(client), headers=dict(client.headers), timeout=60) as c:
            if i % 3 == 0:
                r = c.post("/set_hparams", json={"temperature": 1.0 + i / 100})
            elif i % 3 == 1:
                r = c.post("/act", json={"obs": _json_obs(stream[i % len(stream)].obs)})
            else:
                r = c.post("/save", json={"note": f"n{i}"})
            answers.append(r.status_code)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers.count(200) == n
    events = read_events(state_dir / "model_journal.sqlite", source="api")
    assert len(events) - before == 2 * n // 3  # what changed state; /act is counted, not journaled
    assert sorted(e["kind"] for e in events[before:]) == sorted(["set_hparams", "save"] * (n // 3))
    names = [v.name for v in host.versions.list()]
    assert len(names) == len(set(names))  # concurrent saves never reuse a version number


def test_non_loopback_bind_needs_a_long_token(monkeypatch):
    monkeypatch.delenv("KPREMIA_API_TOKEN", raising=False)
    with pytest.raises(UserError, match="export KPREMIA_API_TOKEN"):
        check_bind(ApiConfig(host="0.0.0.0"))
    assert check_bind(ApiConfig(host="127.0.0.1")) is None
    assert check_bind(ApiConfig(host="::1")) is None
    for short in ("x", "a" * (MIN_TOKEN_CHARS - 1)):
        monkeypatch.setenv("KPREMIA_API_TOKEN", short)
        with pytest.raises(UserError, match=f"needs at least {MIN_TOKEN_CHARS}.*secrets.token_urlsafe"):
            check_bind(ApiConfig(host="0.0.0.0"))
    assert len(TOKEN) >= MIN_TOKEN_CHARS
    monkeypatch.setenv("KPREMIA_API_TOKEN", TOKEN)
    assert check_bind(ApiConfig(host="0.0.0.0")) == TOKEN


def test_read_only_app_refuses_changes(served):
    host, _, stream, state_dir = served
    server = ApiServer(create_app(host, StatusSource(state_dir), None, read_only="owned by a live session"),
                       ApiConfig(port=0))
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        before = host.version
        for path, body in (("/save", {}), ("/load", {"version": "v1_0_0"}), ("/set_hparams", {"lr": 1e-3}),
                           ("/learn", {"update": True})):
            answer = httpx.post(f"{base}{path}", json=body, timeout=30)
            assert answer.status_code == 409 and "owned by a live session" in answer.json()["detail"], path
        assert host.version == before
        assert httpx.post(f"{base}/act", json={"obs": _json_obs(stream[0].obs)}, timeout=30).status_code == 200
    finally:
        server.stop()

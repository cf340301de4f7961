"""The control API over a real uvicorn server on 127.0.0.1 and a real HTTP client (httpx)."""

from __future__ import annotations

import threading

import httpx
import pytest
import torch

from kpremia.errors import UserError
from kpremia.live.api import ApiConfig, ApiServer, check_bind, create_app
from kpremia.live.challenger import ChallengerConfig
from kpremia.live.control_log import read_events
from kpremia.live.host import ModelHost
from kpremia.live.online_ppo import OnlineLearnConfig
from kpremia.live.status import StatusSource
from tests.live.online_fixtures import tiny_module, transitions

TOKEN = "test-token-0123456789"


def _json_obs(obs: dict[str, torch.Tensor]) -> dict[str, list]:
    return {k: v.tolist() for k, v in obs.items()}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    module, market, cfg = tiny_module()
    stream = transitions(module, market, cfg, 20)
    state_dir = tmp_path_factory.mktemp("serve")
    host = ModelHost(module, state_dir, learn=OnlineLearnConfig(), challenger=ChallengerConfig(enabled=False))
    server = ApiServer(create_app(host, StatusSource(state_dir), TOKEN), ApiConfig(port=0))
    server.start()
    client = httpx.Client(base_url=f"http://127.0.0.1:{server.port}", headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=30)
    yield host, client, stream, state_dir
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


@pytest.mark.parametrize("path,body,status,fragment", [
    ("/load", {"versio": "v1_0_0"}, 422, "versio"),
    ("/set_hparams", {"lr": "fast"}, 422, "lr"),
    ("/set_hparams", {"lr": -1.0}, 400, "live.learn.lr=-1.0 is invalid: it must be > 0"),
    ("/set_hparams", {"temperature": 0}, 400, "temperature"),
    ("/act", {"obs": {"price_15m": [1, 2]}}, 400, "observation keys"),
    ("/load", {"version": "v7_0_0"}, 400, "not found"),
    ("/learn", {"transitions": [{"obs": {}, "action": -1, "reward": 0, "next_obs": {}}]}, 422, "action"),
])
def test_malformed_bodies_get_4xx_and_change_nothing(served, path, body, status, fragment):
    host, client, _, _ = served
    before = (host.version, host.hparams(), _weights(host.net))
    answer = client.post(path, json=body)
    assert answer.status_code == status, answer.text
    assert fragment in answer.json()["detail"] and "nothing was changed" in answer.json()["detail"]
    assert (host.version, host.hparams()) == before[:2]
    assert all(torch.equal(v, before[2][k]) for k, v in _weights(host.net).items())
    not_json = client.post(path, content=b"{not json", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 422


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
    assert len(events) - before == n
    assert sorted(e["kind"] for e in events[before:]) == sorted(["set_hparams", "act", "save"] * (n // 3))
    names = [v.name for v in host.versions.list()]
    assert len(names) == len(set(names))  # concurrent saves never reuse a version number


def test_non_loopback_bind_needs_a_token(monkeypatch):
    monkeypatch.delenv("KPREMIA_API_TOKEN", raising=False)
    with pytest.raises(UserError, match="export KPREMIA_API_TOKEN"):
        check_bind(ApiConfig(host="0.0.0.0"))
    assert check_bind(ApiConfig(host="127.0.0.1")) is None
    assert check_bind(ApiConfig(host="::1")) is None
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

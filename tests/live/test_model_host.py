"""The model host under concurrency and bad input: a load never races an update, poison is refused, not kept.

* a ``/load`` (or ``live.rollback``) while an online update sits between its backward pass and its optimiser
  step (an injected delay) waits for the update, and the update's result is then discarded (the background
  path) or published before the load (the synchronous path) with exactly the weights an undisturbed update
  gives;
* a reward that is finite in float64 but not in the learner's float32 (``1e308``) is refused where it enters;
* an update whose weights come out non-finite is never kept: no version, and the learner is set back;
* ``temperature`` reaches the trading policy when it samples, and is refused when it trades the argmax.
"""

from __future__ import annotations

import copy
import threading
import time
from types import SimpleNamespace

import pytest
import torch

from kpremia.core.errors import UserError
from kpremia.live.learning.challenger import ChallengerConfig
from kpremia.live.learning.control_log import read_events
from kpremia.live.learning.host import ModelHost
from kpremia.live.learning.online_ppo import OnlinePPO
from kpremia.run.live_config import OnlineLearnConfig
from kpremia.live.loop.policy import CheckpointPolicy
from tests.live.online_fixtures import tiny_module, transitions

CFG = OnlineLearnConfig(batch_size=4, every=1, lr=0.003)


@pytest.fixture(scope="module")
def setup():
    module, market, cfg = tiny_module()
    return module, transitions(module, market, cfg, 6)


def _host(module, tmp_path) -> ModelHost:
    host = ModelHost(copy.deepcopy(module), tmp_path / "state", learn=CFG, challenger=ChallengerConfig(enabled=False))
    return host


def _fill(host: ModelHost, stream) -> None:
    for t in stream:
        if host.add_transition(t):
            return
    raise AssertionError("no update became due")


def _slow_step(learner: OnlinePPO, in_step: threading.Event, delay_s: float = 0.3) -> None:
    """Delay every optimiser step after the backward pass (the window a racing load used to fall into)."""
    step = learner.optimizer.step

    def slow(*args, **kwargs):
        in_step.set()
        time.sleep(delay_s)
        return step(*args, **kwargs)

    learner.optimizer.step = slow


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_load_during_a_background_update_waits_and_discards_it(setup, tmp_path):
    module, stream = setup
    host = _host(module, tmp_path)
    _fill(host, stream)
    learner = host.learner
    in_step = threading.Event()
    _slow_step(learner, in_step)
    lineage, out = learner.lineage, {}

    def work():  # what the model callback's update thread does
        try:
            with host.learn_lock:
                out["result"] = learner.update()
        except BaseException as exc:  # noqa: BLE001
            out["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    assert in_step.wait(10)
    host.load("v1_0_0")  # blocks until the update is done, then restarts the learner from v1_0_0
    thread.join()
    assert "error" not in out  # no "modified by an inplace operation"
    assert host.publish(out["result"], lineage) is None  # published at the next bar: discarded
    _, loaded = host.versions.load("v1_0_0")
    assert [v.name for v in host.versions.list()] == ["v1_0_0"] and host.version == "v1_0_0"
    assert _equal(host.net.state_dict(), loaded) and _equal(learner.weights(), loaded)
    assert [e["kind"] for e in read_events(tmp_path / "state" / "model_journal.sqlite", source="learner")] == \
        ["discard"]
    host.close()


def test_a_load_during_a_synchronous_update_comes_after_it(setup, tmp_path):
    module, stream = setup
    reference = _host(module, tmp_path / "ref")  # the same update, undisturbed
    _fill(reference, stream)
    reference.update()
    expected = reference.versions.load("v1_0_1")[1]
    reference.close()

    host = _host(module, tmp_path)
    _fill(host, stream)
    in_step = threading.Event()
    _slow_step(host.learner, in_step)
    thread = threading.Thread(target=host.update)  # what POST /learn does
    thread.start()
    assert in_step.wait(10)
    host.load("v1_0_0")
    thread.join()
    update = host.versions.get("v1_0_1")
    assert update.parent == "v1_0_0" and _equal(host.versions.load("v1_0_1")[1], expected)
    assert host.version == "v1_0_0" and _equal(host.net.state_dict(), host.versions.load("v1_0_0")[1])
    host.close()


def test_a_reward_infinite_in_float32_is_refused_where_it_enters(setup):
    module, stream = setup
    learner = OnlinePPO(module.net, CFG)
    learner.add(stream[0])
    for bad in (1e308, float("nan"), float("inf"), -3.5e38):
        with pytest.raises(UserError, match="reward=.*float32"):
            learner.add(stream[1]._replace(reward=bad))
    with pytest.raises(UserError, match="next_obs"):
        key = next(iter(stream[1].next_obs))
        learner.add(stream[1]._replace(next_obs={**stream[1].next_obs, key: stream[1].next_obs[key] * float("inf")}))
    assert len(learner.window) == 1 and learner.transitions_seen == 1
    learner.add(stream[1]._replace(reward=3.0e38))  # large but finite in float32: accepted
    assert len(learner.window) == 2


def test_a_non_finite_update_is_never_kept(setup, tmp_path):
    module, stream = setup
    host = _host(module, tmp_path)
    _fill(host, stream)
    learner = host.learner
    before = learner.weights()
    moments = copy.deepcopy(learner.optimizer.state_dict())
    step = learner.optimizer.step

    def poisoned(*args, **kwargs):  # an update whose step leaves an infinite weight
        out = step(*args, **kwargs)
        with torch.no_grad():
            next(learner.net.parameters()).view(-1)[0] = float("inf")
        return out

    learner.optimizer.step = poisoned
    result = host.update()
    assert result.kept is False and learner.updates == 0
    assert _equal(learner.weights(), before)
    assert str(learner.optimizer.state_dict()) == str(moments)
    assert [v.name for v in host.versions.list()] == ["v1_0_0"]
    refusals = read_events(tmp_path / "state" / "model_journal.sqlite", source="learner")
    assert [(e["kind"], e["ok"]) for e in refusals] == [("refuse", 0)]
    learner.optimizer.step = step
    assert host.update().kept and [v.name for v in host.versions.list()] == ["v1_0_0", "v1_0_1"]
    host.close()


def test_temperature_reaches_a_sampling_trading_policy_or_is_refused(checkpoint, tmp_path):
    sampling = CheckpointPolicy(checkpoint, deterministic=False, temperature=1.0)
    host = ModelHost(sampling.module, tmp_path / "s", trading=sampling, lock=sampling.lock)
    host.set_hparams(temperature=0.05)
    assert sampling.temperature == 0.05 and host.hparams()["temperature"] == 0.05
    state = host.state_dict()
    host.close()
    again = CheckpointPolicy(checkpoint, deterministic=False, temperature=1.0)  # a restart keeps it
    restored = ModelHost(again.module, tmp_path / "s", trading=again, lock=again.lock, begin=False)
    restored.load_state_dict(state)
    assert again.temperature == 0.05
    restored.close()

    for bad in (0.0, 1e-320, 1e308):  # the start's eval.temperature uses the same range as /set_hparams
        with pytest.raises(UserError, match=r"eval.temperature=.*\[0.01, 100\]"):
            CheckpointPolicy(checkpoint, deterministic=False, temperature=bad)

    argmax = SimpleNamespace(deterministic=True, temperature=1.0)
    host = ModelHost(sampling.module, tmp_path / "d", trading=argmax)
    with pytest.raises(UserError, match="eval.deterministic=false"):
        host.set_hparams(temperature=0.05)
    assert argmax.temperature == 1.0 and host.temperature == 1.0
    host.close()


def test_post_learn_refuses_a_float32_infinite_reward_and_learns_nothing_of_the_request(setup, tmp_path):
    import httpx

    from kpremia.live.http.api import ApiConfig, ApiServer, create_app
    from kpremia.live.http.status import StatusSource

    module, stream = setup
    host = _host(module, tmp_path)
    server = ApiServer(create_app(host, StatusSource(tmp_path / "state"), None), ApiConfig(port=0))
    server.start()

    def body(t, reward):
        return {"obs": {k: v[0].tolist() for k, v in t.obs.items()}, "action": t.action, "reward": reward,
                "next_obs": {k: v[0].tolist() for k, v in t.next_obs.items()}, "logprob": t.logprob}

    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as client:
            answer = client.post("/learn", json={"transitions": [body(stream[0], 0.1), body(stream[1], 1e308)]})
            assert answer.status_code == 400 and "reward=1e+308" in answer.text, answer.text
            assert len(host.learner.window) == 0  # the good transition before it was not learned either
            assert client.post("/learn", json={"transitions": [body(stream[0], 0.1)]}).status_code == 200
            assert len(host.learner.window) == 1
    finally:
        server.stop()
        host.close()

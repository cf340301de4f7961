"""Online PPO: real updates move the weights, the anchor bounds them, a killed run resumes exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from kpremia.algos.config import PPOConfig
from kpremia.core.errors import UserError
from kpremia.live.learning.online_ppo import OnlinePPO
from kpremia.run.live_config import OnlineLearnConfig
from tests.live.online_fixtures import tiny_module, transitions


@pytest.fixture(scope="module")
def setup():
    module, market, cfg = tiny_module()
    return module, transitions(module, market, cfg, 60)


def _flat(net) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in net.parameters()])


def test_defaults_are_the_reference_live_settings():
    c = OnlineLearnConfig()
    assert (c.lr, c.clip_epsilon, c.entropy_coef, c.value_coef, c.update_epochs, c.batch_size, c.every) == (
        1e-4, 0.1, 0.02, 0.4, 1, 16, 3)


def test_updates_follow_the_schedule_and_change_the_weights(setup):
    module, stream = setup
    learner = OnlinePPO(module.net)
    before = _flat(learner.net).clone()
    due = []
    for t in stream[:26]:
        due.append(learner.add(t))
        if due[-1]:
            learner.update()
    # first update once 16 transitions exist, then every 3 new ones
    assert [i + 1 for i, d in enumerate(due) if d] == [16, 19, 22, 25]
    learner2 = OnlinePPO(module.net)
    for t in stream[:16]:
        learner2.add(t)
    result = learner2.update()
    after = _flat(learner2.net)
    assert not torch.equal(before, after)
    assert result.update == 1 and result.transitions_seen == 16
    # the reported distance is the independent L2 distance to the loaded weights
    assert result.anchor_distance == pytest.approx(float((after.double() - before.double()).norm()), rel=1e-6)
    # the loaded module itself is never touched by learning
    assert torch.equal(_flat(module.net), before)


def test_anchor_keeps_the_weights_within_the_configured_distance(setup):
    module, stream = setup
    cfg = OnlineLearnConfig(lr=0.01, max_distance=0.05, every=1)  # a large lr would walk far away
    learner = OnlinePPO(module.net, cfg)
    anchor = _flat(module.net).double()
    projected = []
    for t in stream:
        if learner.add(t):
            projected.append(learner.update().projected)
            assert float((_flat(learner.net).double() - anchor).norm()) <= 0.05 * (1 + 1e-5)
    assert any(projected), "the hard radius never acted: the test does not exercise it"
    free = OnlinePPO(module.net, OnlineLearnConfig(lr=0.01, max_distance=1e6, every=1, anchor=0.0))
    for t in stream:
        if free.add(t):
            free.update()
    assert free.anchor_distance() > 0.05  # without the anchor the same updates go further


def test_the_l2_pull_alone_shrinks_the_drift(setup):
    module, stream = setup

    def drift(anchor: float) -> float:
        learner = OnlinePPO(module.net, OnlineLearnConfig(lr=0.01, anchor=anchor, max_distance=1e6, every=1))
        for t in stream:
            if learner.add(t):
                learner.update()
        return learner.anchor_distance()

    assert drift(50.0) < drift(0.0)


def test_set_hparams_validates_all_or_nothing(setup):
    module, _ = setup
    learner = OnlinePPO(module.net)
    learner.set_hparams(lr=3e-5, clip_epsilon=0.2)
    assert (learner.config.lr, learner.config.clip_epsilon) == (3e-5, 0.2)
    with pytest.raises(UserError, match="clip_epsilon"):
        learner.set_hparams(lr=1e-3, clip_epsilon=5.0)
    assert learner.config.lr == 3e-5
    with pytest.raises(UserError, match="cannot change"):
        learner.set_hparams(batch_size=4)


def test_config_errors_are_one_line():
    from kpremia.run.live_config import LearnConfig

    with pytest.raises(UserError, match="live.learn.lrr is not a setting"):
        LearnConfig.from_dict({"lrr": 1})
    with pytest.raises(UserError, match=r"live\.learn\.clip_epsilon=2\.0 is invalid"):
        LearnConfig.from_dict({"clip_epsilon": 2})
    learn = LearnConfig.from_dict({"enabled": True, "every": 5})
    assert learn.every == 5 and learn.learner(PPOConfig(gamma=0.9)) == OnlineLearnConfig(every=5, gamma=0.9, reward_scale=100.0)


def test_dqn_is_refused_with_a_clear_line():
    module, _, _ = tiny_module("algo=dqn")
    with pytest.raises(UserError, match="PPO .* only.*live.learn.enabled=false"):
        OnlinePPO(module.net)


def test_state_round_trip_continues_identically(setup, tmp_path):
    module, stream = setup
    straight = OnlinePPO(module.net)
    half = OnlinePPO(module.net)
    for i, t in enumerate(stream):
        for learner in (straight, half) if i < 30 else (straight,):
            if learner.add(t):
                learner.update()
    torch.save(half.state_dict(), tmp_path / "s.pt")
    resumed = OnlinePPO(module.net)
    resumed.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=False))
    for t in stream[30:]:
        if resumed.add(t):
            resumed.update()
    assert resumed.updates == straight.updates
    assert torch.equal(_flat(resumed.net), _flat(straight.net))
    assert all(torch.equal(a, b) for a, b in zip(
        [v for s in resumed.optimizer.state.values() for v in s.values()],
        [v for s in straight.optimizer.state.values() for v in s.values()], strict=True))


DRIVER = textwrap.dedent("""
    import os, sys, torch
    from kpremia.core.io import atomic_write
    from kpremia.live.learning.online_ppo import OnlinePPO
    from tests.live.online_fixtures import tiny_module, transitions
    state_path, stop_after = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(1)
    module, market, cfg = tiny_module()
    stream = transitions(module, market, cfg, 60)
    learner = OnlinePPO(module.net)
    if os.path.exists(state_path):
        learner.load_state_dict(torch.load(state_path, weights_only=False))
    for i in range(learner.transitions_seen, len(stream)):
        if learner.add(stream[i]):
            learner.update()
        atomic_write(state_path, lambda f: torch.save(learner.state_dict(), f))  # the runner's per-bar commit
        if i + 1 == stop_after:
            os.kill(os.getpid(), 9)
    print("done", learner.updates)
""")


def _drive(tmp_path, state, stop_after):
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", DRIVER, str(state), str(stop_after)], capture_output=True,
                          text=True, env=env, timeout=300)


def test_resume_after_kill_9_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    straight = _drive(tmp_path, tmp_path / "straight.pt", -1)
    assert straight.returncode == 0, straight.stderr[-2000:]
    killed = tmp_path / "killed.pt"
    for stop in (17, 35):  # mid-schedule kills, one right after an update's bar
        proc = _drive(tmp_path, killed, stop)
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    resumed = _drive(tmp_path, killed, -1)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert resumed.stdout.split() == straight.stdout.split()
    a = torch.load(tmp_path / "straight.pt", weights_only=False)
    b = torch.load(killed, weights_only=False)
    assert a["updates"] == b["updates"] > 10
    assert all(torch.equal(a["net"][k], b["net"][k]) for k in a["net"])

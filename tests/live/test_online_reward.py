"""The online learner learns from the reward the policy was trained on, one transition per decision.

A checkpoint trained with ``env.decision_every=4``, the fx-hedged reward and both
penalties trades a paper session with learning on (updates never due, so the
weights, and so the actions, stay the checkpoint's).  The transitions it records
must be the training simulator's: the same BatchedEnv the checkpoint was trained
in, with the same decision interval, stepped with the session's actions over the
same bars, pays the same reward for every decision.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from kpremia.envs.batched import BatchedEnv
from kpremia.envs.config import EnvConfig
from kpremia.envs.experiment import ALL_SPLITS, load_market
from kpremia.live.loop.build import run_live
from kpremia.live.loop.journal import read_table
from kpremia.live.loop.sealed import read_snapshot

from .conftest import make_checkpoint

K = 4


def test_online_transitions_carry_the_training_reward_per_decision(live_cfg, tmp_path) -> None:
    cfg = copy.deepcopy(live_cfg)
    cfg["env"].update(decision_every=K, reward="fx_hedged", turnover_penalty=0.002, flat_penalty=1e-5)
    checkpoint = make_checkpoint(tmp_path / "ckpt" / "checkpoints" / "last.ckpt", cfg)
    cli = copy.deepcopy(cfg)
    cli["ckpt"] = str(checkpoint)
    cli["live"].update(state_dir=str(tmp_path / "state"), journal={"synchronous": "NORMAL"})
    cli["live"]["learn"].update(enabled=True, every=1_000_000, batch_size=100_000, challenger={"enabled": False})
    run_live(cli, overrides=[])

    decisions = read_table(tmp_path / "state" / "journal.sqlite", "decisions")
    blob = read_table(tmp_path / "state" / "journal.sqlite", "state")["snapshot"].iloc[0]
    window = read_snapshot(blob)["callbacks"]["ModelCallback"]["host"]["learner"]["window"]
    acted = decisions[decisions["action"].notna()]
    assert (acted["step"].diff().dropna() == K).all()  # a decision every K bars, as trained
    assert window["n"] == len(acted) - 1  # one transition per decision (the last one still waits for its reward)
    assert window["action"] == acted["action"].astype(int).tolist()[:-1]

    # The training simulator over the same bars, stepped with the same decisions.
    env_cfg = EnvConfig.of(cfg["env"])
    test = load_market(cfg, ALL_SPLITS).tensors["test"]
    assert test.valid_from == 0 and len(decisions) == test.n_bars
    sim = BatchedEnv(test, 1, rules=env_cfg.execution, clock=env_cfg.clock, reward=env_cfg.reward_rule,
                     action_scheme=env_cfg.action_scheme, initial_krw=env_cfg.initial_krw, max_steps=None,
                     random_start=False, ruin_terminates=False)
    sim.reset()
    offline = []
    for action in window["action"]:
        _, reward, _, truncated, info = sim.step(torch.tensor([action]))
        offline.append(float(reward[0]))
        assert not bool(truncated[0])
    online = np.asarray(window["reward"])
    np.testing.assert_allclose(online, np.asarray(offline), rtol=1e-5, atol=1e-7)
    # the rewards are the configured ones, not the plain log return of the account
    equity = acted["equity_krw"].to_numpy()
    plain = np.diff(np.log(equity))
    assert np.abs(online - plain).max() > 1e-5
    assert np.count_nonzero(online) > len(online) // 2

"""``algo.total_env_steps`` runs as asked: whole rounds (rollouts), a shorter last epoch, never whole epochs.

Before, the budget was rounded up to whole epochs: ``experiment=gru_attn_ppo algo.total_env_steps=8192``
ran 65,536 env steps (8 rollouts per epoch) with one INFO line.
"""

from __future__ import annotations

import pandas as pd
import torch

from kpremia.core.spec import ObsSpec
from kpremia.run import training
from kpremia.run.checkpoint import build_module

from .test_ppo_training import TINY, weights


def test_the_issue_budget_is_one_rollout_not_one_epoch(compose_cfg) -> None:
    cfg = compose_cfg("experiment=gru_attn_ppo", "algo.total_env_steps=8192")
    module = build_module(cfg, ObsSpec.default(), market=None)
    assert module.env_steps_per_round(1) == 64 * 128 == 8192 and cfg["algo"]["rollouts_per_epoch"] == 8
    assert (module.total_rounds(1), module.max_epochs(1), module.rounds_in_epoch(0, 1)) == (1, 1, 1)
    cfg = compose_cfg("experiment=gru_attn_ppo", "algo.total_env_steps=90000")  # 10.99 rollouts: 11
    module = build_module(cfg, ObsSpec.default(), market=None)
    assert (module.total_rounds(1), module.max_epochs(1)) == (11, 2)
    assert [module.rounds_in_epoch(e, 1) for e in range(2)] == [8, 3]


def test_a_budget_of_three_rounds_in_epochs_of_two_runs_three_and_validates_after_each_epoch(compose_cfg,
                                                                                             tmp_path) -> None:
    cfg = compose_cfg(*TINY, "algo.rollouts_per_epoch=2", "algo.total_env_steps=384")  # rounds of 128 env steps
    result = training.fit(cfg, tmp_path / "run")
    assert result["env_steps"] == 384
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics.dropna(subset=["val/return"])["step"].tolist() == [256, 384]  # the last epoch had one round
    assert int(metrics["rollout/episode_return"].notna().sum()) == 3
    rounded = training.fit(compose_cfg(*TINY, "algo.rollouts_per_epoch=2", "algo.total_env_steps=300"),
                           tmp_path / "rounded")
    assert rounded["env_steps"] == 384  # up to a whole round, not to a whole epoch (512)


def test_resume_across_a_short_last_epoch_is_exact(compose_cfg, tmp_path) -> None:
    tiny = [*TINY, "algo.rollouts_per_epoch=2", "algo.total_env_steps=384"]
    straight = training.fit(compose_cfg(*tiny), tmp_path / "straight")
    half = training.fit(compose_cfg(*tiny, "trainer.max_epochs=1"), tmp_path / "half")
    assert half["env_steps"] == 256
    resumed = training.fit(compose_cfg(*tiny, f"ckpt={half['last_model_path']}"), tmp_path / "half")
    assert resumed["env_steps"] == 384
    ws, wr = weights(straight["module"]), weights(resumed["module"])
    assert all(torch.equal(ws[k], wr[k]) for k in ws)

"""PPO trains through the real Lightning Trainer: reproducible, exactly resumable, learns."""

from __future__ import annotations

import pytest
import torch

from kpremia.run import training

TINY = [
    "experiment=gru_attn_ppo", "encoder=mlp", "data.days=40", "env.n_envs=8", "env.max_steps=100",
    "algo.n_steps=16", "algo.rollouts_per_epoch=1", "algo.update_epochs=2", "algo.n_minibatches=2",
    "algo.total_env_steps=256", "trainer.enable_progress_bar=false",
]


def weights(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.net.state_dict().items()}


def test_seeded_fit_is_reproducible(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY)
    a = training.fit(cfg, tmp_path / "a")
    b = training.fit(cfg, tmp_path / "b")
    wa, wb = weights(a["module"]), weights(b["module"])
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = training.fit(compose_cfg(*TINY, "seed=1"), tmp_path / "c")
    assert not all(torch.equal(wa[k], weights(c["module"])[k]) for k in wa)


def test_resume_is_exact_and_continues_the_step_count(compose_cfg, tmp_path):
    straight = training.fit(compose_cfg(*TINY), tmp_path / "straight")
    half = training.fit(compose_cfg(*TINY, "trainer.max_epochs=1"), tmp_path / "half")
    assert half["env_steps"] == straight["env_steps"] // 2
    resumed = training.fit(compose_cfg(*TINY, f"ckpt={half['last_model_path']}"), tmp_path / "resumed")
    assert resumed["env_steps"] == straight["env_steps"]
    assert resumed["module"].updates == straight["module"].updates
    ws, wr = weights(straight["module"]), weights(resumed["module"])
    assert all(torch.equal(ws[k], wr[k]) for k in ws), "resumed weights differ from the straight run"


def test_first_minibatch_ratio_is_one_and_the_clip_acts(compose_cfg, tmp_path):
    import pandas as pd

    cfg = compose_cfg(*TINY, "algo.total_env_steps=512", "algo.update_epochs=4", "algo.lr=0.003")
    result = training.fit(cfg, tmp_path / "run")
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    first = metrics["train/first_ratio"].dropna()
    assert len(first) >= 2
    assert (first - 1.0).abs().max() < 1e-6  # old log-probs come from the rollout itself
    # ...and the ratio is not stuck at 1: later minibatches move the policy, the clip acts.
    assert metrics["train/clip_fraction"].dropna().max() > 0.0
    assert metrics["train/approx_kl"].dropna().max() > 0.0
    assert result["env_steps"] == 512


def test_encoder_dropout_changes_nothing_in_training(compose_cfg, tmp_path):
    """The encoder YAMLs say dropout is inactive (eval mode in rollout and update): same seed, same weights."""
    from pathlib import Path

    import yaml

    import kpremia

    text = (Path(kpremia.__file__).parent / "configs" / "encoder" / "lstm.yaml").read_text()
    assert "Inactive under kpremia's PPO and DQN" in text and yaml.safe_load(text)["dropout"] == 0.1
    tiny = [*TINY, "encoder=lstm", "encoder.hidden_dim=16", "encoder.num_layers=2"]
    a = training.fit(compose_cfg(*tiny, "encoder.dropout=0.0"), tmp_path / "a")
    b = training.fit(compose_cfg(*tiny, "encoder.dropout=0.5"), tmp_path / "b")
    wa, wb = weights(a["module"]), weights(b["module"])
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in b["module"].net.modules())
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_target_kl_early_stop_still_logs_the_rollout(compose_cfg, tmp_path):
    """A rollout whose update stops on algo.target_kl is logged like any other (it used to be skipped)."""
    import pandas as pd

    cfg = compose_cfg(*TINY, "algo.total_env_steps=512", "algo.update_epochs=4", "algo.lr=0.01",
                      "algo.target_kl=1e-9")
    training.fit(cfg, tmp_path / "run")
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    rollouts = metrics.dropna(subset=["train/approx_kl"])
    assert len(rollouts) == 512 // (8 * 16)  # every rollout has its row
    assert (rollouts["train/kl_stopped"] == 1.0).all()  # each stopped after its first epoch ...
    assert (rollouts["train/minibatches"] == 2).all()  # ... of n_minibatches = 2
    assert rollouts["rollout/episode_return"].notna().all()

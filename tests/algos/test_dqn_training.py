"""DQN trains through the real Lightning Trainer: logs per round, target timing, exact resume, every encoder."""

from __future__ import annotations

import lightning as L
import pandas as pd
import pytest
import torch

from kpremia.algos.dqn_math import linear_epsilon
from kpremia.core.registry import ENCODERS
from kpremia.envs.experiment import load_market
from kpremia.run import training
from kpremia.run.checkpoint import build_module, load_module

# 4 collect rounds of 4 steps x 8 envs per epoch, 2 epochs; updates start after 2 rounds,
# 2 updates per round -> 14 updates; the 20-step buffer wraps (32 steps are collected).
TINY = [
    "experiment=mlp_dqn", "data.days=40", "env.n_envs=8", "env.max_steps=100", "algo.collect_steps=4",
    "algo.gradient_steps=2", "algo.rollouts_per_epoch=4", "algo.total_env_steps=256", "algo.learning_starts=64",
    "algo.batch_size=32", "algo.buffer_size=160", "algo.target_update_interval=3", "algo.lr=0.001",
    "trainer.enable_progress_bar=false",
]
UPDATES = 14


def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fit_counts_logs_once_per_round_and_syncs_the_target_every_k_updates(compose_cfg, tmp_path, monkeypatch):
    import kpremia.algos.dqn as dqn_module

    synced: list[dict[str, torch.Tensor]] = []
    real_update = dqn_module.polyak_update

    def recording_update(online, target, tau):
        real_update(online, target, tau)
        synced.append(state(online))

    monkeypatch.setattr(dqn_module, "polyak_update", recording_update)
    result = training.fit(compose_cfg(*TINY), tmp_path / "run")
    module = result["module"]
    assert result["env_steps"] == 256
    assert module.updates == UPDATES
    # hard updates at updates 3, 6, 9, 12: the target holds the online weights of update 12
    assert len(synced) == UPDATES // 3
    assert same(state(module.target_net), synced[-1])
    assert not same(state(module.target_net), state(module.net))
    assert not any(p.requires_grad for p in module.target_net.parameters())

    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    for key in ("rollout/episode_return", "train/td_loss", "train/q_mean", "train/epsilon", "perf/env_steps_per_s",
                "env_steps", "val/sharpe"):
        assert key in metrics.columns, key
    rounds = metrics.dropna(subset=["train/epsilon"])
    assert rounds["env_steps"].tolist() == [32.0 * i for i in range(1, 9)]  # one row per collect round
    # the epsilon schedule (decay over 0.1 * 256 env steps) seen at the end of each round
    expected = [linear_epsilon(int(s), 256, start=1.0, end=0.05, decay_fraction=0.1) for s in rounds["env_steps"]]
    assert rounds["train/epsilon"].tolist() == pytest.approx(expected)
    # no update during warm-up (the first 64 env steps)
    learning = metrics.dropna(subset=["train/td_loss"])
    assert learning["env_steps"].min() == 64.0


def test_resume_with_the_buffer_is_exact(compose_cfg, tmp_path):
    tiny = [*TINY, "algo.n_step=3", "algo.double_dqn=true"]
    straight = training.fit(compose_cfg(*tiny), tmp_path / "straight")
    half = training.fit(compose_cfg(*tiny, "trainer.max_epochs=1"), tmp_path / "half")
    assert half["env_steps"] == straight["env_steps"] // 2
    assert 0 < half["module"].updates < straight["module"].updates
    resumed = training.fit(compose_cfg(*tiny, f"ckpt={half['last_model_path']}"), tmp_path / "resumed")
    s, r = straight["module"], resumed["module"]
    assert (r.env_steps, r.updates) == (s.env_steps, s.updates) == (256, UPDATES)
    assert same(state(s.net), state(r.net)), "resumed online weights differ from the straight run"
    assert same(state(s.target_net), state(r.target_net)), "resumed target weights differ from the straight run"
    rs, rr = s.replay.state_dict(), r.replay.state_dict()
    assert torch.equal(rs["rewards"], rr["rewards"]) and torch.equal(rs["generator"], rr["generator"])
    assert rs["pos"] == rr["pos"] and rs["size"] == rr["size"]


def test_checkpoint_holds_the_target_net_and_the_buffer(compose_cfg, tmp_path):
    result = training.fit(compose_cfg(*TINY, "trainer.max_epochs=1"), tmp_path / "run")
    ckpt = torch.load(result["last_model_path"], map_location="cpu", weights_only=False)
    assert any(k.startswith("target_net.") for k in ckpt["state_dict"])
    replay = ckpt["kpremia"]["per_rank"][0]["replay"]
    assert replay["size"] == 16 and replay["rewards"].shape == (16, 8)
    # a checkpoint alone rebuilds a module that acts greedily
    module = load_module(result["last_model_path"])
    obs = module.spec.zeros(3)
    assert module.act(obs).shape == (3,)


@pytest.mark.parametrize("encoder", ENCODERS.names())
def test_every_encoder_trains_with_three_q_values(compose_cfg, tmp_path, encoder):
    cfg = compose_cfg("experiment=dnn_lstm_dqn", f"encoder={encoder}", "data.days=30", "env.n_envs=4",
                      "env.max_steps=50", "algo.collect_steps=4", "algo.gradient_steps=1",
                      "algo.rollouts_per_epoch=2", "algo.total_env_steps=32", "algo.learning_starts=32",
                      "algo.batch_size=8", "algo.buffer_size=64", "trainer.enable_progress_bar=false")
    assert cfg["env"]["action_scheme"] == {"name": "hold_buy_sell"}
    L.seed_everything(int(cfg["seed"]), verbose=False)  # as fit does before it builds the module
    market = load_market(cfg)
    before = state(build_module(cfg, market.spec, market).net)
    result = training.fit(cfg, tmp_path / "run")
    module = result["module"]
    assert module.n_actions == 3 and module.net(module.spec.zeros(2)).shape == (2, 3)
    assert module.updates == 1
    assert not same(before, state(module.net)), "one update left the weights unchanged"
    assert result["best_score"] is not None  # validation ran


def test_debug_fast_updates(compose_cfg, tmp_path, caplog):
    """``debug=fast`` (2,048 env steps) is below the default learning_starts (10,000): it must still update."""
    cfg = compose_cfg("experiment=mlp_dqn", "debug=fast")
    assert cfg["algo"]["learning_starts"] > cfg["algo"]["total_env_steps"]
    with caplog.at_level("WARNING", logger="kpremia.algos.dqn"):
        result = training.fit(cfg, tmp_path)
    module = result["module"]
    assert module.updates > 0
    assert module.learning_starts == cfg["algo"]["total_env_steps"] // 2
    assert any("would never update" in r.getMessage() for r in caplog.records)


def test_learning_starts_below_the_budget_is_kept():
    from kpremia.algos.dqn import effective_learning_starts

    assert effective_learning_starts(64, 256) == 64
    assert effective_learning_starts(0, 256) == 0
    assert effective_learning_starts(256, 256) == 256  # the last round reaches 256 and updates
    assert effective_learning_starts(257, 256) == 128
    assert effective_learning_starts(10_000, 2_048) == 1_024

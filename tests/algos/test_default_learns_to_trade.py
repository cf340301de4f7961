"""The default experiment's learning levers make PPO trade a market with an edge (slow).

On the ``mean_reverting`` preset the premium swings well beyond the fees, so a policy
that holds cash has learned nothing.  The default experiment (``gru_attn_ppo``: one
decision every 16 bars, hold/buy/sell, the fx-hedged reward) trained briefly must trade
on the validation split and make money after every fill's fee and spread, well above a
random trader under the same rules.
"""

from __future__ import annotations

import pytest
import torch

from kpremia.envs.experiment import load_market
from kpremia.run import training
from kpremia.run.checkpoint import load_module


@pytest.mark.slow
def test_default_experiment_learns_to_trade_on_the_mean_reverting_preset(compose_cfg, tmp_path):
    from kpremia.eval.backtest import run_policy_backtest, trace_metrics

    cfg = compose_cfg(
        "experiment=gru_attn_ppo", "data.preset=mean_reverting", "data.days=90", "env.n_envs=32",
        "algo.n_steps=64", "algo.rollouts_per_epoch=4", "algo.total_env_steps=40960",
        "trainer.enable_progress_bar=false",
    )
    assert cfg["env"]["decision_every"] == "4h" and cfg["env"]["reward"] == "fx_hedged"  # the default's levers
    result = training.fit(cfg, tmp_path / "run")
    module = load_module(result["best_model_path"])
    val = load_market(cfg).tensors["val"]
    kwargs = cfg["env"]  # the run's env config, as fit validates with
    agent = trace_metrics(run_policy_backtest(lambda o: module.act(o), val, kwargs)[0])
    gen = torch.Generator().manual_seed(0)
    n = module.n_actions
    random_traces = run_policy_backtest(lambda o: torch.randint(0, n, (16,), generator=gen), val, kwargs, n_envs=16)
    random_return = sum(trace_metrics(t)["return"] for t in random_traces) / 16
    assert agent["n_trades"] >= 10, agent  # it trades ...
    assert agent["return"] > 0.01, agent  # ... profitably after fees and spread ...
    assert agent["return"] > random_return + 0.05, (agent, random_return)  # ... and far better than chance


@pytest.mark.slow
def test_default_experiment_trades_on_the_default_market(compose_cfg, tmp_path):
    """The main job on its own (calibrated, default) synthetic market, at a reduced budget: its best
    checkpoint trades on the validation split and keeps money, where the shared-trunk GRU used to hold
    cash at every validation (docs/results.md)."""
    from kpremia.eval.backtest import run_policy_backtest, trace_metrics

    cfg = compose_cfg("experiment=gru_attn_ppo", "algo.total_env_steps=65536", "algo.rollouts_per_epoch=4",
                      "eval.val_draws=1", "trainer.enable_progress_bar=false")
    result = training.fit(cfg, tmp_path / "run")
    module = load_module(result["best_model_path"])
    val = load_market(cfg).tensors["val"]
    agent = trace_metrics(run_policy_backtest(lambda o: module.act(o), val, cfg["env"])[0])
    assert agent["n_trades"] >= 4, agent  # it trades ...
    assert agent["return"] > 0.0, agent  # ... and does not lose money doing it

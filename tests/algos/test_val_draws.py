"""Model selection over several validation markets (eval.val_draws): the logged means are the markets' means."""

from __future__ import annotations

import pandas as pd
import pytest

from kpremia.core.errors import UserError
from kpremia.envs.experiment import load_market
from kpremia.run import training

TINY = [
    "experiment=gru_attn_ppo", "encoder=mlp", "data.days=60", "env.n_envs=8", "env.max_steps=100",
    "algo.n_steps=16", "algo.rollouts_per_epoch=1", "algo.update_epochs=2", "algo.n_minibatches=2",
    "algo.total_env_steps=256", "trainer.enable_progress_bar=false",
]


def test_validation_averages_the_runs_val_split_and_other_draws(compose_cfg, tmp_path):
    from kpremia.eval.backtest import run_baseline_backtests, run_policy_backtest, trace_metrics
    from kpremia.eval.baselines import make_baselines

    cfg = compose_cfg(*TINY, "eval.val_draws=3", "algo.init_hold_prob=0.4")
    assert training.val_draw_seeds(cfg) == [501, 502, 503][:2]
    result = training.fit(cfg, tmp_path / "run")
    last = pd.read_csv(tmp_path / "run" / "metrics.csv").dropna(subset=["val/return"]).iloc[-1]

    # Independently: the final policy on the run's val split and on the two draws, each on its own.
    module = result["module"]
    market = load_market(cfg)
    draws = [market.tensors["val"]] + [
        load_market({**cfg, "data": {**cfg["data"], "seed": s}}, ("val",), market.normalizer).tensors["val"]
        for s in (501, 502)]
    kwargs = cfg["env"]
    returns = [trace_metrics(run_policy_backtest(lambda o: module.act(o), m, kwargs)[0])["return"] for m in draws]
    rule = make_baselines(["premium_threshold"], kwargs)["premium_threshold"]
    rule.fit(market.tensors["train"])
    bands = [trace_metrics(run_baseline_backtests({"b": rule}, m, kwargs)["b"])["return"] for m in draws]
    assert len({float(m.premium.sum()) for m in draws}) == 3  # three different markets
    assert last["val/return"] == pytest.approx(sum(returns) / 3, abs=1e-9)
    assert last["val/band_return"] == pytest.approx(sum(bands) / 3, abs=1e-9)
    assert last["val/excess_return"] == pytest.approx((sum(returns) - sum(bands)) / 3, abs=1e-9)
    assert last["val/draws_above_band"] == sum(r > b for r, b in zip(returns, bands))


def test_val_draws_need_a_generated_market(compose_cfg):
    cfg = compose_cfg("data=csv", "data.path=prices.csv", "eval.val_draws=2")
    with pytest.raises(UserError, match="eval.val_draws=2 needs a generated market") as err:
        training.val_draw_seeds(cfg)
    assert "\n" not in str(err.value)
    assert training.val_draw_seeds(compose_cfg("data=csv", "data.path=prices.csv")) == []

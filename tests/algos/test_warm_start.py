"""Warm start from a rule: labels, behaviour cloning to the rule's actions, once per run, exact resume."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from kpremia.algos.config import WarmStartConfig
from kpremia.algos.warm_start import Teacher, scheme_actions_for
from kpremia.core.errors import UserError
from kpremia.envs.action_schemes import build_action_scheme
from kpremia.envs.experiment import load_market
from kpremia.run import training

TINY = [
    "experiment=gru_attn_ppo", "encoder=mlp", "data.days=60", "env.n_envs=8", "env.max_steps=400",
    "algo.n_steps=16", "algo.rollouts_per_epoch=1", "algo.update_epochs=2", "algo.n_minibatches=2",
    "algo.total_env_steps=256", "trainer.enable_progress_bar=false",
]
WARM = ("algo/warm_start=band_rule", "algo.warm_start.collect_steps=256")
NAN = float("nan")


def weights(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.net.state_dict().items()}


@pytest.mark.parametrize(("scheme", "wanted", "weight", "expected"), [
    # hold_buy_sell: 0 hold (no order), 1 buy all, 2 sell all
    ("hold_buy_sell", [NAN, 1.0, 0.0, NAN], [0.0, 0.0, 1.0, 1.0], [0, 1, 2, 0]),
    # signal: 0 hold, 1 toggles (buys under the 0.1 sell threshold, sells above it)
    ("signal", [NAN, 1.0, 0.0, NAN], [0.0, 0.0, 1.0, 1.0], [0, 1, 1, 0]),
    # target_weight [0, 0.5, 1]: every action orders; "keep" is the action whose target is the weight
    ({"name": "target_weight", "weights": [0.0, 0.5, 1.0]}, [NAN, 1.0, 0.0, NAN], [0.5, 0.0, 1.0, 1.0],
     [1, 2, 0, 2]),
])
def test_wanted_weights_map_to_the_scheme_action_that_reaches_them(scheme, wanted, weight, expected):
    built = build_action_scheme(scheme)
    got = scheme_actions_for(built, torch.tensor(wanted, dtype=torch.float64), torch.tensor(weight, dtype=torch.float64))
    assert got.tolist() == expected


def test_teacher_buys_only_from_cash_and_sells_only_when_holding():
    hold, buy, sell = 0, 1, 2
    rule = torch.tensor([buy, buy, sell, sell, hold, hold])
    teacher = Teacher(rule, build_action_scheme("hold_buy_sell"))
    t = torch.arange(6)
    weight = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    assert teacher.labels(t, weight).tolist() == [buy, hold, sell, hold, hold, hold]


def test_warm_start_config_refuses_bad_settings_in_one_line(compose_cfg):
    from kpremia.algos.config import PPOConfig

    algo = compose_cfg(*TINY)["algo"]
    for node, key in (({"rule": "premium_threshold", "stepz": 3}, "algo.warm_start.stepz"),
                      ({"steps": -1}, "algo.warm_start.steps")):
        with pytest.raises(UserError, match=key.replace(".", r"\.")) as err:
            PPOConfig.from_dict({**algo, "warm_start": node})
        assert "\n" not in str(err.value)
    assert WarmStartConfig.from_dict({}).rule == "premium_threshold"
    cfg = WarmStartConfig.from_dict({"kl_coef": 2.0, "kl_decay_fraction": 0.5})
    assert cfg.kl_weight(0, 1000) == 2.0 and cfg.kl_weight(250, 1000) == 1.0 and cfg.kl_weight(600, 1000) == 0.0


def test_teacher_must_be_a_causal_registered_rule(compose_cfg):
    market = load_market(compose_cfg(*TINY))
    scheme = build_action_scheme("hold_buy_sell")
    with pytest.raises(UserError, match="not a registered baseline"):
        Teacher.fit("band_rul", market.tensors["train"], {}, scheme)
    with pytest.raises(UserError, match="hindsight"):
        Teacher.fit("oracle", market.tensors["train"], {}, scheme)


def test_dqn_refuses_a_warm_start_in_one_line(compose_cfg):
    from kpremia.algos.config import DQNConfig

    algo = compose_cfg("experiment=mlp_dqn")["algo"]
    with pytest.raises(UserError, match="algo.warm_start is PPO's"):
        DQNConfig.from_dict({**algo, "warm_start": {"rule": "premium_threshold"}})


def test_warm_start_clones_the_rules_position_aware_actions(compose_cfg, tmp_path):
    """After the warm start (PPO's lr ~0 leaves it as is) the policy acts like the band rule.

    The reference is computed independently: the band levels fit on train by the
    baseline itself, applied to the premium and position of every decision the policy
    took in a backtest of the train split.
    """
    from kpremia.eval.backtest import run_policy_backtest
    from kpremia.eval.baselines import make_baselines

    cfg = compose_cfg(*TINY, *WARM, "algo.lr=1e-12")
    result = training.fit(cfg, tmp_path / "run")
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics["warmstart/accuracy"].dropna().iloc[0] >= 0.95

    train = load_market(cfg).tensors["train"]
    rule = make_baselines(["premium_threshold"], cfg["env"])["premium_threshold"]
    rule.fit(train)
    buy_level, sell_level = rule.buy_threshold, rule.sell_threshold
    assert math.isfinite(buy_level) and math.isfinite(sell_level)
    module = result["module"]
    trace = run_policy_backtest(lambda o: module.act(o), train, cfg["env"])[0]
    decided = trace[trace["action"].notna() & (trace["action"] >= 0)]
    holding = decided["position"] > 0.5
    expected = pd.Series(0, index=decided.index)
    expected[(decided["premium"] <= buy_level) & ~holding] = 1
    expected[(decided["premium"] >= sell_level) & holding] = 2
    agreement = (decided["action"].astype(int) == expected).mean()
    assert agreement >= 0.95, agreement
    assert trace["traded"].sum() >= 2  # it trades, like the rule


def test_warm_start_happens_once_and_resume_stays_bitwise(compose_cfg, tmp_path):
    tiny = [*TINY, *WARM, "algo.warm_start.kl_coef=0.5", "algo.total_env_steps=256"]
    straight = training.fit(compose_cfg(*tiny), tmp_path / "straight")
    half = training.fit(compose_cfg(*tiny, "trainer.max_epochs=1"), tmp_path / "half")
    resumed = training.fit(compose_cfg(*tiny, f"ckpt={half['last_model_path']}"), tmp_path / "resumed")
    ws, wr = weights(straight["module"]), weights(resumed["module"])
    assert all(torch.equal(ws[k], wr[k]) for k in ws), "resumed weights differ from the straight run"
    assert "warmstart/accuracy" in pd.read_csv(tmp_path / "straight" / "metrics.csv")
    resumed_metrics = pd.read_csv(tmp_path / "resumed" / "metrics.csv")
    assert "warmstart/accuracy" not in resumed_metrics or resumed_metrics["warmstart/accuracy"].isna().all()
    # The teacher term is logged while it decays (and the policy still agrees with the rule).
    assert resumed_metrics["train/teacher_agreement"].dropna().min() > 0.5


def test_detached_and_separate_critics_keep_the_value_loss_out_of_the_policys_encoder(compose_cfg):
    from kpremia.algos.ppo import PPO
    from kpremia.core.spec import ObsSpec

    cfg = compose_cfg(*TINY)
    market = load_market(cfg)
    obs = {k: v[:32] for k, v in market.tensors["train"].obs.items()}
    obs["account"] = torch.zeros(32, 3)
    spec = ObsSpec.default(window_bars=cfg["env"]["window_bars"], window_1d=cfg["env"]["window_1d"],
                           window_premium=cfg["env"]["window_premium"],
                           n_features=market.tensors["train"].obs["features"].shape[1])
    for critic in ("shared", "detached", "separate"):
        module = PPO({**cfg, "algo": {**cfg["algo"], "critic": critic}}, spec)
        net = module.net
        _, value = net(obs)
        value.pow(2).mean().backward()
        encoder_grad = sum(float(p.grad.abs().sum()) for p in net.encoder.parameters() if p.grad is not None)
        if critic == "shared":
            assert encoder_grad > 0
        else:
            assert encoder_grad == 0.0
        if critic == "separate":
            assert net.critic_encoder is not None
            assert not {id(p) for p in net.critic_encoder.parameters()} & {id(p) for p in net.encoder.parameters()}
            assert sum(float(p.grad.abs().sum()) for p in net.critic_encoder.parameters()) > 0


def test_model_based_teacher_plans_with_the_generators_parameters(compose_cfg):
    """``algo/warm_start=model_based``: on the synthetic market the teacher is the model-based trader
    with the generator's parameters (the data manifest's), labelling every bar, and it trades."""
    from kpremia.eval.model_based import ModelBased

    cfg = compose_cfg(*TINY, "algo/warm_start=model_based")
    assert cfg["algo"]["warm_start"]["rule"] == "model_based"
    market = load_market(cfg)
    train = market.tensors["train"]
    scheme = build_action_scheme("hold_buy_sell")
    teacher = Teacher.fit("model_based", train, cfg["env"], scheme, manifest=market.manifest)
    from kpremia.envs.config import EnvConfig

    env = EnvConfig.of(cfg["env"])
    reference = ModelBased(env.execution, clock=env.clock, synthetic=market.manifest["params"], model="synthetic")
    reference.fit(train)
    assert torch.equal(teacher.rule_actions, reference.signals(train))
    assert {1, 2} <= set(teacher.rule_actions.tolist())

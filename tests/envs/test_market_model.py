"""One market model everywhere: the simulator's defaults are the config's, and the adapters other
libraries train on are ``fit``'s own training env for the same experiment."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys

import gymnasium
import numpy as np
import pytest
import torch

import kpremia  # noqa: F401  (registers kpremia/KPremia-v0)
from kpremia.core.errors import UserError
from kpremia.envs.batched import BatchedEnv
from kpremia.envs.clock import DecisionClock
from kpremia.envs.config import EnvConfig
from kpremia.envs.execution import ExecutionRules
from kpremia.envs.experiment import DEFAULT_EXPERIMENT, experiment_config, load_market
from kpremia.envs.reward import RewardRule

from .conftest import build_market, random_walk_close


def test_batched_env_defaults_are_the_config_defaults() -> None:
    """Every knob has one default: BatchedEnv's signature, ExecutionRules, DecisionClock, RewardRule and EnvConfig agree."""
    config = EnvConfig()
    params = inspect.signature(BatchedEnv).parameters
    assert params["rules"].default == config.execution == ExecutionRules()
    assert params["clock"].default == config.clock == DecisionClock()
    assert params["reward"].default == config.reward_rule == RewardRule()
    for name in ("initial_krw", "ruin_fraction", "max_steps"):
        assert params[name].default == getattr(config, name), name
    assert params["action_scheme"].default is None  # None: the config's scheme node
    # the YAML's spread (one 0.5 KRW tick) reaches a directly built simulator, not only `fit`
    assert ExecutionRules().spread_krw == 0.5 == config.spread_krw
    for part in (ExecutionRules, DecisionClock, RewardRule):
        for field in dataclasses.fields(part):
            assert getattr(config, field.name) == getattr(part(), field.name), field.name


def test_batched_env_built_bare_steps_like_the_one_built_from_the_default_config() -> None:
    market = build_market(random_walk_close(400, seed=1), valid_from=20)
    bare = BatchedEnv(market, 8, seed=3)
    configured = BatchedEnv.from_config(market, EnvConfig(), n_envs=8, seed=3)
    bare.reset(), configured.reset()
    gen = torch.Generator().manual_seed(0)
    traded = 0
    for _ in range(150):
        a = torch.randint(0, 2, (8,), generator=gen)
        o1, r1, t1, u1, i1 = bare.step(a)
        o2, r2, t2, u2, i2 = configured.step(a)
        assert torch.equal(r1, r2) and torch.equal(t1, t2) and torch.equal(u1, u2)
        assert all(torch.equal(o1[k], o2[k]) for k in o1)
        assert torch.equal(i1["fill_price"].nan_to_num(-1), i2["fill_price"].nan_to_num(-1))
        traded += int(i1["traded"].sum())
    assert traded > 50


def test_rules_are_checked_once_when_made() -> None:
    with pytest.raises(UserError, match=r"env\.fee_rate=0\.5 is invalid"):
        ExecutionRules(fee_rate=0.5)
    with pytest.raises(UserError, match=r"env\.spread_krw=-1"):
        ExecutionRules(spread_krw=-1.0)
    with pytest.raises(UserError, match="env.decision_every"):
        DecisionClock(decision_every=0)
    assert DecisionClock(decision_every=4).decides(8) and not DecisionClock(decision_every=4).decides(9)
    with pytest.raises(UserError, match="takes a ExecutionRules"):
        BatchedEnv(build_market(random_walk_close(100)), 1, rules={"fee_rate": 0.001})


def _fit_training_env(compose_cfg, tmp_path, experiment: str):
    """The training env exactly as ``fit`` builds it (RLModule.setup under a real Trainer)."""
    from kpremia.run import training
    from kpremia.run.checkpoint import build_module

    cfg = compose_cfg(f"experiment={experiment}", "env.n_envs=1", "trainer.enable_progress_bar=false")
    market = load_market(cfg)
    module = build_module(cfg, market.spec, market)
    trainer, _ = training.build_trainer(cfg, tmp_path, module)
    module.trainer = trainer
    module.setup("fit")
    return module.train_env


@pytest.mark.parametrize("experiment", ["mlp_ppo", DEFAULT_EXPERIMENT])
def test_the_gym_env_of_an_experiment_is_fits_training_env(compose_cfg, tmp_path, experiment) -> None:
    """Same observations, fills and rewards for the same actions: market, rules and decision interval."""
    train_env = _fit_training_env(compose_cfg, tmp_path, experiment)
    env_cfg = EnvConfig.of(compose_cfg(f"experiment={experiment}")["env"])
    assert env_cfg.clock.at(15.0).bars_per_decision == 16 and env_cfg.reward == "fx_hedged"  # the levers (4h at 15m)
    gym_env = gymnasium.make("kpremia/KPremia-v0", experiment=experiment, seed=int(compose_cfg()["seed"]))
    assert gym_env.unwrapped.env.clock == train_env.clock and gym_env.unwrapped.env.rules == train_env.rules
    obs, _ = gym_env.reset()
    t_obs = train_env.reset()
    assert all(np.array_equal(obs[k], t_obs[k][0].numpy()) for k in obs)
    rng = np.random.default_rng(0)
    fills = steps = 0
    done = False
    while not done:  # one whole episode (after it gymnasium's reset draws a start the auto-reset did not)
        action = int(rng.integers(gym_env.action_space.n))
        obs, reward, terminated, truncated, info = gym_env.step(action)
        t_obs, t_reward, t_term, t_trunc, t_info = train_env.step(torch.tensor([action]))
        assert reward == float(t_reward[0]) and terminated == bool(t_term[0]) and truncated == bool(t_trunc[0])
        assert all(np.array_equal(obs[k], t_info["final_obs"][k][0].numpy()) for k in obs)
        assert info["traded"] == bool(t_info["traded"][0]) and info["fee_krw"] == float(t_info["fee_krw"][0])
        if info["traded"]:
            fills += 1
            assert info["fill_price"] == float(t_info["fill_price"][0])
        steps += 1
        done = terminated or truncated
    assert steps > 20 and fills > 5


def test_the_adapters_default_to_the_main_experiment() -> None:
    """No experiment named: the main job's market model, stated in the docs (gru_attn_ppo)."""
    default = EnvConfig.of(experiment_config(DEFAULT_EXPERIMENT)["env"])
    env = gymnasium.make("kpremia/KPremia-v0").unwrapped
    assert env.config == default
    assert (env.env.scheme.action_names, env.env.clock.decision_every, env.env.reward_rule.reward) == (
        ("hold", "buy", "sell"), 16, "fx_hedged")
    with pytest.raises(UserError, match="experiment='nope'"):
        gymnasium.make("kpremia/KPremia-v0", experiment="nope")


def test_the_simulator_imports_no_training_stack_web_server_or_exchange_library() -> None:
    """``import kpremia.envs`` and a BatchedEnv over a real market load neither Lightning, FastAPI nor ccxt."""
    code = (
        "import sys, torch\n"
        "import kpremia.envs\n"
        "from kpremia.envs.batched import BatchedEnv\n"
        "from kpremia.envs.experiment import experiment_market\n"
        "env = BatchedEnv(experiment_market('mlp_ppo').tensors['train'], 4)\n"
        "env.reset(); env.step(torch.ones(4, dtype=torch.long))\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning', "
        "'fastapi', 'uvicorn', 'ccxt'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout

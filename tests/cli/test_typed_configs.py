"""Typed config parts: YAML defaults equal the dataclass defaults, old keys still work, bad values are one line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import kpremia
from kpremia.algos.config import AlgoConfig, DQNConfig, PPOConfig, WarmStartConfig
from kpremia.app.config_checks import validate_config
from kpremia.core.config import checkpoint_of, knob, positive
from kpremia.core.errors import UserError
from kpremia.envs.config import EnvConfig
from kpremia.eval.config import EvalConfig

CONFIGS = Path(kpremia.__file__).parent / "configs"


def yaml_defaults(path: str) -> dict:
    data = yaml.safe_load((CONFIGS / path).read_text())
    data.pop("defaults", None)
    return data


@pytest.mark.parametrize("part, path", [(PPOConfig, "algo/ppo.yaml"), (DQNConfig, "algo/dqn.yaml"),
                                        (EvalConfig, "eval/default.yaml"),
                                        (WarmStartConfig, "algo/warm_start/band_rule.yaml")])
def test_yaml_and_dataclass_hold_the_same_knobs_and_defaults(part, path) -> None:
    assert yaml_defaults(path) == part.defaults()


def test_env_yaml_and_dataclass_hold_the_same_knobs_and_defaults(compose_cfg) -> None:
    """The composed env (default.yaml + its action_scheme group) is the dataclass default."""
    assert compose_cfg()["env"] == EnvConfig.defaults()


def test_typed_parts_of_the_composed_config(compose_cfg) -> None:
    cfg = compose_cfg("experiment=mlp_dqn", "env.n_envs=8", "algo.lr=0.001")
    env, algo = EnvConfig.from_dict(cfg["env"]), DQNConfig.from_dict(cfg["algo"])
    assert (env.n_envs, env.fee_rate, algo.lr, algo.collect_steps) == (8, 0.001, 0.001, 4)
    assert env["n_envs"] == 8 and env.get("nope", "x") == "x" and dict(env)["fee_rate"] == 0.001  # reads like the dict


@pytest.mark.parametrize("old", ["fee", "signal_sell_threshold", "target_weights"])
def test_keys_renamed_before_the_first_release_are_refused(old) -> None:
    """No release ever read them: an old name is an unknown key, one line naming the known ones."""
    with pytest.raises(UserError, match=rf"env\.{old} is not a setting of `env`.*fee_rate"):
        EnvConfig.from_dict({**EnvConfig.defaults(), old: 0.1})


def test_the_checkpoint_key_is_ckpt() -> None:
    assert checkpoint_of({"ckpt": "a.ckpt"}) == "a.ckpt"
    assert checkpoint_of({"ckpt": None}) is None
    assert checkpoint_of({"ckpt_path": "b.ckpt"}) is None  # not a key of this config


def test_env_keys_of_a_value_object_share_its_default_and_rule() -> None:
    """fee_rate's default and rule live on ExecutionRules; EnvConfig declares the key from it."""
    from kpremia.envs.clock import DecisionClock
    from kpremia.envs.execution import ExecutionRules
    from kpremia.envs.reward import RewardRule

    env = EnvConfig.from_dict({"fee_rate": 0.0005, "decision_every": 4, "reward": "fx_hedged", "spread_bps": 2.0})
    assert env.execution == ExecutionRules(fee_rate=0.0005, spread_bps=2.0)
    assert env.clock == DecisionClock(decision_every=4) and env.reward_rule == RewardRule(reward="fx_hedged")
    with pytest.raises(UserError) as from_env:
        EnvConfig.from_dict({"fee_rate": 0.2})
    with pytest.raises(UserError) as from_rules:
        ExecutionRules(fee_rate=0.2)
    assert str(from_env.value) == str(from_rules.value)  # one rule, one message


@pytest.mark.parametrize("override, key", [
    ("env.n_envs=0", "env.n_envs"), ("env.fee_rate=0.2", "env.fee_rate"), ("env.max_steps=0", "env.max_steps"),
    ("algo.gamma=0", "algo.gamma"), ("algo.n_minibatches=100000", "algo.n_minibatches"),
    ("eval.n_seeds=0", "eval.n_seeds"), ("env.n_envs=abc", "env.n_envs"),
])
def test_a_bad_value_names_its_key(compose_cfg, override, key) -> None:
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        validate_config(compose_cfg(override))


def test_an_unknown_key_is_refused_with_the_known_ones() -> None:
    with pytest.raises(UserError, match=r"env\.colour is not a setting of `env`.*fee_rate"):
        EnvConfig.from_dict({"colour": 1})


def test_a_plugin_algorithm_brings_its_own_checks(compose_cfg) -> None:
    """validate_config checks algo with the registered class's config_class, not a branch on the name."""
    from kpremia.algos.base import RLModule
    from kpremia.core.registry import ALGOS

    @dataclass(frozen=True)
    class SlowConfig(AlgoConfig):
        name: str = knob("test_slow")
        patience: float = knob(1.0, positive())

    class Slow(RLModule):
        config_class = SlowConfig

    ALGOS.register("test_slow")(Slow)
    try:
        from kpremia.algos.config import algo_config_class

        assert algo_config_class("test_slow") is SlowConfig
        base = compose_cfg()
        cfg = {**base, "algo": {**AlgoConfig.defaults(), "name": "test_slow", "patience": 2.0}}
        validate_config(cfg)
        with pytest.raises(UserError, match=r"algo\.patience=-1\.0 is invalid: it must be > 0"):
            validate_config({**cfg, "algo": {**cfg["algo"], "patience": -1}})
    finally:
        ALGOS._entries.pop("test_slow")


@pytest.mark.parametrize("name", ["ppo", "dqn"])
def test_a_builtin_algorithms_config_part_is_found_without_importing_it(name) -> None:
    from kpremia.algos.config import BUILTIN_CONFIGS, algo_config_class
    from kpremia.core.registry import ALGOS

    assert algo_config_class(name) is BUILTIN_CONFIGS[name] is ALGOS.get(name).config_class


def test_live_yaml_and_dataclass_hold_the_same_settings_and_defaults(compose_cfg) -> None:
    """configs/live/default.yaml is LiveConfig's defaults, nested parts included (one address per setting)."""
    from kpremia.run.live_config import LiveConfig

    composed = compose_cfg()["live"]
    assert composed == LiveConfig.defaults()
    live = LiveConfig.from_dict(composed)
    assert live.risk.kill_switch_path("state") == Path("state") / "KILL"
    assert live.learn.challenger.window == "1d" and live.api.port == 8765
    # no setting has two addresses: the callbacks only switch risk and model on
    assert "risk" not in live.callbacks and live.callbacks["model"] == {}  # the risk engine is not a callback


@pytest.mark.parametrize("override, key", [
    ("live.risk.max_daily_loss=1.5", "live.risk.max_daily_loss"), ("live.api.port=70000", "live.api.port"),
    ("live.learn.lr=-1", "live.learn.lr"), ("live.learn.challenger.window=0", "live.learn.challenger.window"),
    ("live.journal.synchronous=SOMETIMES", "live.journal.synchronous"), ("live.max_bars=0", "live.max_bars"),
])
def test_a_bad_live_value_names_its_key(compose_cfg, override, key) -> None:
    from kpremia.run.live_config import LiveConfig

    with pytest.raises(UserError, match=key.replace(".", r"\.") + "=.* is invalid"):
        LiveConfig.from_dict(compose_cfg(override)["live"])


def test_an_unknown_live_key_is_refused(compose_cfg) -> None:
    from kpremia.run.live_config import LiveConfig

    with pytest.raises(UserError, match=r"live\.risk\.max_loss is not a setting of `live\.risk`"):
        LiveConfig.from_dict(compose_cfg("+live.risk.max_loss=0.1")["live"])


def test_the_run_config_is_parsed_once_and_passed_whole(compose_cfg) -> None:
    """``validate_config`` returns the parsed RunConfig; ``RunConfig.of`` passes it on without parsing again;
    it reads like the resolved dict; durations become bars in one place (``EnvConfig.in_bars``)."""
    from kpremia.run.live_config import LiveConfig
    from kpremia.run.run_config import RunConfig

    cfg = compose_cfg("experiment=gru_attn_ppo", "env.max_steps=1000h", "live.max_bars=7")
    run = validate_config(cfg)
    assert isinstance(run, RunConfig) and RunConfig.of(run) is run
    assert isinstance(run.env, EnvConfig) and isinstance(run.algo, PPOConfig) and isinstance(run.eval, EvalConfig)
    assert isinstance(run.live, LiveConfig) and run.live.max_bars == 7
    assert run["data"] == cfg["data"] and dict(run) == cfg  # the resolved dict, unchanged
    assert (run.env.decision_every, run.env.max_steps) == ("4h", "1000h")  # given as durations
    at_15m, at_1h = run.env.in_bars(15.0), run.env.in_bars(60.0)
    assert (at_15m.decision_every, at_15m.max_steps) == (16, 4000)
    assert (at_1h.decision_every, at_1h.max_steps) == (4, 1000)
    assert at_15m.clock.bars_per_decision == run.env.clock.at(15.0).bars_per_decision == 16
    other = run.with_groups(data={**cfg["data"], "seed": 99})
    assert other.env is run.env and other["data"]["seed"] == 99 and run["data"] != other["data"]
    with pytest.raises(ValueError, match="typed parts"):
        run.with_groups(env={})
    with pytest.raises(UserError, match="env.n_envs"):
        RunConfig.from_dict({**cfg, "env": {**cfg["env"], "n_envs": 0}})

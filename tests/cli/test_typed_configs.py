"""Typed config parts: YAML defaults equal the dataclass defaults, old keys still work, bad values are one line."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from kpremia.algos.warm_start import WarmStartConfig

import kpremia
from kpremia.algos.config import AlgoConfig, DQNConfig, PPOConfig
from kpremia.config import checkpoint_of, knob, positive
from kpremia.config_checks import validate_config
from kpremia.envs.config import EnvConfig
from kpremia.errors import UserError
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


def test_old_env_fee_is_read_as_fee_rate_with_a_warning(compose_cfg) -> None:
    cfg = compose_cfg("++env.fee=0.002")  # what the CLI turns `env.fee=0.002` into
    with pytest.warns(FutureWarning, match="env.fee is deprecated.*env.fee_rate"):
        env = EnvConfig.from_dict(cfg["env"])
    assert env.fee_rate == 0.002 and "fee" not in env


def test_old_ckpt_path_is_read_as_ckpt_with_a_warning() -> None:
    assert checkpoint_of({"ckpt": "a.ckpt"}) == "a.ckpt"
    assert checkpoint_of({"ckpt": None}) is None
    with pytest.warns(FutureWarning, match="ckpt_path is deprecated.*ckpt"):
        assert checkpoint_of({"ckpt": None, "ckpt_path": "b.ckpt"}) == "b.ckpt"


def test_a_checkpoint_config_of_the_old_layout_still_builds() -> None:
    """Configs saved before the renames (fee, flat scheme options) load, with warnings."""
    old = {**EnvConfig.defaults(), "action_scheme": "target_weight", "target_weights": [0.0, 1.0],
           "signal_sell_threshold": 0.1}
    old["fee"] = old.pop("fee_rate")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = EnvConfig.from_dict(old)
    assert env.action_scheme == {"name": "target_weight", "weights": [0.0, 1.0]} and env.fee_rate == 0.001
    assert {str(w.message).split()[2] for w in caught} == {"env.fee", "env.target_weights", "env.signal_sell_threshold"}


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
    from kpremia.registry import ALGOS

    @dataclass(frozen=True)
    class SlowConfig(AlgoConfig):
        name: str = knob("test_slow")
        patience: float = knob(1.0, positive())

    class Slow(RLModule):
        config_class = SlowConfig

    ALGOS.register("test_slow")(Slow)
    try:
        base = compose_cfg()
        cfg = {**base, "algo": {**AlgoConfig.defaults(), "name": "test_slow", "patience": 2.0}}
        validate_config(cfg)
        with pytest.raises(UserError, match=r"algo\.patience=-1\.0 is invalid: it must be > 0"):
            validate_config({**cfg, "algo": {**cfg["algo"], "patience": -1}})
    finally:
        ALGOS._entries.pop("test_slow")

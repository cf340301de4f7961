"""Action schemes: actions -> USDT target weights (NaN = hold)."""

from __future__ import annotations

import math

import pytest
import torch

from kpremia.core.errors import UserError
from kpremia.core.registry import ACTION_SCHEMES


def targets(scheme, actions, weights) -> list[float]:
    out = scheme.target_weight(torch.tensor(actions), torch.tensor(weights, dtype=torch.float64))
    assert out.dtype == torch.float64
    return out.tolist()


def is_nan(x: float) -> bool:
    return math.isnan(x)


def test_registered_names() -> None:
    assert {"signal", "hold_buy_sell", "target_weight"} <= set(ACTION_SCHEMES.names())


def test_signal_buys_under_threshold_sells_at_or_above_and_holds_on_zero() -> None:
    scheme = ACTION_SCHEMES.get("signal")()
    assert scheme.n_actions == 2 and scheme.action_names == ("hold", "signal")
    out = targets(scheme, [1, 1, 1, 1, 0, 0], [0.0, 0.099, 0.10, 1.0, 0.0, 1.0])
    assert out[:4] == [1.0, 1.0, 0.0, 0.0]
    assert is_nan(out[4]) and is_nan(out[5])


def test_signal_threshold_is_configurable_and_validated() -> None:
    scheme = ACTION_SCHEMES.get("signal")(sell_threshold=0.6)
    assert targets(scheme, [1, 1], [0.5, 0.7]) == [1.0, 0.0]
    with pytest.raises(UserError, match="sell_threshold"):
        ACTION_SCHEMES.get("signal")(sell_threshold=0.0)


def test_hold_buy_sell() -> None:
    scheme = ACTION_SCHEMES.get("hold_buy_sell")()
    assert scheme.n_actions == 3 and scheme.action_names == ("hold", "buy", "sell")
    out = targets(scheme, [0, 1, 2, 1, 2], [0.3, 0.3, 0.3, 1.0, 0.0])
    assert is_nan(out[0]) and out[1:] == [1.0, 0.0, 1.0, 0.0]


def test_target_weight_default_and_custom_weights() -> None:
    scheme = ACTION_SCHEMES.get("target_weight")()
    assert scheme.n_actions == 3 and scheme.weights == (0.0, 0.5, 1.0)
    assert targets(scheme, [0, 1, 2], [0.2, 0.2, 0.2]) == [0.0, 0.5, 1.0]
    five = ACTION_SCHEMES.get("target_weight")(weights=[0, 0.25, 0.5, 0.75, 1])
    assert five.n_actions == 5 and five.action_names[1] == "w=0.25"
    assert targets(five, [4, 1], [0.0, 0.0]) == [1.0, 0.25]


def test_target_weight_short_needs_allow_short() -> None:
    with pytest.raises(UserError, match="env.allow_short"):
        ACTION_SCHEMES.get("target_weight")(weights=[-1.0, 0.0, 1.0])
    scheme = ACTION_SCHEMES.get("target_weight")(weights=[-1.0, 0.0, 1.0], allow_short=True)
    assert targets(scheme, [0, 2], [0.0, 0.0]) == [-1.0, 1.0]


@pytest.mark.parametrize("weights", [[0.0, 1.5], [], ["a"], [float("nan")]])
def test_target_weight_rejects_bad_weights(weights) -> None:
    with pytest.raises(UserError, match="weights"):
        ACTION_SCHEMES.get("target_weight")(weights=weights)


def test_unknown_scheme_is_a_user_error() -> None:
    with pytest.raises(UserError, match="signal"):
        ACTION_SCHEMES.get("signall")


# ----------------------------------------------------------------------------- one builder, config nodes
class _Levels:
    """A plug-in scheme with an option: ``levels`` evenly spaced target weights in [0, 1]."""

    def __init__(self, levels: int = 3) -> None:
        self.n_actions = int(levels)
        self.action_names = tuple(f"level{i}" for i in range(self.n_actions))
        self._table = torch.linspace(0.0, 1.0, self.n_actions, dtype=torch.float64)

    def target_weight(self, actions: torch.Tensor, usdt_weight: torch.Tensor) -> torch.Tensor:
        return self._table.to(usdt_weight.device).index_select(0, actions)


@pytest.fixture
def levels_scheme():
    ACTION_SCHEMES.register("test_levels")(_Levels)
    yield _Levels
    ACTION_SCHEMES._entries.pop("test_levels")


def test_builder_takes_a_name_a_node_or_a_built_scheme() -> None:
    from kpremia.envs.action_schemes import build_action_scheme

    assert build_action_scheme("hold_buy_sell").n_actions == 3
    node = {"name": "target_weight", "weights": [0.0, 1.0]}
    assert build_action_scheme(node).action_names == ("w=0", "w=1")
    assert node == {"name": "target_weight", "weights": [0.0, 1.0]}  # the config node is not consumed
    built = build_action_scheme("signal")
    assert build_action_scheme(built) is built
    with pytest.raises(UserError, match="env.allow_short"):
        build_action_scheme({"name": "target_weight", "weights": [-1.0, 1.0]})
    assert build_action_scheme({"name": "target_weight", "weights": [-1.0, 1.0]}, allow_short=True).n_actions == 2


def test_a_plugin_scheme_gets_its_options_from_the_env_config(levels_scheme, tmp_path, compose_cfg) -> None:
    """A plug-in ships env/action_scheme/<name>.yaml; training, evaluation and the env all see its options."""
    from kpremia.core.spec import ObsSpec
    from kpremia.envs.batched import BatchedEnv
    from kpremia.envs.config import EnvConfig
    from kpremia.run.checkpoint import build_module
    from tests.envs.conftest import build_market, random_walk_close

    (tmp_path / "env" / "action_scheme").mkdir(parents=True)
    (tmp_path / "env" / "action_scheme" / "test_levels.yaml").write_text("name: test_levels\nlevels: 3\n")
    cfg = compose_cfg(f"hydra.searchpath=[file://{tmp_path}]", "env/action_scheme=test_levels",
                      "env.action_scheme.levels=5", "env.n_envs=2", "encoder=mlp")
    assert cfg["env"]["action_scheme"] == {"name": "test_levels", "levels": 5}
    assert EnvConfig.of(cfg["env"]).scheme().n_actions == 5
    module = build_module(cfg, ObsSpec.default(n_features=4), market=None)
    assert module.n_actions == 5 and module.action_names[-1] == "level4"
    env = BatchedEnv.from_config(build_market(random_walk_close(300), valid_from=20), cfg["env"], seed=0)
    env.reset()
    _, _, _, _, info = env.step(torch.tensor([4, 2]))
    assert info["usdt_weight"].tolist() == pytest.approx([1.0, 0.5], abs=2e-3)  # the fee nibbles a little


def test_a_plain_name_picks_a_scheme_with_its_defaults(compose_cfg) -> None:
    from kpremia.envs.config import EnvConfig

    cfg = compose_cfg("env.action_scheme=target_weight")
    assert cfg["env"]["action_scheme"] == "target_weight"
    assert EnvConfig.of(cfg["env"]).scheme().weights == (0.0, 0.5, 1.0)
    grouped = compose_cfg("env/action_scheme=target_weight", "env.action_scheme.weights=[0.0,1.0]")
    assert EnvConfig.of(grouped["env"]).scheme().weights == (0.0, 1.0)


def test_the_old_top_level_scheme_keys_are_refused() -> None:
    """No release has read them: ``env.signal_sell_threshold`` is not a setting (its home is the scheme node)."""
    from kpremia.envs.config import EnvConfig

    with pytest.raises(UserError, match="env.signal_sell_threshold is not a setting"):
        EnvConfig.from_dict({"action_scheme": "signal", "signal_sell_threshold": 0.3})

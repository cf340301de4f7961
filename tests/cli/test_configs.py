"""Every config in the shipped tree composes, and the keys users rely on exist."""

from __future__ import annotations

from pathlib import Path

import pytest

import kpremia
from kpremia.app.config_checks import validate_config

CONFIGS = Path(kpremia.__file__).parent / "configs"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes_and_validates(compose_cfg, experiment):
    cfg = compose_cfg(f"experiment={experiment}")
    assert cfg["experiment_name"] == experiment
    validate_config(cfg)


@pytest.mark.parametrize("overrides, name", [
    (["experiment=gru_attn_ppo"], "gru_attn_ppo"),
    (["experiment=gru_attn_ppo", "encoder=lstm"], "gru_attn_ppo+lstm"),  # the encoder guide's case
    (["experiment=gru_attn_ppo", "encoder.name=mlp", "encoder=mlp"], "gru_attn_ppo+mlp"),
    (["experiment=mlp_ppo", "algo=dqn"], "mlp_ppo+dqn"),
    (["experiment=mlp_dqn", "encoder=lstm", "algo=ppo"], "mlp_dqn+lstm+ppo"),
    (["experiment=mlp_ppo", "encoder=mlp"], "mlp_ppo"),  # naming its own encoder changes nothing
    (["encoder=lstm"], "lstm+ppo"),  # no experiment: <encoder>+<algo>, never an experiment's name
    (["experiment=gru_attn_ppo", "encoder=lstm", "experiment_name=mine"], "mine"),  # an explicit name wins
])
def test_a_run_name_says_what_replaced_the_experiments_encoder_or_algo(compose_cfg, overrides, name):
    assert compose_cfg(*overrides)["experiment_name"] == name


@pytest.mark.parametrize("group", ["encoder", "algo", "algo/warm_start", "env", "trainer", "logger", "debug", "live"])
def test_every_group_option_composes(compose_cfg, group):
    for option in options(group):
        extra = ["data.path=x.csv"] if group == "data" else []
        cfg = compose_cfg(f"{group}={option}", *extra)
        assert cfg is not None


@pytest.mark.parametrize("option", options("data"))
def test_every_data_option_composes(compose_cfg, option):
    overrides = [f"data={option}"]
    if option in ("csv", "parquet"):
        overrides.append("data.path=prices.csv")
    cfg = compose_cfg(*overrides)
    assert cfg["data"]["name"] == option


def test_reference_defaults(compose_cfg):
    cfg = compose_cfg("experiment=gru_attn_ppo")
    assert cfg["encoder"] == {**cfg["encoder"], "name": "gru_attn", "hidden_dim": 64, "num_layers": 1,
                              "dropout": 0.1, "attention": True}
    algo, env = cfg["algo"], cfg["env"]
    assert (algo["gamma"], algo["lr"], algo["clip_epsilon"], algo["entropy_coef"], algo["value_coef"]) == (
        0.99, 3e-4, 0.2, 0.01, 0.5)
    assert (env["window_bars"], env["window_1d"], env["fee_rate"], env["initial_krw"]) == (15, 10, 0.001, 1_000_000.0)
    # the learning levers of the default experiment (docs/results.md): a decision every 4 hours
    # (16 bars at 15m), all in / all out, the fx-hedged reward, 1,000-hour episodes (4,000 bars at 15m,
    # 250 decisions); one-tick spread
    assert (env["decision_every"], env["action_scheme"]["name"], env["reward"], env["max_steps"]) == (
        "4h", "hold_buy_sell", "fx_hedged", "1000h")
    assert env["spread_krw"] == 0.5 and algo["monitor"] == "val/excess_return"
    for key in ("seed", "ckpt"):
        assert key in cfg
    for key in ("n_envs", "action_scheme"):
        assert key in env
    for key in ("total_env_steps", "update_epochs"):
        assert key in algo
    assert {"accelerator", "devices"} <= set(cfg["trainer"])


def test_upbit_preset(compose_cfg):
    env = compose_cfg("env=upbit")["env"]
    assert (env["fee_rate"], env["tick_size_krw"], env["min_order_krw"]) == (0.0005, 0.5, 5000.0)
    assert env["fee_convention"] == "krw_on_top"  # Upbit charges a bid's fee in KRW, on top of its amount


def test_the_repository_configs_link_is_the_package_tree() -> None:
    """README: the config tree ships in the package and is "also reachable as ./configs" (a symlink)."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    link = repo / "configs"
    assert link.is_symlink() and link.resolve() == (repo / "kpremia" / "configs").resolve()
    assert (link / "config.yaml").is_file() and (link / "experiment" / "gru_attn_ppo.yaml").is_file()

"""The Python API (kpremia.app.api): the CLI's commands as functions, a policy that acts on observations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import kpremia
from kpremia.core.errors import UserError

TINY = ["experiment=mlp_ppo", "data.days=40", "env.n_envs=8", "env.max_steps=100", "algo.n_steps=16",
        "algo.rollouts_per_epoch=1", "algo.update_epochs=2", "algo.n_minibatches=2", "algo.total_env_steps=256"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    runs = tmp_path_factory.mktemp("api") / "runs"
    return kpremia.fit([*TINY, f"paths.runs_dir={runs}"])


def test_import_kpremia_stays_light_and_lists_the_api() -> None:
    code = ("import sys, kpremia; names = sorted(kpremia.__all__); "
            "print(names, sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'hydra', 'pandas'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ("['FitResult', 'Policy', '__version__', 'backtest', 'compare', 'fit', 'inspect', "
                           "'load_policy', 'test', 'validate'] []")
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        kpremia.nope  # noqa: B018


def test_fit_returns_its_run_and_test_writes_the_report(run) -> None:
    assert run.run_dir.name.endswith("_mlp_ppo") and run.env_steps == 256
    assert run.last_checkpoint == run.run_dir / "checkpoints" / "last.ckpt" and run.best_checkpoint.is_file()
    assert run.config["encoder"]["name"] == "mlp" and isinstance(run.best_score, float)
    summary = kpremia.test(run.run_dir, ["eval.plots=false", "eval.test_markets=0"])
    report = run.run_dir / "report" / run.best_checkpoint.stem / "synthetic-seed0" / "test"
    assert Path(summary["report_dir"]) == report and (report / "summary.json").is_file()
    assert set(summary["baselines"]) >= {"premium_threshold", "oracle"} and "return" in summary["policy"]
    val = kpremia.validate(run.last_checkpoint)
    assert val["split"] == "val" and val["report_dir"] is None


def test_a_policy_acts_on_single_and_batched_observations_like_the_module(run) -> None:
    policy = kpremia.load_policy(run.run_dir)
    assert policy.checkpoint == run.best_checkpoint and policy.action_names == ("hold", "buy", "sell")
    env = policy.make_env("val", seed=1)
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    batch = {k: np.stack([v] * 3) for k, v in obs.items()}
    action = policy.act(obs)
    assert isinstance(action, int) and 0 <= action < 3
    assert policy.act(batch).tolist() == [action] * 3
    expected = policy.module.act({k: torch.as_tensor(v) for k, v in batch.items()}, deterministic=True)
    assert policy.act(batch).tolist() == expected.tolist()
    assert env.env.clock.decision_every == policy.env_config.clock.at(policy.bar_minutes).decision_every == 16
    with pytest.raises(UserError, match="the observation has no premium"):
        policy.act({k: v for k, v in obs.items() if k != "premium"})


def test_mistakes_are_user_errors_not_tracebacks(run, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="Could not find 'encoder/nope'"):
        kpremia.fit(["encoder=nope"])
    with pytest.raises(UserError, match="not found"):
        kpremia.test(tmp_path / "missing.ckpt")
    with pytest.raises(UserError, match="would change env.fee_rate"):
        kpremia.fit([f"ckpt={run.last_checkpoint}", "env.fee_rate=0.01"])


# The market of TINY (seed 0) without the training keys: what the gym env and backtest build for it.
MARKET = ["experiment=mlp_ppo", "data.days=40", "env.max_steps=100"]


def _report_files(summary: dict) -> set[str]:
    root = Path(summary["report_dir"])
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_an_sb3_model_goes_through_backtest_into_the_same_report_files_as_test(run, tmp_path: Path) -> None:
    """A Stable-Baselines3 PPO trained on kpremia's gym env is reported like a kpremia checkpoint."""
    sb3 = pytest.importorskip("stable_baselines3")
    import gymnasium

    env = gymnasium.make("kpremia/KPremia-v0", experiment="mlp_ppo", overrides=MARKET[1:])
    model = sb3.PPO("MultiInputPolicy", env, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=32)

    tested = kpremia.test(run.run_dir)
    backtested = kpremia.backtest(model, [*MARKET, f"paths.runs_dir={tmp_path / 'runs'}"])
    # the same report, but for the validation curve (learning.png): a policy trained elsewhere has none
    assert _report_files(backtested) == _report_files(tested) - {"learning.png"}
    assert {"summary.json", "trace.csv", "equity.csv", "equity.png"} <= _report_files(backtested)
    assert backtested["policy"]["n_trades"] >= 0 and backtested["split"] == "test"
    # the same market, rules and baselines as the checkpoint's own test: the baselines agree to the digit
    for name in ("premium_threshold", "buy_and_hold", "oracle", "model_based"):
        assert backtested["baselines"][name]["return"] == pytest.approx(tested["baselines"][name]["return"])
    run_dir = Path(backtested["report_dir"]).parent
    assert run_dir.name.endswith("_backtest") and (run_dir / "meta.json").is_file()


def test_backtest_of_a_kpremia_policy_equals_its_test(run, tmp_path: Path) -> None:
    """The independent check of the policy path: the checkpoint as a Policy scores what `test` scores."""
    tested = kpremia.test(run.run_dir, ["eval.plots=false"])
    backtested = kpremia.backtest(kpremia.load_policy(run.run_dir),
                                  [*MARKET, "eval.plots=false", f"paths.runs_dir={tmp_path / 'runs'}"])
    for key in ("return", "sharpe", "max_drawdown", "n_trades"):
        assert backtested["policy"][key] == pytest.approx(tested["policy"][key]), key
    with pytest.raises(UserError, match="outside this scheme's 0..2"):
        kpremia.backtest(lambda obs: np.full(len(obs["account"]), 7), [*MARKET, "eval.plots=false",
                                                                        f"paths.runs_dir={tmp_path / 'runs'}"])


def test_rules_backtest_compare_and_inspect_are_the_commands(run, tmp_path: Path) -> None:
    rules = kpremia.backtest(overrides=[*MARKET, "eval.plots=false", f"paths.runs_dir={tmp_path / 'runs'}"])
    assert "policy" not in rules or not rules["policy"]
    assert set(rules["baselines"]) >= {"premium_threshold", "oracle"} and Path(rules["report_dir"]).is_dir()
    kpremia.test(run.run_dir, ["eval.plots=false"])
    table = kpremia.compare(run.run_dir, out=tmp_path / "cmp", plot=False)
    assert (tmp_path / "cmp" / "compare.csv").is_file() and "trader" in table.columns and len(table) >= 1
    frame = pd.DataFrame({"time": pd.date_range("2024-01-01", periods=96, freq="15min", tz="UTC").astype(str),
                          "close": 1400.0, "fx": 1380.0})
    frame.to_csv(tmp_path / "bars.csv", index=False)
    report = kpremia.inspect(tmp_path / "bars.csv")
    assert report["coverage"]["rows"] == 96 and report["stats"]
    with pytest.raises(UserError, match="does not exist"):
        kpremia.compare(tmp_path / "nope")

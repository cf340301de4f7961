"""The Python API (kpremia.api): the CLI's commands as functions, a policy that acts on observations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import kpremia
from kpremia.errors import UserError

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
    assert out.strip() == "['FitResult', 'Policy', '__version__', 'fit', 'load_policy', 'test', 'validate'] []"
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

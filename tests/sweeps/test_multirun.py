"""Hydra multirun and the Optuna search through the real CLI, and their output fed to ``compare``.

Subprocess runs cost ~15 s of imports each on top of the tiny fits, so the CLI runs
are marked slow; the fast test checks compare's discovery on the multirun layout.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kpremia.eval.compare import compare_table, load_runs

from .conftest import TINY

# TINY without its encoder choice: the Optuna search sweeps encoder.hidden_dim (gru_attn has it, mlp not).
TINY_NO_ENCODER = [o for o in TINY if not o.startswith("encoder=")]


def _printed_run_dirs(stdout: str, root: Path) -> list[Path]:
    """The run directories `fit` printed: whole lines naming a directory under ``root``."""
    return [Path(line) for line in stdout.splitlines() if line.startswith(str(root)) and Path(line).is_dir()]


def test_compare_discovers_multirun_jobs(tmp_path):
    """multirun/<stamp>/<num>_<experiment>_seed<seed>/report/summary.json, experiment and seed from config.yaml."""
    stamp = tmp_path / "runs" / "multirun" / "2025-01-01_00-00-00_gru_attn_ppo"
    for num, (experiment, seed, sharpe) in enumerate([("gru_attn_ppo", 0, 1.0), ("mlp_ppo", 0, 0.5),
                                                       ("gru_attn_ppo", 1, 2.0)]):
        job = stamp / f"{num}_{experiment}_seed{seed}"
        (job / "report").mkdir(parents=True)
        (job / "config.yaml").write_text(yaml.safe_dump({"experiment_name": experiment, "seed": seed}))
        (job / "report" / "summary.json").write_text(json.dumps({"policy": {"sharpe": sharpe, "return": 0.01}}))
    (stamp / "optimization_results.yaml").write_text("name: optuna\n")  # a sweeper's file is not a run
    runs = load_runs([tmp_path / "runs"])
    assert sorted((r.experiment, r.seed) for r in runs) == [("gru_attn_ppo", 0), ("gru_attn_ppo", 1), ("mlp_ppo", 0)]
    table = compare_table(runs).set_index("experiment")
    assert table.loc["gru_attn_ppo", "n"] == 2 and table.loc["gru_attn_ppo", "sharpe_mean"] == pytest.approx(1.5)


@pytest.mark.slow
def test_multirun_two_seeds_then_test_and_compare(run_cli, compose_cfg, tmp_path):
    proc = run_cli("fit", "-m", *TINY, "seed=0,1", "algo.total_env_steps=128")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "runs" / "multirun").iterdir()
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    assert [j.name for j in jobs] == ["0_gru_attn_ppo_seed0", "1_gru_attn_ppo_seed1"]
    assert [p.resolve() for p in _printed_run_dirs(proc.stdout, tmp_path / "runs")] == [j.resolve() for j in jobs]
    for job in jobs:
        assert (job / "checkpoints" / "last.ckpt").is_file() and (job / "metrics.csv").is_file()
        assert (job / "config.yaml").is_file() and (job / "meta.json").is_file()

    # `test` on each job (in-process: the function the CLI's test command calls), then compare the sweep dir
    from kpremia.evaluate import evaluate_checkpoint

    for job in jobs:
        ckpt = str(job / "checkpoints" / "last.ckpt")
        evaluate_checkpoint(ckpt, split="test", cli_cfg=compose_cfg(f"ckpt={ckpt}", "eval.plots=false"),
                            overrides=["eval.plots=false"])
    runs = load_runs([sweep_dir])
    assert sorted((r.experiment, r.seed) for r in runs) == [("gru_attn_ppo", 0), ("gru_attn_ppo", 1)]
    policy = compare_table(runs).query("trader == 'policy'").iloc[0]
    assert policy["n"] == 2 and policy["seeds"] == "0 1"


@pytest.mark.slow
def test_optuna_search_two_trials(run_cli, tmp_path):
    proc = run_cli("fit", "-m", "hparams_search=ppo_optuna", "hydra.sweeper.n_trials=2", *TINY_NO_ENCODER,
                   "encoder=gru_attn", "algo.total_env_steps=128")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "runs" / "multirun").iterdir()
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna"
    # searched: the config's params except algo.update_epochs, which TINY fixes on the command line
    assert set(results["best_params"]) == {"algo.lr", "algo.clip_epsilon", "algo.entropy_coef", "encoder.hidden_dim"}
    assert isinstance(results["best_value"], float)
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    assert len(jobs) == 2 and all((j / "checkpoints" / "last.ckpt").is_file() for j in jobs)
    # each trial's config holds the sampled values
    lrs = {yaml.safe_load((j / "config.yaml").read_text())["algo"]["lr"] for j in jobs}
    assert len(lrs) == 2
    assert "setup plugin alembic" not in proc.stdout  # optuna's alembic import noise is silenced

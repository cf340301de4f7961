"""Hydra multirun and the Optuna search through the real CLI, and their output fed to ``compare``.

Subprocess runs cost ~15 s of imports each on top of the tiny fits, so the CLI runs
are marked slow; the fast test checks compare's discovery on the multirun layout.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kpremia.run.compare import compare_table, load_runs

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
def test_multirun_then_one_test_command_and_compare_with_its_chart(run_cli, tmp_path):
    """A 4-job multirun (2 encoders x 2 seeds), `test <sweep dir>` once, then `compare` writes its chart."""
    proc = run_cli("fit", "-m", *TINY_NO_ENCODER, "encoder=mlp,lstm", "seed=0,1", "algo.total_env_steps=128")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "runs" / "multirun").iterdir()
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))  # .jobs: records
    # the run names say which encoder replaced the experiment's (gru_attn_ppo's own is gru_attn)
    assert [j.name for j in jobs] == ["0_gru_attn_ppo+mlp_seed0", "1_gru_attn_ppo+mlp_seed1",
                                      "2_gru_attn_ppo+lstm_seed0", "3_gru_attn_ppo+lstm_seed1"]
    assert [p.resolve() for p in _printed_run_dirs(proc.stdout, tmp_path / "runs")] == [j.resolve() for j in jobs]
    for job in jobs:
        assert (job / "checkpoints" / "last.ckpt").is_file() and (job / "metrics.csv").is_file()
        assert (job / "config.yaml").is_file() and (job / "meta.json").is_file()

    tested = run_cli("test", str(sweep_dir), "eval.plots=false", "eval.test_markets=1")
    assert tested.returncode == 0, tested.stderr[-3000:]
    lines = [ln for ln in tested.stdout.splitlines() if ln.startswith("[")]
    assert len([ln for ln in lines if "policy" in ln and "band rule" in ln]) == 4, tested.stdout
    assert all(len(list(job.glob("report/*/synthetic-seed*/test/summary.json"))) == 2 for job in jobs)
    assert f"python -m kpremia compare {sweep_dir}" in tested.stdout

    compared = run_cli("compare", str(sweep_dir))
    assert compared.returncode == 0, compared.stderr[-3000:]
    assert (sweep_dir / "compare.png").stat().st_size > 10_000
    runs = load_runs([sweep_dir])
    table = compare_table(runs).query("trader == 'policy'").set_index("experiment")
    # 2 seeds x (own test split + 1 unseen draw)
    assert table.loc["gru_attn_ppo+mlp", "n"] == 4 and table.loc["gru_attn_ppo+mlp", "seeds"] == "0 1"
    assert table.loc["gru_attn_ppo+lstm", "n"] == 4


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
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(jobs) == 2 and all((j / "checkpoints" / "last.ckpt").is_file() for j in jobs)
    # each trial's config holds the sampled values
    lrs = {yaml.safe_load((j / "config.yaml").read_text())["algo"]["lr"] for j in jobs}
    assert len(lrs) == 2
    assert "setup plugin alembic" not in proc.stdout  # optuna's alembic import noise is silenced

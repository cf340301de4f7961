"""scripts/results.sh: budgets and the output folder from its arguments, KPREMIA_RUNS_DIR honoured,
docs/results.md written only with --write-docs, one run at a time, resumable."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "results.sh"
TINY = ["data.days=40", "env.n_envs=8", "algo.n_steps=16", "algo.update_epochs=2", "algo.n_minibatches=2",
        "algo.rollouts_per_epoch=1"]


def results_sh(*args: str, runs_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "KPREMIA_RUNS_DIR": str(runs_dir), "KPREMIA_PROGRESS": "lines",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=900)


def commands(proc: subprocess.CompletedProcess) -> list[str]:
    return [line[2:] for line in proc.stdout.splitlines() if line.startswith("+ ")]


def test_dry_run_takes_budgets_and_folders_from_its_arguments(tmp_path: Path) -> None:
    proc = results_sh("--dry-run", "--table", "gru_attn_ppo", "--table", "mlp_ppo:4096", "--seeds", "0 1",
                      "--markets", "1", "--levers", "0", runs_dir=tmp_path / "runs")
    assert proc.returncode == 0, proc.stderr
    run = commands(proc)
    out = tmp_path / "runs" / "results"  # $KPREMIA_RUNS_DIR/results
    assert run[0] == f"python -m kpremia fit experiment=gru_attn_ppo seed=0 hydra.run.dir={out}/gru_attn_ppo/seed0"
    assert f"python -m kpremia fit experiment=mlp_ppo algo.total_env_steps=4096 seed=1 " \
           f"hydra.run.dir={out}/mlp_ppo_4096/seed1" in run
    assert f"python -m kpremia test ckpt={out}/mlp_ppo_4096/seed1 eval.test_markets=1" in run
    assert sum(c.startswith("python -m kpremia fit") for c in run) == 4  # 2 tables x 2 seeds, no levers
    assert run[-1].startswith("python scripts/results.py") and f"--out {out}/results.md" in run[-1]
    assert "docs/results.md" not in run[-1]
    other = results_sh("--dry-run", "--out", str(tmp_path / "mine"), "--write-docs", "--seeds", "3",
                       "--levers", "1024", runs_dir=tmp_path / "runs")
    run = commands(other)
    assert any(f"hydra.run.dir={tmp_path}/mine/gru_attn_ppo/seed3" in c for c in run)
    assert any("algo.total_env_steps=12288" in c and "levers/default_long" in c for c in run)
    assert "--out docs/results.md" in run[-1]
    bad = results_sh("--levers", "lots", runs_dir=tmp_path / "runs")
    assert bad.returncode == 2 and "error: --levers takes a number" in bad.stderr


def test_a_small_table_runs_end_to_end_and_leaves_docs_alone(tmp_path: Path) -> None:
    docs_page = ROOT / "docs" / "results.md"
    before = hashlib.sha256(docs_page.read_bytes()).hexdigest()
    args = ("--table", "mlp_ppo:256", "--seeds", "0", "--markets", "1", "--levers", "0", "--", *TINY)
    proc = results_sh(*args, runs_dir=tmp_path / "runs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "runs" / "results" / "mlp_ppo_256" / "seed0"
    (best,) = (run_dir / "report").glob("best*")
    assert (best / "synthetic-seed0" / "test" / "summary.json").is_file()
    assert (best / "synthetic-seed1000000" / "test" / "summary.json").is_file()
    page = (tmp_path / "runs" / "results" / "results.md").read_text()
    assert "## mlp_ppo, 256 decisions" in page and "| **policy** |" in page and "data seeds 1000000" in page
    assert "**mlp_ppo, 256 decisions** is " in page and "the band rule" in page and "(n = 2)" in page
    assert (tmp_path / "runs" / "results" / "img" / "results_levers.png").is_file()
    assert hashlib.sha256(docs_page.read_bytes()).hexdigest() == before
    again = results_sh("--dry-run", *args, runs_dir=tmp_path / "runs")  # a rerun redoes only the page
    assert [c.split()[1] for c in commands(again)] == ["scripts/results.py"]

"""scripts/model_based_ceiling.py: the paired table over draws, its CSV, and one-line refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "model_based_ceiling.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600, env={"PYTHONPATH": str(ROOT), "PATH": str(Path(sys.executable).parent)})


@pytest.mark.slow
def test_prints_the_paired_table_and_writes_the_draws(tmp_path: Path) -> None:
    out = tmp_path / "draws.csv"
    done = run("--draws", "2", "--days", "40", "--no-oracle", "--csv", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    draws = pd.read_csv(out, index_col="seed")
    assert list(draws.index) == [10_000, 10_001]
    assert {"premium_threshold", "model_based", "model_based_knows_state"} <= set(draws.columns)
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("| ")}
    diff = 100 * (draws["model_based"] - draws["premium_threshold"]).mean()
    assert f"{100 * draws['model_based'].mean():+.2f} %" in rows["model-based: filter + DP (causal)"]
    assert f"{diff:+.2f} [" in rows["model-based: filter + DP (causal)"]


@pytest.mark.parametrize(("args", "problem"), [(("--draws", "1"), "--draws must be at least 2"),
                                               (("--days", "10"), "--days 10 leaves splits too short")])
def test_refuses_bad_arguments_in_one_line(args: tuple[str, ...], problem: str) -> None:
    done = run(*args)
    assert done.returncode == 2 and problem in done.stderr and done.stderr.count("\n") == 1

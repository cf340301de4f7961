"""compare: mean ± std over seeds per experiment, from run dirs and multirun dirs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from kpremia.errors import UserError
from kpremia.eval.compare import compare_main, load_runs


def metrics(ret: float, sharpe: float) -> dict[str, float]:
    return {"return": ret, "sharpe": sharpe, "sortino": 2 * sharpe, "max_drawdown": 0.1, "turnover": 4.0,
            "hit_rate": 0.5, "n_trades": 4.0, "fees_krw": 1000.0, "final_value_krw": 1e6 * (1 + ret)}


def fake_run(run_dir: Path, *, policy_return: float, sharpe: float, seed: int | None, experiment: str | None,
             config: str = "config.yaml") -> Path:
    summary = {"policy": metrics(policy_return, sharpe),
               "baselines": {"cash": metrics(0.0, 0.0), "oracle": metrics(2.0, 50.0)},
               "oracle_capture": policy_return / 2.0, "split": "test"}
    (run_dir / "report").mkdir(parents=True)
    (run_dir / "report" / "summary.json").write_text(json.dumps(summary))
    if experiment is not None:
        cfg_path = run_dir / config
        cfg_path.parent.mkdir(parents=True, exist_ok=True)
        cfg_path.write_text(f"experiment_name: {experiment}\nseed: {seed}\nenv:\n  fee: 0.001\n")
    return run_dir


def test_two_run_dirs_mean_and_std(tmp_path: Path, capsys) -> None:
    a = fake_run(tmp_path / "runs" / "2025-01-01_00-00-00_gru", policy_return=0.10, sharpe=1.0, seed=0,
                 experiment="gru")
    b = fake_run(tmp_path / "runs" / "2025-01-01_01-00-00_gru", policy_return=0.20, sharpe=3.0, seed=1,
                 experiment="gru")
    assert compare_main([str(a), str(b)]) == 0
    out = tmp_path / "runs"
    table = pd.read_csv(out / "compare.csv")
    policy = table[table["trader"] == "policy"].iloc[0]
    assert policy["experiment"] == "gru" and policy["n"] == 2 and policy["seeds"] == "0 1"
    assert policy["return_mean"] == pytest.approx(0.15)
    assert policy["return_std"] == pytest.approx(0.0707106781, rel=1e-6)  # sample std of 0.10, 0.20
    assert policy["sharpe_mean"] == pytest.approx(2.0) and policy["sharpe_std"] == pytest.approx(2 ** 0.5)
    assert policy["oracle_capture_mean"] == pytest.approx(0.075)
    assert table["trader"].tolist() == ["policy", "cash", "oracle"]
    markdown = (out / "compare.md").read_text()
    assert "| gru | policy | 2 | 15.00% ± 7.07% | 2.000 ± 1.414 |" in markdown
    assert markdown in capsys.readouterr().out


def test_multirun_dir_groups_by_experiment(tmp_path: Path) -> None:
    multi = tmp_path / "multirun" / "2025-01-01_00-00-00_sweep"
    for i, (exp, seed, ret) in enumerate([("lstm", 0, 0.1), ("lstm", 1, 0.3), ("mlp", 0, -0.1)]):
        fake_run(multi / f"{i}_{exp}_seed{seed}", policy_return=ret, sharpe=1.0, seed=seed, experiment=exp,
                 config=".hydra/config.yaml")
    fake_run(multi / "3_mlp_seed7", policy_return=0.1, sharpe=1.0, seed=None, experiment=None)  # no config
    runs = load_runs([multi])
    assert sorted((r.experiment, r.seed) for r in runs) == [("lstm", 0), ("lstm", 1), ("mlp", 0), ("mlp", 7)]
    out = tmp_path / "cmp"
    assert compare_main([str(multi), "--out", str(out)]) == 0
    table = pd.read_csv(out / "compare.csv").set_index(["experiment", "trader"])
    assert table.loc[("lstm", "policy"), "return_mean"] == pytest.approx(0.2)
    assert table.loc[("mlp", "policy"), "n"] == 2 and table.loc[("mlp", "policy"), "return_mean"] == pytest.approx(0.0)
    assert table.loc[("lstm", "cash"), "return_std"] == 0.0


def test_single_run_has_no_std(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "r", policy_return=0.1, sharpe=1.0, seed=0, experiment="x")
    assert compare_main([str(run)]) == 0
    assert "| x | policy | 1 | 10.00% | 1.000 |" in (run / "compare.md").read_text()


def test_path_without_runs_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no runs under .*report/summary.json"):
        compare_main([str(tmp_path / "empty")])
    with pytest.raises(UserError, match="does not exist"):
        compare_main([str(tmp_path / "missing")])

"""compare: mean ± std over seeds per experiment, from run dirs and multirun dirs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from kpremia.core.errors import UserError
from kpremia.run.compare import compare_main, load_runs


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
    lead, _, rest = markdown.partition("\n## All metrics")
    assert lead in capsys.readouterr().out and rest  # stdout leads; every metric is in the file


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
    with pytest.raises(UserError, match="no runs under .*report/.../summary.json"):
        compare_main([str(tmp_path / "empty")])
    with pytest.raises(UserError, match="does not exist"):
        compare_main([str(tmp_path / "missing")])


def setting_run(root: Path, name: str, *, ret: float, seed: int, fee: float = 0.001,
                period: tuple[str, str] = ("2025-09-13 00:00:00+00:00", "2025-12-31 23:45:00+00:00"),
                manifest: dict | None = None) -> Path:
    run = fake_run(root / name, policy_return=ret, sharpe=1.0, seed=seed, experiment="gru_attn_ppo")
    summary = json.loads((run / "report" / "summary.json").read_text())
    summary.update({"period": list(period), "fee_rate": fee})
    (run / "report" / "summary.json").write_text(json.dumps(summary))
    manifest = manifest or {"source": "synthetic", "synthetic": True, "preset": "default", "seed": seed,
                            "params": {"days": 730.0, "start": "2024-01-01"}, "premium_basis": "usdt"}
    (run / "data_manifest.json").write_text(json.dumps(manifest))
    return run


def test_seeds_of_one_setting_average_without_a_setting_column(tmp_path: Path) -> None:
    for seed, ret in ((0, 0.1), (1, 0.3)):
        setting_run(tmp_path / "runs", f"s{seed}", ret=ret, seed=seed)  # synthetic seeds differ: one setting
    assert compare_main([str(tmp_path / "runs")]) == 0
    table = pd.read_csv(tmp_path / "runs" / "compare.csv")
    assert "setting" not in table and table.loc[0, "n"] == 2 and table.loc[0, "return_mean"] == pytest.approx(0.2)
    assert "do not share" not in (tmp_path / "runs" / "compare.md").read_text()


def test_runs_with_different_fee_period_or_data_are_never_averaged(tmp_path: Path, capsys) -> None:
    root = tmp_path / "runs"
    setting_run(root, "a0", ret=0.10, seed=0)
    setting_run(root, "a1", ret=0.30, seed=1)
    setting_run(root, "fee", ret=0.50, seed=2, fee=0.0005)
    setting_run(root, "period", ret=0.70, seed=3, period=("2025-01-01 00:00:00+00:00", "2025-03-31 23:45:00+00:00"))
    setting_run(root, "file", ret=0.90, seed=4, manifest={"source": "csv", "synthetic": False, "path": "/d/bars.csv",
                                                          "sha256": "ab" * 32, "premium_basis": "usdt"})
    failed = setting_run(root, "failed", ret=-0.5, seed=5)
    (failed / "failed.json").write_text(json.dumps({"error": "CUDA out of memory"}))
    assert compare_main([str(root)]) == 0
    table = pd.read_csv(root / "compare.csv")
    policy = table[table["trader"] == "policy"].set_index("setting")
    assert len(policy) == 5  # the two seeds of one setting average; every other run stands alone
    assert sorted(policy["n"]) == [1, 1, 1, 1, 2]
    assert policy.loc[policy["n"] == 2, "return_mean"].item() == pytest.approx(0.2)
    markdown = (root / "compare.md").read_text()
    assert "\n| setting | experiment | trader | n |" in markdown
    lead = markdown.partition("\n## All metrics")[0]
    assert sum(line.startswith("| ") for line in lead.splitlines()) == 1 + 5  # header + one row per setting
    assert "never averaged across settings" in markdown
    assert "fee 0.05 %" in markdown and "fee 0.1 %" in markdown
    assert "test 2025-01-01 00:00..2025-03-31 23:45" in markdown
    assert "bars.csv (abababababab)" in markdown
    assert "fit FAILED (CUDA out of memory)" in markdown
    assert lead in capsys.readouterr().out


def test_data_identity_names_what_a_run_saw() -> None:
    from kpremia.run.compare import data_identity

    synthetic = {"source": "synthetic", "synthetic": True, "preset": "default", "params": {"days": 730.0}}
    assert data_identity({**synthetic, "seed": 0}) == data_identity({**synthetic, "seed": 1})
    assert data_identity(synthetic) != data_identity({**synthetic, "params": {"days": 90.0}})
    assert data_identity({"source": "ccxt", "exchange": "upbit", "symbol": "USDT/KRW", "premium_basis": "btc",
                          "first_bar": "2024-06-01T00:00", "last_bar": "2025-10-31T23:45"}) == \
        "upbit USDT/KRW 2024-06-01..2025-10-31, premium btc"
    assert data_identity(None) is None
    # one seed, two bar sizes: two data sets (compare never averages a 1h run with a 15m one)
    assert data_identity({**synthetic, "timeframe": "15m"}) == data_identity(synthetic)
    assert data_identity({**synthetic, "timeframe": "1h"}) == data_identity(synthetic) + ", 1h bars"


def test_runs_that_share_a_name_but_not_what_ran_are_labelled_apart_never_averaged(tmp_path: Path) -> None:
    """The encoder guide's old `experiment=gru_attn_ppo encoder=my_tcn` run was named gru_attn_ppo."""
    import yaml

    root = tmp_path / "runs"
    for name, encoder, seed, ret in (("a", "gru_attn", 0, 0.1), ("b", "gru_attn", 1, 0.3), ("c", "my_tcn", 0, -0.2)):
        run = fake_run(root / name, policy_return=ret, sharpe=1.0, seed=seed, experiment=None)
        cfg = {"experiment_name": "gru_attn_ppo", "seed": seed, "encoder": {"name": encoder, "hidden_dim": 64},
               "algo": {"name": "ppo"}, "data": {"name": "synthetic", "seed": seed},
               "trainer": {"devices": seed + 1}, "paths": {"runs_dir": f"/somewhere/{seed}"}}  # how, not what
        (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert compare_main([str(root)]) == 0
    policy = pd.read_csv(root / "compare.csv").query("trader == 'policy'").set_index("experiment")
    assert policy.loc["gru_attn_ppo [encoder.name=gru_attn]", "n"] == 2  # seeds, devices and paths differ
    assert policy.loc["gru_attn_ppo [encoder.name=gru_attn]", "return_mean"] == pytest.approx(0.2)
    assert policy.loc["gru_attn_ppo [encoder.name=my_tcn]", "n"] == 1


def test_compare_draws_its_chart_unless_asked_not_to(tmp_path: Path) -> None:
    from kpremia.run.compare import market_records

    for seed, ret in ((0, 0.1), (1, 0.3)):
        fake_run(tmp_path / "runs" / f"r{seed}", policy_return=ret, sharpe=1.0, seed=seed, experiment="gru")
    records = market_records(load_runs([tmp_path / "runs"]))
    assert sorted(records["policy_return"]) == [0.1, 0.3]
    pd.DataFrame({"env_steps": [512, 1024], "val/return": [0.01, 0.02], "val/band_return": [0.015, 0.015]}).to_csv(
        tmp_path / "runs" / "r0" / "metrics.csv", index=False)  # one run logged a validation curve
    assert compare_main([str(tmp_path / "runs")]) == 0
    png = (tmp_path / "runs" / "compare.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert (tmp_path / "runs" / "compare_learning.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert compare_main([str(tmp_path / "runs"), "--out", str(tmp_path / "plain"), "--no-plot"]) == 0
    assert not (tmp_path / "plain" / "compare.png").exists() and (tmp_path / "plain" / "compare.md").is_file()

"""compare groups by what ran: an experiment run and a base-config sweep job with the same encoder stay apart."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from kpremia.core.compose import compose_config
from kpremia.core.identity import identity_digest, what_ran
from kpremia.run.compare import compare_main


def _summary(ret: float, band: float, data_seed: int, market: str) -> dict:
    def metrics(r: float) -> dict:
        return {"return": r, "sharpe": 1.0, "max_drawdown": 0.05, "n_trades": 6.0}

    return {"policy": metrics(ret), "baselines": {"premium_threshold": metrics(band), "buy_and_hold": metrics(0.0)},
            "split": "test", "checkpoint_name": "best-epoch001", "data_seed": data_seed, "market": market,
            "fee_rate": 0.001, "data": "synthetic default (params 1234abcd)"}


def _run(root: Path, cfg: dict, returns: list[float]) -> Path:
    """A run directory as fit + test leave it: config.yaml and one report per market."""
    run = root / f"{cfg['experiment_name']}_seed{cfg['seed']}"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    for j, ret in enumerate(returns):
        seed = cfg["seed"] if j == 0 else 1_000_000 + j - 1
        out = run / "report" / "best-epoch001" / f"synthetic-seed{seed}" / "test"
        out.mkdir(parents=True)
        market = "own test split" if j == 0 else f"unseen market {j} of {len(returns) - 1}"
        (out / "summary.json").write_text(json.dumps(_summary(ret, 0.01, seed, market)))
    return run


def test_an_experiment_and_a_base_config_sweep_job_with_its_encoder_are_kept_apart(tmp_path: Path, capsys) -> None:
    # `fit experiment=gru_attn_ppo debug=fast` and the sweep `fit -m encoder=gru_attn,lstm seed=0,1 debug=fast`
    experiment = compose_config(["experiment=gru_attn_ppo", "debug=fast"])
    sweep = [compose_config([f"encoder=gru_attn", f"seed={s}", "debug=fast"]) for s in (0, 1)]
    assert experiment["experiment_name"] == "gru_attn_ppo"
    assert [c["experiment_name"] for c in sweep] == ["gru_attn+ppo", "gru_attn+ppo"]  # not the experiment's name
    assert identity_digest(sweep[0]) == identity_digest(sweep[1]) != identity_digest(experiment)
    differing = {k for k, v in what_ran(experiment) if dict(what_ran(sweep[0])).get(k) != v}
    assert {"env.decision_every", "env.reward"} <= differing

    root = tmp_path / "runs"
    _run(root, experiment, [0.05, 0.03, 0.04])
    for cfg, rets in zip(sweep, ([0.00, -0.01, 0.02], [0.01, 0.00, -0.02]), strict=True):
        _run(root, cfg, rets)
    assert compare_main([str(root), "--no-plot"]) == 0
    out = capsys.readouterr().out
    lead = [line for line in out.splitlines() if line.startswith("| gru_attn")]
    assert len(lead) == 2, out
    by_group = {line.split(" | ")[0].strip("| "): line for line in lead}
    assert set(by_group) == {"gru_attn_ppo", "gru_attn+ppo"}
    assert by_group["gru_attn_ppo"].endswith("| 1 × 3 |") and by_group["gru_attn+ppo"].endswith("| 2 × 3 |")
    assert "more]" not in out  # the labels need no "+37 more": the names already differ
    assert "What differs between the groups" in out and "env.decision_every=" in out
    # between the two groups, paired on the markets both saw (seed 0: its own split and two draws)
    assert "* gru_attn+ppo − gru_attn_ppo on the same 3 markets: mean -3.67% [" in out
    markets = pd.read_csv(root / "compare_markets.csv")
    assert len(markets) == 9 and sorted(markets["group"].unique()) == ["gru_attn+ppo", "gru_attn_ppo"]


def test_runs_named_alike_that_ran_differently_are_labelled_by_the_few_keys_that_differ(tmp_path: Path,
                                                                                       capsys) -> None:
    # a sweep told to borrow the experiment's name (experiment_name=${encoder.name}_ppo) still does not join it
    experiment = compose_config(["experiment=gru_attn_ppo", "debug=fast"])
    borrowed = compose_config(["encoder=gru_attn", "debug=fast", "experiment_name=gru_attn_ppo"])
    root = tmp_path / "runs"
    _run(root / "a", experiment, [0.05, 0.03])
    _run(root / "b", borrowed, [0.00, -0.01])
    assert compare_main([str(root), "--no-plot"]) == 0
    lead = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| gru_attn_ppo")]
    assert len(lead) == 2
    labels = [line.split(" | ")[0] for line in lead]
    assert all(label.count("=") <= 3 for label in labels) and labels[0] != labels[1]
    assert all(label.startswith("| gru_attn_ppo [env.reward=") for label in labels), labels


def test_a_rules_only_backtest_is_its_own_kind_of_row(tmp_path: Path, capsys) -> None:
    cfg = compose_config(["encoder=gru_attn", "debug=fast"])
    root = tmp_path / "runs"
    _run(root, cfg, [0.02, 0.01])
    backtest = root / "2025-01-01_00-00-00_backtest"
    (backtest / "report").mkdir(parents=True)
    (backtest / "config.yaml").write_text(yaml.safe_dump(cfg))  # the base config: named gru_attn+ppo
    summary = _summary(0.0, 0.015, 0, "own test split")
    del summary["policy"], summary["checkpoint_name"]
    (backtest / "report" / "summary.json").write_text(json.dumps({**summary, "command": "backtest"}))
    assert compare_main([str(root), "--no-plot"]) == 0
    out = capsys.readouterr().out
    (rules,) = [line for line in out.splitlines() if line.startswith("| ") and "rules only" in line]
    assert "gru_attn" not in rules and "+1.50%" in rules
    (policy,) = [line for line in out.splitlines() if line.startswith("| gru_attn+ppo")]
    assert "| 1 × 2 |" in policy

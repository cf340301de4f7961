"""User mistakes end in one line naming the fix, exit code 2, no traceback."""

from __future__ import annotations

import pytest


def assert_one_line_error(proc, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    err_lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(err_lines) == 1, proc.stderr
    assert err_lines[0].startswith("error: ")
    assert "Traceback" not in proc.stderr + proc.stdout
    for needle in needles:
        assert needle in err_lines[0], err_lines[0]


@pytest.mark.parametrize(
    "args,needles",
    [
        (["fit", "algo.lrr=0.1"], ["algo.lrr"]),
        (["fit", "encoder=grux"], ["grux"]),
        (["fit", "env.n_envs=0"], ["env.n_envs", ">= 1"]),
        (["fit", "env.fee_rate=0.5"], ["env.fee_rate"]),
        (["fit", "env.action_scheme=buy_everything"], ["buy_everything", "signal"]),
        (["fit", "data=csv", "data.path=/nonexistent/prices.csv"], ["/nonexistent/prices.csv"]),
        (["fit", "seed=abc"], ["seed"]),
        (["test", "ckpt=/nonexistent/last.ckpt"], ["/nonexistent/last.ckpt"]),
        (["test"], ["ckpt="]),
        (["frobnicate"], ["frobnicate", "fit"]),
        (["data"], ["data fetch"]),
    ],
)
def test_bad_input_is_one_line_exit_2(run_cli, args, needles):
    assert_one_line_error(run_cli(*args, timeout=120), *needles)


def test_help_and_cfg_job(run_cli):
    usage = run_cli("--help")
    assert usage.returncode == 0 and "fit" in usage.stdout
    helped = run_cli("fit", "--help")
    assert helped.returncode == 0 and "encoder" in helped.stdout
    job = run_cli("fit", "--cfg", "job", "experiment=gru_attn_ppo", "algo.lr=0.001")
    assert job.returncode == 0, job.stderr
    assert "lr: 0.001" in job.stdout and "gru_attn" in job.stdout


def test_list_shows_every_registry(run_cli):
    proc = run_cli("list", timeout=120)
    assert proc.returncode == 0, proc.stderr
    for needle in ("encoders:", "gru_attn", "lstm", "dnn_lstm", "mlp", "parameters", "algos:", "ppo",
                   "action_schemes:", "signal", "hold_buy_sell", "target_weight", "data_sources:", "synthetic",
                   "csv", "parquet"):
        assert needle in proc.stdout

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


@pytest.mark.parametrize("args", [["--help"], ["list"], ["fit", "encoder=grux"], ["fit", "env.fee_rate=0.5"],
                                  ["fit", "algo.gamma=0"], ["live", "live.risk.max_daily_loss=2"]])
def test_help_list_and_a_mistake_load_no_training_stack(args):
    """What a command needs is imported when it runs: answering these loads neither Lightning, FastAPI nor ccxt."""
    import subprocess
    import sys

    code = ("import sys\nfrom kpremia.app.cli import main\ntry:\n    rc = main(sys.argv[1:])\n"
            "except SystemExit as exc:\n    rc = exc.code\n"
            "print(rc, sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'fastapi', 'uvicorn', 'ccxt'}))")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    rc, heavy = proc.stdout.strip().splitlines()[-1].split(" ", 1)
    assert heavy == "[]", (args, heavy)
    assert int(rc) == (0 if args[0] in ("--help", "list") else 2), proc.stderr

"""More mistakes a new user makes: each ends in one line naming the fix, exit code 2, and no bare run dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kpremia.core.errors import UserError
from kpremia.run import training
from kpremia.run.run_files import failure_of, mark_failed

from .test_cli_errors import assert_one_line_error

REPO = Path(__file__).resolve().parents[2]
TINY = ["experiment=mlp_ppo", "data.days=40", "env.n_envs=8", "env.max_steps=100", "algo.n_steps=16",
        "algo.rollouts_per_epoch=1", "algo.update_epochs=1", "algo.n_minibatches=1", "algo.total_env_steps=128",
        "trainer.enable_progress_bar=false", "eval.plots=false"]


def run_dirs(tmp_path: Path) -> list[Path]:
    runs = tmp_path / "runs"
    return sorted(p for p in runs.iterdir()) if runs.is_dir() else []


@pytest.mark.parametrize(
    "args,needles",
    [
        (["test", f"ckpt={REPO / 'README.md'}"], ["README.md", "not a kpremia checkpoint"]),
        (["fit", "encoder.hidden_dim=-3"], ["encoder.hidden_dim=-3", ">= 1"]),
        (["fit", "algo.total_env_steps=10"], ["algo.total_env_steps=10", "one rollout", "8192"]),
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_no_run(run_cli, tmp_path, args, needles):
    assert_one_line_error(run_cli(*args, timeout=180), *needles)
    assert run_dirs(tmp_path) == []


@pytest.mark.parametrize(
    "overrides,needles",
    [
        (["encoder=dnn_lstm", "encoder.lstm_sizes=[64,0]"], ["encoder.lstm_sizes=[64, 0]", "list of whole numbers"]),
        (["encoder=mlp", "encoder.hidden_sizes=[]"], ["encoder.hidden_sizes"]),
        (["encoder.num_layers=0"], ["encoder.num_layers=0"]),
        (["encoder.hidden_dim=2.5"], ["encoder.hidden_dim=2.5"]),
        (["encoder.dropout=1.5"], ["encoder.dropout=1.5", "[0, 1)"]),
        (["experiment=mlp_dqn", "algo.total_env_steps=10"], ["algo.total_env_steps=10", "collect round", "256"]),
    ],
)
def test_config_checks_catch_sizes_and_budgets(compose_cfg, overrides, needles):
    from kpremia.app.config_checks import validate_config

    with pytest.raises(UserError) as caught:
        validate_config(compose_cfg(*overrides))
    for needle in needles:
        assert needle in str(caught.value)


def test_the_smallest_budgets_pass(compose_cfg):
    from kpremia.app.config_checks import validate_config

    validate_config(compose_cfg("algo.total_env_steps=8192"))  # exactly one rollout of 128 steps x 64 envs
    validate_config(compose_cfg("debug=fast"))
    validate_config(compose_cfg("experiment=mlp_dqn", "debug=fast"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_accelerator_without_a_gpu(run_cli, tmp_path):
    proc = run_cli("fit", "trainer.accelerator=gpu", timeout=180)
    assert_one_line_error(proc, "no CUDA GPU was found", "trainer.accelerator=cpu")
    assert run_dirs(tmp_path) == []
    assert_one_line_error(run_cli("fit", "trainer=gpu", timeout=180), "no CUDA GPU was found")


def test_a_data_error_after_hydra_started_leaves_no_run_dir(run_cli, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("time,open,high,low,close,volume,fx\nnot-a-time,1,1,1,1,1,1300\n")
    proc = run_cli("fit", "data=csv", f"data.path={bad}", timeout=300)
    assert_one_line_error(proc, str(bad), "not-a-time")
    assert run_dirs(tmp_path) == []


def test_mark_failed_removes_a_hydra_only_dir_and_marks_a_started_one(tmp_path):
    bare = tmp_path / "bare"
    (bare / ".hydra").mkdir(parents=True)
    (bare / "cli.log").write_text("log\n")
    assert mark_failed(bare, UserError("bad data")) is None
    assert not bare.exists()

    started = tmp_path / "started"
    (started / "checkpoints").mkdir(parents=True)
    (started / "cli.log").write_text("log\n")
    assert failure_of(started) is None
    assert mark_failed(started, RuntimeError("CUDA out of memory\n at step 3")) == started
    record = json.loads((started / "failed.json").read_text())
    assert record["error"] == "CUDA out of memory at step 3" and record["type"] == "RuntimeError"
    assert failure_of(started) == "CUDA out of memory at step 3"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="kpremia.configs", version_base="1.3"):
        cfg = OmegaConf.to_container(compose(config_name="config", overrides=TINY), resolve=True)
    result = training.fit(cfg, tmp_path_factory.mktemp("run"))
    return result["last_model_path"]


@pytest.mark.parametrize("preset", ["debug=fast", "hparams_search=ppo_optuna"])
def test_a_training_preset_at_test_time_is_refused_in_one_line(compose_cfg, tiny_checkpoint, preset):
    from kpremia.run.evaluate import evaluate_checkpoint

    with pytest.raises(UserError, match=f"`{preset}` cannot be applied"):
        evaluate_checkpoint(tiny_checkpoint, split="test", cli_cfg=compose_cfg(f"ckpt={tiny_checkpoint}", preset),
                            overrides=[f"ckpt={tiny_checkpoint}", preset])


def test_test_with_debug_fast_on_the_cli(run_cli, tiny_checkpoint):
    assert_one_line_error(run_cli("test", f"ckpt={tiny_checkpoint}", "debug=fast", timeout=300), "debug=fast")


def test_a_tested_run_records_its_fee_and_data_for_compare(compose_cfg, tiny_checkpoint):
    """`test` writes what `compare` checks before averaging runs: the fee and the data it tested on."""
    from kpremia.run.compare import assign_settings, load_runs
    from kpremia.run.evaluate import evaluate_checkpoint

    summary = evaluate_checkpoint(tiny_checkpoint, split="test", cli_cfg=compose_cfg(f"ckpt={tiny_checkpoint}",
                                                                                     "eval.plots=false"),
                                  overrides=["eval.plots=false"])
    assert summary["fee_rate"] == 0.001
    assert summary["data"].startswith("synthetic default (params ")
    run_dir = Path(tiny_checkpoint).parent.parent
    runs, legend = assign_settings(load_runs([run_dir]))
    assert dict(runs[0].facts)["data"] == summary["data"] and legend == []


def test_a_budget_between_rounds_is_rounded_up_with_a_line(compose_cfg, tmp_path, caplog):
    cfg = compose_cfg(*TINY, "algo.total_env_steps=200")  # rounds of 16 steps x 8 envs = 128 env steps
    with caplog.at_level("INFO", logger="kpremia.run.training"):
        result = training.fit(cfg, tmp_path / "run")
    assert result["env_steps"] == 256
    assert any("budget: 256 env steps = 2 round(s) of 128 env steps (algo.total_env_steps=200 rounded up to "
               "whole rounds)" in r.getMessage() for r in caplog.records)


def test_a_checkpoint_from_before_the_per_bar_names_is_refused_naming_the_release(run_cli, tiny_checkpoint, tmp_path):
    """A checkpoint whose saved config and spec use ``window_15m`` / ``price_15m`` (kpremia 0.1.0): one line, exit 2,
    naming the release that reads it, from ``test`` and from a resume alike; no shim reads it."""
    from kpremia.run.checkpoint import load_checkpoint

    saved = torch.load(tiny_checkpoint, map_location="cpu", weights_only=False)
    hparams = saved["hyper_parameters"]
    hparams["cfg"]["env"]["window_15m"] = hparams["cfg"]["env"].pop("window_bars")
    hparams["spec"]["shapes"]["price_15m"] = hparams["spec"]["shapes"].pop("price_bars")
    old = tmp_path / "old" / "checkpoints" / "last.ckpt"
    old.parent.mkdir(parents=True)
    torch.save(saved, old)
    needles = ("written by kpremia 0.1.0 before the per-bar names", "window_15m", "re-train it",
               "kpremia 0.1.0 (git 7133b19)")
    assert_one_line_error(run_cli("test", f"ckpt={old}", timeout=300), *needles)
    assert_one_line_error(run_cli("fit", f"ckpt={old}", timeout=300), *needles)
    with pytest.raises(UserError, match="before the per-bar names"):
        load_checkpoint(old)

"""logger=wandb (offline, disabled, online by key) and logger=tensorboard through a real fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kpremia.core.errors import UserError
from kpremia.run import training
from kpremia.run.loggers import build_logger, wandb_mode

from .conftest import TINY
from .wandb_records import read_offline_run


@pytest.mark.parametrize(("env", "offline_cfg", "key", "expected"), [
    ({}, None, False, "offline"),                               # fresh checkout: never needs a server
    ({}, None, True, "online"),                                 # WANDB_API_KEY set
    ({"WANDB_MODE": "offline"}, None, True, "offline"),
    ({"WANDB_MODE": "dryrun"}, None, False, "offline"),
    ({"WANDB_MODE": "online"}, None, False, "online"),
    ({"WANDB_MODE": "disabled"}, False, True, "disabled"),       # the off switch wins over everything
    ({"WANDB_MODE": "online"}, True, True, "offline"),           # explicit logger.offline=true
    ({}, False, False, "online"),                               # explicit logger.offline=false
])
def test_wandb_mode_precedence(monkeypatch, wandb_env, env, offline_cfg, key, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if key:
        monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode({"offline": offline_cfg}) == expected


def test_netrc_login_counts_as_a_key(monkeypatch, wandb_env, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert wandb_mode({"offline": None}) == "online"


def test_bad_wandb_mode_is_a_user_error(monkeypatch, wandb_env):
    monkeypatch.setenv("WANDB_MODE", "offlin")
    with pytest.raises(UserError, match="WANDB_MODE"):
        wandb_mode({})


def test_wandb_logger_writes_into_the_run_dir_and_groups_multirun_jobs(compose_cfg, wandb_env, tmp_path):
    cfg = compose_cfg("logger=wandb")
    job = tmp_path / "runs" / "multirun" / "2025-01-01_00-00-00_default" / "0_default_seed0"
    logger = build_logger(cfg, job)
    init = logger._wandb_init  # what wandb.init will get; the run itself is created lazily
    assert init["dir"] == str(job) and init["mode"] == "offline" and init["name"] == job.name
    assert init["group"] == "2025-01-01_00-00-00_default" and init["config"]["logger"]["name"] == "wandb"
    assert "anonymous" not in init
    single = build_logger(cfg, tmp_path / "runs" / "2025-01-01_00-00-00_default")._wandb_init
    assert single["group"] is None


def test_wandb_disabled_logs_nothing_and_writes_nothing(compose_cfg, wandb_env, monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    logger = build_logger(compose_cfg("logger=wandb", "logger.log_model=true"), run_dir)
    logger.log_hyperparams({"cfg": {}, "spec": {"a": 1}})
    logger.log_metrics({"val/sharpe": 1.0}, step=0)
    logger.finalize("success")
    assert list(run_dir.iterdir()) == []


def test_fit_with_wandb_offline_logs_config_metrics_best_score_and_checkpoint(compose_cfg, wandb_env, monkeypatch,
                                                                              tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    (tmp_path / "wandb_dir").mkdir()
    cfg = compose_cfg(*TINY, "logger=wandb", "logger.log_model=true", "tags=[tiny]")
    result = training.fit(cfg, tmp_path / "run")

    (offline,) = (tmp_path / "wandb_dir" / "wandb").glob("offline-run-*")
    run = read_offline_run(offline)
    assert run.name == "run" and run.project == "kpremia" and run.job_type == "fit" and run.tags == ["tiny"]
    # the resolved config, once (not again under "cfg"), plus the observation spec
    assert run.config["algo"]["lr"] == cfg["algo"]["lr"] and run.config["encoder"]["name"] == "mlp"
    assert "cfg" not in run.config and "spec" in run.config
    # metrics: rollout/train per iteration, validation per epoch
    logged = set().union(*run.history)
    assert {"train/approx_kl", "rollout/episode_return", "val/sharpe", "val/return", "trainer/global_step"} <= logged
    val = [h["val/sharpe"] for h in run.history if "val/sharpe" in h]
    assert len(val) == 2
    # the summary holds the best validation score: what fit returns and a wandb sweep optimises
    best = [h["val/excess_return"] for h in run.history if "val/excess_return" in h]
    assert run.summary["val/excess_return"] == pytest.approx(max(best)) == pytest.approx(result["best_score"])
    # log_model: checkpoints stored as artifacts of the offline run (uploaded by `wandb sync`)
    assert run.artifacts and all(a.startswith("model-") for a in run.artifacts)
    assert "exit" in run.record_types  # finished by finalize, not at interpreter exit
    # nothing wandb-related leaks into the run directory when WANDB_DIR is set
    assert not (tmp_path / "run" / "wandb").exists()
    import wandb

    assert wandb.run is None, "the run must be finished so the next multirun job starts its own"

    # `test` adds its report to the same run: test/* metrics in the summary, the plots as images
    from kpremia.run.evaluate import evaluate_checkpoint

    assert json.loads((tmp_path / "run" / "wandb_run.json").read_text())["id"] == run.run_id
    ckpt = str(tmp_path / "run" / "checkpoints" / "last.ckpt")
    summary = evaluate_checkpoint(ckpt, split="test", cli_cfg=compose_cfg(f"ckpt={ckpt}"), overrides=[])
    resumed = [read_offline_run(p) for p in (tmp_path / "wandb_dir" / "wandb").glob("offline-run-*")]
    (test_run,) = [r for r in resumed if "test/sharpe" in r.summary]
    assert test_run.run_id == run.run_id
    assert test_run.summary["test/sharpe"] == pytest.approx(summary["policy"]["sharpe"])
    images = {k.removesuffix("/_type") for h in test_run.history for k, v in h.items()
              if k.endswith("/_type") and v == "image-file"}
    assert images == {"test/equity", "test/premium", "test/position"}


def test_fit_with_tensorboard_writes_event_files(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY, "logger=tensorboard", "algo.total_env_steps=128")
    training.fit(cfg, tmp_path / "run")
    events = list(Path(tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert {"val/sharpe", "train/approx_kl"} <= set(acc.Tags()["scalars"])


@pytest.mark.slow
def test_two_ddp_spawn_fits_in_one_process_with_wandb(compose_cfg, wandb_env, monkeypatch, tmp_path):
    """A multirun's jobs share a process: each ddp_spawn fit gets its own finished run and returns its score.

    (Lightning would start the run in the launching process and never finish it there, so the
    second fit hung on it; under ddp_spawn it returns only the best checkpoint's path, and a
    module detached from its trainer, on which `fit` failed after training.)
    """
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    (tmp_path / "wandb_dir").mkdir()
    cfg = compose_cfg(*TINY, "logger=wandb", "trainer.strategy=ddp_spawn", "trainer.devices=2",
                      "algo.total_env_steps=512")
    from kpremia.app import commands

    # commands.run as the CLI calls it: it reads the module's trainer, which ddp_spawn leaves detached
    scores = [commands.run("fit", cfg, tmp_path / f"run{i}") for i in range(2)]
    assert wandb.run is None
    runs = [read_offline_run(p) for p in sorted((tmp_path / "wandb_dir" / "wandb").glob("offline-run-*"))]
    assert sorted(r.name for r in runs) == ["run0", "run1"]
    for run, score in zip(sorted(runs, key=lambda r: r.name), scores, strict=True):
        assert score is not None and run.summary["val/excess_return"] == pytest.approx(score)
        assert "exit" in run.record_types and run.config["trainer"]["strategy"] == "ddp_spawn"

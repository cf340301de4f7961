"""Threads chosen from the cores (recorded, reproducible at a count), debug=fast's epoch line, a finished resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kpremia.core.errors import UserError
from kpremia.core.threads import available_cores, resolve_threads

TINY = ["experiment=mlp_ppo", "data.days=40", "env.n_envs=8", "env.max_steps=100", "algo.n_steps=16",
        "algo.rollouts_per_epoch=1", "algo.update_epochs=2", "algo.n_minibatches=2", "algo.total_env_steps=256"]


def test_auto_threads_are_the_cores_shared_among_jobs_and_ranks():
    cores = available_cores()
    assert resolve_threads({"torch_threads": "auto"}) == cores
    assert resolve_threads({}) == cores
    assert resolve_threads({"torch_threads": "auto"}, jobs=cores) == 1
    assert resolve_threads({"torch_threads": "auto"}, jobs=10 * cores) == 1
    ddp = {"torch_threads": "auto", "trainer": {"strategy": "ddp", "devices": 2, "accelerator": "cpu"}}
    assert resolve_threads(ddp) == max(1, cores // 2)
    assert resolve_threads({"torch_threads": 3}) == 3 and resolve_threads({"torch_threads": None}) is None
    assert resolve_threads({"torch_threads": "auto"}, auto=1) == 1  # the live runner
    assert resolve_threads({"torch_threads": 2}, auto=1) == 2  # an explicit count is honoured


def test_the_default_is_auto_and_a_bad_setting_is_one_line(compose_cfg, monkeypatch):
    from kpremia.app.config_checks import validate_config

    monkeypatch.delenv("KPREMIA_TORCH_THREADS", raising=False)
    assert compose_cfg()["torch_threads"] == "auto"
    with pytest.raises(UserError, match="torch_threads=0 is invalid"):
        validate_config(compose_cfg("torch_threads=0"))


@pytest.mark.parametrize("launcher,expected", [("basic", "auto"), ("joblib", "share")])
def test_a_parallel_launcher_gives_each_job_its_share(launcher, expected, tmp_path: Path):
    """Under Hydra's real launcher configs: joblib with n_jobs=2 halves the cores for torch_threads=auto;
    the basic launcher (one job after another) leaves auto; a count given on the command line is kept."""
    if launcher == "joblib":
        pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from kpremia.core.job_resources import plan_job

    overrides = [f"hydra/launcher={launcher}"] + (["hydra.launcher.n_jobs=2"] if launcher == "joblib" else [])
    with initialize_config_module(config_module="kpremia.configs", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    hydra_launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    planned, claim = plan_job({"torch_threads": "auto"}, hydra_launcher, job_num=0, sweep_dir=tmp_path,
                              threads_given=False)
    assert claim is None
    assert planned["torch_threads"] == ("auto" if expected == "auto" else max(1, available_cores() // 2))
    kept, _ = plan_job({"torch_threads": 3}, hydra_launcher, job_num=0, sweep_dir=tmp_path, threads_given=True)
    assert kept["torch_threads"] == 3


@pytest.mark.slow  # three tiny fits in subprocesses
def test_threads_recorded_reproducible_epoch_line_and_finished_resume(run_cli, tmp_path: Path):
    runs = []
    for _ in range(2):
        proc = run_cli("fit", *TINY, "debug=fast", "torch_threads=2")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "epoch 1/2: 128 / 256 env steps; val return" in proc.stdout + proc.stderr  # debug=fast keeps it
        runs.append(Path(proc.stdout.strip().splitlines()[-1]))
    meta = json.loads((runs[0] / "meta.json").read_text())
    assert meta["torch_threads"] == 2 and meta["torch_threads_setting"] == 2
    assert meta["cpu_cores_available"] == available_cores()
    a, b = (torch.load(r / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
            for r in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # same seed, same threads: same run

    finished = run_cli("fit", f"ckpt={runs[0]}")
    assert finished.returncode == 0, finished.stderr[-2000:]
    (line,) = finished.stdout.strip().splitlines()
    assert line.startswith(f"run {runs[0]} already finished: 256 env steps trained")
    assert line.endswith(f"python -m kpremia fit ckpt={runs[0]} algo.total_env_steps=512")
    assert "Trainer" not in finished.stdout + finished.stderr  # nothing was built

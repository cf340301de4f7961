"""Trials side by side through Hydra's launcher plug-ins (joblib, submitit): each job's threads and
GPU, the per-job records, and real sweeps through the CLI (basic vs joblib: same weights per seed;
a failing trial listed as failed while the others complete; submitit's local executor end to end)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kpremia.core.errors import UserError
from kpremia.core.job_resources import (
    claim_device,
    device_order,
    pick_device,
    plan_job,
    threads_per_trial,
    trials_at_once,
)
from kpremia.run.sweep_record import exit_code, failure_lines, read_job_records, recorded_job, summarise

from .conftest import TINY

JOBLIB = {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 2}
LOCAL = {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher", "cpus_per_task": 3}
SLURM = {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", "cpus_per_task": None}
BASIC = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}


# --------------------------------------------------------------------------- each job's share of the machine


def test_threads_per_trial_split_the_cores_among_the_trials_at_once():
    assert trials_at_once(JOBLIB, cores=16) == 2 and threads_per_trial(JOBLIB, cores=16) == 8
    assert trials_at_once({**JOBLIB, "n_jobs": -1}, cores=16) == 16  # joblib: -1 is one per core
    assert trials_at_once({**JOBLIB, "n_jobs": -2}, cores=16) == 15  # all cores but one
    assert threads_per_trial({**JOBLIB, "n_jobs": -1}, cores=2) == 1
    assert threads_per_trial({**JOBLIB, "n_jobs": 4}, cores=2) == 1  # never 0 threads
    assert threads_per_trial(LOCAL, cores=16) == 3  # submitit: what it reserved per task
    assert threads_per_trial(SLURM, cores=64, env={"SLURM_CPUS_PER_TASK": "6"}) == 6
    assert threads_per_trial(SLURM, cores=64, env={}) == 1
    assert threads_per_trial(BASIC, cores=16) is None  # one trial at a time: torch_threads as configured


def test_each_job_starts_at_its_own_device_and_takes_the_next_free_one():
    assert device_order(5, 4) == [1, 2, 3, 0]
    assert [pick_device(j, 4) for j in range(6)] == [0, 1, 2, 3, 0, 1]
    # job 2 starts while jobs on devices 2 and 3 still run (job 0 ended early): it takes the freed device 0
    assert pick_device(2, 4, busy={1, 2, 3}) == 0
    assert pick_device(6, 4, busy={1, 2, 3}) == 0
    assert pick_device(3, 2, busy={0, 1}) == 1  # all busy: its own, shared


def test_device_claims_lock_a_device_until_released(tmp_path):
    first = claim_device(tmp_path, job_num=0, n_devices=2)
    second = claim_device(tmp_path, job_num=2, n_devices=2)  # its own (0) is held: the next one
    assert (first.index, second.index) == (0, 1)
    third = claim_device(tmp_path, job_num=1, n_devices=2)  # none free: shares its own, holds no lock
    assert third.index == 1 and third.handle is None
    first.release()
    assert claim_device(tmp_path, job_num=1, n_devices=2).index == 0


def test_plan_job_gives_a_gpu_job_its_device_and_keeps_threads_given_on_the_command_line(tmp_path):
    gpu_cfg = {"torch_threads": 1, "trainer": {"accelerator": "gpu", "devices": 1}}
    planned, claim = plan_job(gpu_cfg, JOBLIB, job_num=3, sweep_dir=tmp_path, threads_given=False, cores=8, n_gpus=4)
    assert planned["trainer"]["devices"] == [3] and planned["torch_threads"] == 4
    assert gpu_cfg["trainer"]["devices"] == 1  # the input is not changed
    claim.release()
    kept, none = plan_job({**gpu_cfg, "torch_threads": 6}, JOBLIB, job_num=1, sweep_dir=tmp_path, threads_given=True,
                          cores=8, n_gpus=1)
    assert none is None and kept["trainer"]["devices"] == 1 and kept["torch_threads"] == 6
    one_at_a_time, _ = plan_job(gpu_cfg, BASIC, job_num=3, sweep_dir=tmp_path, threads_given=False, cores=8, n_gpus=4)
    assert one_at_a_time == gpu_cfg  # the basic launcher: GPU 0 and torch_threads as configured
    ddp = {"trainer": {"accelerator": "gpu", "devices": 2}}  # a DDP trial keeps its devices
    assert plan_job(ddp, JOBLIB, job_num=0, sweep_dir=tmp_path, threads_given=False, cores=8,
                    n_gpus=4)[0]["trainer"]["devices"] == 2


# --------------------------------------------------------------------------- records


def test_a_failed_job_is_recorded_and_hands_back_no_value(tmp_path):
    sweep = tmp_path / "sweep"

    def bad() -> float:
        raise UserError("seed=-1 is invalid")

    seen = []
    assert recorded_job(lambda: 0.5, sweep_dir=sweep, output_dir=sweep / "0_a", job=0,
                        overrides=["debug=fast", "seed=0"]) == 0.5
    value = recorded_job(bad, sweep_dir=sweep, output_dir=sweep / "1_a", job=1, overrides=["debug=fast", "seed=-1"],
                         on_failure=seen.append)
    assert value is None and isinstance(seen[0], UserError)
    summary = summarise(sweep)
    assert (summary["completed"], summary["failed"]) == (1, 1) and exit_code(summary) == 2
    assert json.loads((sweep / "sweep.json").read_text()) == summary
    assert failure_lines(summary)[0] == "failed: job #1 (seed=-1): seed=-1 is invalid"  # the swept values only
    recorded_job(lambda: 1 / 0, sweep_dir=sweep, output_dir=sweep / "2_a", job=2, overrides=["debug=fast"])
    assert exit_code(summarise(sweep)) == 1  # a crash, not only a user mistake
    assert [r["job"] for r in read_job_records(sweep)] == [0, 1, 2]


def test_launcher_configs_compose(compose_cfg):
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="kpremia.configs", version_base="1.3"):
        for name, key, value in (("cores", "n_jobs", -1), ("local", "cpus_per_task", 1), ("slurm", "gpus_per_node", 1)):
            cfg = compose(config_name="config", overrides=[f"hydra/launcher={name}"], return_hydra_config=True)
            assert OmegaConf.to_container(cfg.hydra.launcher, resolve=True)[key] == value
        cfg = compose(config_name="config", overrides=["hydra/launcher=gpus"], return_hydra_config=True)
        assert cfg.hydra.launcher.n_jobs == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
        # the Optuna search asks as many trials at a time as the launcher runs
        cfg = compose(config_name="config", overrides=["hparams_search=ppo_optuna", "hydra/launcher=cores",
                                                       "hydra.launcher.n_jobs=3"], return_hydra_config=True)
        assert cfg.hydra.sweeper.n_jobs == 3
        cfg = compose(config_name="config", overrides=["hparams_search=ppo_optuna"], return_hydra_config=True)
        assert cfg.hydra.sweeper.n_jobs == 1


def test_gpus_launcher_without_a_gpu_trainer_is_refused_in_one_line(run_cli):
    proc = run_cli("fit", "-m", "seed=0,1", "hydra/launcher=gpus")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "hydra/launcher=gpus runs one trial per GPU: add trainer=gpu" in proc.stderr


def test_a_launcher_whose_plug_in_is_missing_names_the_extra(monkeypatch):
    """Without the plug-in (it is installed here, so its absence is simulated) one line says what to install."""
    import importlib.util

    from kpremia.app import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("hydra_plugins.") else real(name, *a))
    with pytest.raises(UserError, match=r'hydra/launcher=local needs the hydra-submitit-launcher plug-in: '
                                        r'pip install -c constraints.txt -e "\.\[launchers\]"'):
        cli._check_launcher(["seed=0,1", "hydra/launcher=local"], {})
    cli._check_launcher(["seed=0,1"], {})  # no launcher asked: nothing to check


# --------------------------------------------------------------------------- real sweeps


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def _sweep(run_cli, sweep_dir: Path, *extra: str):
    # torch_threads given: the basic and the joblib runs compute with the same thread count
    return run_cli("fit", "-m", *TINY, "algo.total_env_steps=128", "torch_threads=1", "seed=0,1,2,-1",
                   f"hydra.sweep.dir={sweep_dir}", *extra)


@pytest.mark.slow
def test_joblib_two_at_a_time_gives_the_basic_launchers_results_and_lists_the_failed_trial(run_cli, tmp_path):
    basic_dir, joblib_dir = tmp_path / "basic", tmp_path / "joblib"
    basic = _sweep(run_cli, basic_dir)
    parallel = _sweep(run_cli, joblib_dir, "hydra/launcher=cores", "hydra.launcher.n_jobs=2")
    assert "Joblib.Parallel(n_jobs=2" in parallel.stdout
    for proc, sweep_dir in ((basic, basic_dir), (parallel, joblib_dir)):
        # seed=-1 is refused in its own job; the other three still ran to the end
        assert proc.returncode == 2, proc.stderr[-3000:]
        last = proc.stderr.strip().splitlines()
        assert last[-1] == f"1 of 4 job(s) failed, the other 3 completed; see {sweep_dir / 'sweep.json'}"
        assert last[-2] == "failed: job #3 (seed=-1): seed=-1 is invalid: it must be an integer >= 0; fix the " \
                           "override or the config file"
        summary = json.loads((sweep_dir / "sweep.json").read_text())
        assert [(j["job"], j["status"]) for j in summary["jobs"]] == [(0, "completed"), (1, "completed"),
                                                                      (2, "completed"), (3, "failed")]
        for seed in range(3):
            assert (sweep_dir / f"{seed}_gru_attn_ppo+mlp_seed{seed}" / "checkpoints" / "last.ckpt").is_file()
    for seed in range(3):
        name = f"{seed}_gru_attn_ppo+mlp_seed{seed}"
        a, b = _weights(basic_dir / name), _weights(joblib_dir / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"seed {seed} differs"
    w0, w1 = _weights(basic_dir / "0_gru_attn_ppo+mlp_seed0"), _weights(basic_dir / "1_gru_attn_ppo+mlp_seed1")
    assert any(not torch.equal(w0[k], w1[k]) for k in w0)  # the seeds differ, so equality above means something
    # the layout is the basic launcher's (the same run directories): test_multirun.py tests and compares it


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_two_job_sweep(run_cli, tmp_path):
    sweep_dir = tmp_path / "submitit"
    proc = run_cli("fit", "-m", *TINY, "algo.total_env_steps=128", "seed=0,1", "hydra/launcher=local",
                   f"hydra.sweep.dir={sweep_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((sweep_dir / "sweep.json").read_text())
    assert [(j["job"], j["status"]) for j in summary["jobs"]] == [(0, "completed"), (1, "completed")]
    for seed in (0, 1):
        run = sweep_dir / f"{seed}_gru_attn_ppo+mlp_seed{seed}"
        assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "metrics.csv").is_file()
        assert json.loads((run / "meta.json").read_text())["seed"] == seed
    logs = list((sweep_dir / ".submitit").glob("*/*_0_log.*"))
    assert len(logs) == 4  # each job ran in its own submitit process (its .out and .err)
    assert any("1 torch thread(s)" in p.read_text() for p in logs)  # cpus_per_task: 1

"""``python -m kpremia study``: seeds fit through the launcher, tested, compared; a killed study continues."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kpremia.core.errors import UserError
from kpremia.run.study import fit_commands, fit_status, parse_seeds, study_main

from .conftest import TINY


def test_seeds_are_ranges_lists_or_one_seed():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3,0 7") == [0, 3, 7]
    assert parse_seeds("7") == [7]
    with pytest.raises(UserError, match="--seeds 'a' is not a list of seeds"):
        parse_seeds("a")


def _fake_run(study: Path, seed: int, *, ckpt: bool, completed: bool) -> None:
    run = study / f"seed{seed}"
    (run / "checkpoints").mkdir(parents=True)
    if ckpt:
        (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    if completed:
        (study / ".jobs").mkdir(exist_ok=True)
        (study / ".jobs" / f"seed{seed}.json").write_text(json.dumps(
            {"job": seed, "status": "completed", "run_dir": str(run), "finished_at": 1.0}))


def test_what_is_done_is_read_from_disk_and_only_the_rest_is_run(tmp_path):
    study = tmp_path / "study"
    _fake_run(study, 0, ckpt=True, completed=True)   # finished
    _fake_run(study, 1, ckpt=True, completed=False)  # killed part-way
    _fake_run(study, 2, ckpt=False, completed=False)  # killed before its first checkpoint
    status = fit_status(study, [0, 1, 2, 3])
    assert status == {0: "done", 1: "partial", 2: "new", 3: "new"}
    resume, new = fit_commands(study, status, ["experiment=mlp_ppo", "hydra/launcher=cores"])
    assert resume == ["fit", "-m", "seed=1", f"ckpt={study}/seed${{seed}}", "experiment=mlp_ppo",
                      "hydra/launcher=cores", f"hydra.sweep.dir={study}", "hydra.sweep.subdir=seed${seed}",
                      "hydra.output_subdir=null"]
    assert new[:3] == ["fit", "-m", "seed=2,3"] and "ckpt=" not in " ".join(new)


def test_dry_run_prints_the_commands_and_mistakes_are_one_line(tmp_path, capsys):
    assert study_main(["--seeds", "0-1", "--dir", str(tmp_path / "s"), "--dry-run", "--test", "",
                       "--test", "data.seed=100", "experiment=mlp_ppo"]) == 0
    lines = [ln[2:] for ln in capsys.readouterr().out.splitlines() if ln.startswith("+ ")]
    assert lines[0].startswith("python -m kpremia fit -m seed=0,1 experiment=mlp_ppo")
    assert lines[1:] == [f"python -m kpremia test ckpt={tmp_path}/s/seed0",
                         f"python -m kpremia test ckpt={tmp_path}/s/seed0 data.seed=100",
                         f"python -m kpremia test ckpt={tmp_path}/s/seed1",
                         f"python -m kpremia test ckpt={tmp_path}/s/seed1 data.seed=100",
                         f"python -m kpremia compare {tmp_path}/s"]
    with pytest.raises(UserError, match="use --seeds and --dir"):
        study_main(["seed=3"])
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "study.json").write_text(json.dumps({"overrides": ["experiment=mlp_ppo"], "tested": {}}))
    with pytest.raises(UserError, match="holds a study of other overrides"):
        study_main(["--dir", str(tmp_path / "s"), "experiment=gru_attn_ppo"])


def _study(study_dir: Path, runs: Path) -> list[str]:
    # 5 rounds of 128 env steps per seed, a last.ckpt after each: seed 1 can be caught between two
    return [sys.executable, "-m", "kpremia", "study", "--seeds", "0-1", "--dir", str(study_dir), "--test",
            "eval.plots=false", *TINY, "algo.total_env_steps=640"]


@pytest.mark.slow
def test_a_killed_study_continues_where_it_stopped(tmp_path):
    study_dir, runs = tmp_path / "study", tmp_path / "runs"
    env = {**os.environ, "KPREMIA_RUNS_DIR": str(runs), "PYTHONWARNINGS": "ignore"}
    log = (tmp_path / "first.out").open("w")
    first = subprocess.Popen(_study(study_dir, runs), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
                             start_new_session=True)
    seed0, seed1 = study_dir / "seed0", study_dir / "seed1"
    deadline = time.monotonic() + 400
    try:  # kill the whole study (its fit and the fit's jobs) once seed 0 is done and seed 1 has a checkpoint
        while not ((study_dir / ".jobs" / "seed0.json").is_file() and (seed1 / "checkpoints" / "last.ckpt").is_file()):
            assert first.poll() is None, (tmp_path / "first.out").read_text()[-3000:]
            assert time.monotonic() < deadline, "the study did not get to seed 1"
            time.sleep(0.05)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert not (study_dir / ".jobs" / "seed1.json").is_file(), "seed 1 finished before the kill; the test needs it cut"
    seed0_ckpt = (seed0 / "checkpoints" / "last.ckpt").stat().st_mtime_ns

    again = subprocess.run(_study(study_dir, runs), capture_output=True, text=True, env=env, cwd=tmp_path,
                           timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    commands = [ln[2:] for ln in again.stdout.splitlines() if ln.startswith("+ ")]
    assert f"study {study_dir}: seed(s) 0 already fit, kept" in again.stdout
    fits = [c for c in commands if c.startswith("python -m kpremia fit")]
    assert len(fits) == 1 and " seed=1 " in fits[0] and f"'ckpt={study_dir}/seed${{seed}}'" in fits[0]  # resumed
    assert (seed0 / "checkpoints" / "last.ckpt").stat().st_mtime_ns == seed0_ckpt  # not rerun
    assert "resumes" not in json.loads((seed0 / "meta.json").read_text())
    resumes = json.loads((seed1 / "meta.json").read_text())["resumes"]
    assert len(resumes) == 1 and 0 < resumes[0]["env_steps"] < 640
    assert json.loads((study_dir / ".jobs" / "seed1.json").read_text())["status"] == "completed"
    state = json.loads((study_dir / "study.json").read_text())
    assert state["tested"] == {"0": ["eval.plots=false"], "1": ["eval.plots=false"]}
    assert commands[-1] == f"python -m kpremia compare {study_dir}"
    assert again.stdout.strip().splitlines()[-1] == f"study {study_dir}: 2 of 2 seed(s) fit, 2 tested"

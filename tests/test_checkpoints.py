"""What ``ckpt=`` resolves to: a file, a glob, a run directory, best/last, a sweep (kpremia.run.checkpoint)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kpremia.core.errors import UserError
from kpremia.run.checkpoint import resolve_checkpoints


def fake_run(root: Path, name: str, *, best: bool = True, mtime: float = 1_000_000.0) -> Path:
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"last")
    os.utime(run / "checkpoints" / "last.ckpt", (mtime, mtime))
    if best:
        (run / "checkpoints" / "best-epoch003.ckpt").write_bytes(b"best")
    return run


def test_a_file_is_itself_and_a_run_directory_is_its_best_checkpoint(tmp_path: Path) -> None:
    run = fake_run(tmp_path, "2026-01-01_00-00-00_mlp_ppo")
    best = run / "checkpoints" / "best-epoch003.ckpt"
    assert resolve_checkpoints(str(run / "checkpoints" / "last.ckpt")) == [run / "checkpoints" / "last.ckpt"]
    assert resolve_checkpoints(str(run)) == [best]
    assert resolve_checkpoints(str(run / "checkpoints")) == [best]
    assert resolve_checkpoints(str(run), which="last") == [run / "checkpoints" / "last.ckpt"]  # fit resumes from it
    assert resolve_checkpoints(str(run / "last")) == [run / "checkpoints" / "last.ckpt"]
    assert resolve_checkpoints(str(run / "best"), which="last") == [best]
    no_best = fake_run(tmp_path, "2026-01-01_00-00-01_mlp_ppo", best=False)  # no validation yet
    assert resolve_checkpoints(str(no_best)) == [no_best / "checkpoints" / "last.ckpt"]


def test_a_glob_is_expanded_here_because_the_shell_does_not_after_ckpt(tmp_path: Path) -> None:
    run = fake_run(tmp_path, "r")
    assert resolve_checkpoints(str(run / "checkpoints" / "best-epoch*.ckpt")) == [run / "checkpoints" / "best-epoch003.ckpt"]
    with pytest.raises(UserError, match=r"matches 2 checkpoints .*pass one of them"):
        resolve_checkpoints(str(run / "checkpoints" / "*.ckpt"))
    with pytest.raises(UserError, match="no checkpoint matches"):
        resolve_checkpoints(str(run / "checkpoints" / "nope-*.ckpt"))


def test_best_and_last_name_the_newest_run_multiruns_included(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    fake_run(runs, "2026-01-01_00-00-00_old", mtime=1_000_000)
    newest = fake_run(runs / "multirun" / "2026-01-02_00-00-00", "1_mlp_ppo_seed1", mtime=2_000_000)
    fake_run(runs, "2026-01-01_12-00-00_mid", mtime=1_500_000)
    assert resolve_checkpoints("best", runs_dir=runs) == [newest / "checkpoints" / "best-epoch003.ckpt"]
    assert resolve_checkpoints("last", runs_dir=runs) == [newest / "checkpoints" / "last.ckpt"]
    with pytest.raises(UserError, match="no runs with checkpoints under"):
        resolve_checkpoints("best", runs_dir=tmp_path / "empty")


def test_a_sweep_directory_is_every_run_for_test_and_one_line_elsewhere(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun" / "2026-01-01_00-00-00"
    runs = [fake_run(sweep, f"{i}_mlp_ppo_seed{i}") for i in range(3)]
    (sweep / "3_mlp_ppo_seed3").mkdir()  # a job whose fit failed before any checkpoint
    (sweep / "3_mlp_ppo_seed3" / "failed.json").write_text("{}")
    found = resolve_checkpoints(str(sweep), many=True)
    assert found == [r / "checkpoints" / "best-epoch003.ckpt" for r in runs]
    with pytest.raises(UserError, match=r"holds 3 runs; .*python -m kpremia test"):
        resolve_checkpoints(str(sweep))


def test_nothing_there_is_one_line_naming_the_forms(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"not found; pass ckpt=<run dir>.*ckpt=best or ckpt=last"):
        resolve_checkpoints(str(tmp_path / "missing.ckpt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no runs"):
        resolve_checkpoints(str(tmp_path / "empty"), many=True)

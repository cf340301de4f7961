"""One rule names a run directory (kpremia.core.run_dirs): Hydra's patterns, the CLI and the Python API agree."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
import yaml

import kpremia
from kpremia.app.cli import main
from kpremia.core.run_dirs import (
    STAMP,
    hydra_run_dir,
    hydra_sweep_dir,
    new_run_dir,
    run_dir_name,
)

CONFIG = Path(kpremia.__file__).parent / "configs" / "config.yaml"
SHAPE = re.compile(r"(\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d)_(.+)")  # written out, not taken from the module under test


def _stamp_and_label(name: str) -> tuple[datetime, str]:
    match = SHAPE.fullmatch(name)
    assert match, f"{name!r} is not <date>_<time>_<label>"
    return datetime.strptime(match.group(1), "%Y-%m-%d_%H-%M-%S"), match.group(2)


def test_the_hydra_patterns_in_config_yaml_are_the_rules() -> None:
    hydra = yaml.safe_load(CONFIG.read_text())["hydra"]
    assert hydra["run"]["dir"] == hydra_run_dir("${experiment_name}") == hydra_run_dir()
    assert hydra["sweep"]["dir"] == hydra_sweep_dir()


def test_a_run_dir_name_is_date_time_label(tmp_path: Path) -> None:
    assert run_dir_name("mlp_ppo", datetime(2025, 3, 4, 5, 6, 7)) == "2025-03-04_05-06-07_mlp_ppo"
    assert STAMP == "%Y-%m-%d_%H-%M-%S"
    cfg = {"paths": {"runs_dir": str(tmp_path)}, "experiment_name": "mlp_ppo"}
    first = new_run_dir(cfg)
    assert first.parent == tmp_path and _stamp_and_label(first.name)[1] == "mlp_ppo"
    assert first.is_dir() and not any(first.iterdir())  # claimed: created, empty
    second = new_run_dir(cfg)  # the same second (or the next): never the same directory
    assert second != first and second.parent == tmp_path and second.is_dir()


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path: Path, monkeypatch) -> None:
    """The clock stopped on one second: every claim still gets a directory of its own."""
    import kpremia.core.run_dirs as run_dirs

    monkeypatch.setattr(run_dirs, "run_dir_name", lambda label, when=None: f"2025-03-04_05-06-07_{label}")
    cfg = {"paths": {"runs_dir": str(tmp_path / "deep" / "runs")}, "experiment_name": "mlp_ppo"}
    claimed = [run_dirs.new_run_dir(cfg) for _ in range(3)]
    assert [p.name for p in claimed] == ["2025-03-04_05-06-07_mlp_ppo", "2025-03-04_05-06-07_mlp_ppo_1",
                                         "2025-03-04_05-06-07_mlp_ppo_2"]
    assert all(p.is_dir() for p in claimed)


@pytest.mark.slow
def test_the_cli_does_not_write_into_a_run_of_the_same_second(tmp_path: Path, monkeypatch, capsys) -> None:
    """Two `backtest`s in one second (a shell loop): the second's files go to `<name>_1`, the first's stay."""
    import kpremia.core.run_dirs as run_dirs

    monkeypatch.setattr(run_dirs, "run_dir_name", lambda label, when=None: f"2025-03-04_05-06-07_{label}")
    runs = tmp_path / "my runs"  # a space: the claimed path reaches Hydra quoted
    taken = runs / "2025-03-04_05-06-07_backtest"
    taken.mkdir(parents=True)
    (taken / "theirs.txt").write_text("a run of the same second")
    assert main(["backtest", "debug=fast", "eval.plots=false", f"paths.runs_dir={runs}"]) == 0
    report = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert report.is_relative_to(runs / "2025-03-04_05-06-07_backtest_1")
    assert [p.name for p in taken.iterdir()] == ["theirs.txt"]


@pytest.mark.slow
def test_the_cli_and_the_api_name_a_backtest_run_alike(tmp_path: Path, capsys) -> None:
    """A real `backtest` through the CLI (Hydra names its directory) and through kpremia.backtest (the API)."""
    runs = tmp_path / "runs"
    args = ["debug=fast", "eval.plots=false", f"paths.runs_dir={runs}"]
    assert main(["backtest", *args]) == 0
    by_cli = Path(capsys.readouterr().out.strip().splitlines()[-1]).parent
    by_api = Path(kpremia.backtest(overrides=args)["report_dir"]).parent
    assert by_cli.parent == by_api.parent == runs and by_cli != by_api
    assert _stamp_and_label(by_cli.name)[1] == _stamp_and_label(by_api.name)[1] == "backtest"


def test_a_study_and_a_sweep_go_where_the_rule_says(tmp_path: Path) -> None:
    """A study's default directory (run.study) and the multirun folder wandb groups by (run.loggers)."""
    from kpremia.core.run_dirs import study_dir
    from kpremia.run.loggers import _multirun_group
    from kpremia.run.study import default_dir

    assert default_dir(["experiment=mlp_ppo", f"paths.runs_dir={tmp_path}"]) == tmp_path / "studies" / "mlp_ppo"
    assert study_dir({"paths": {"runs_dir": str(tmp_path)}, "experiment_name": "x"}) == tmp_path / "studies" / "x"
    job = tmp_path / "multirun" / "2025-03-04_05-06-07" / "0_mlp_ppo_seed0"
    assert _multirun_group(job) == "2025-03-04_05-06-07" and _multirun_group(tmp_path / "run") is None

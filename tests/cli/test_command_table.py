"""The command table (kpremia.app.command_table) is what the CLI and the Python API dispatch through."""

from __future__ import annotations

import pytest

from kpremia.app import cli, commands, plain_commands
from kpremia.app.command_table import COMMANDS, HYDRA_COMMANDS, OTHER_COMMANDS, command
from kpremia.core.errors import UserError


def test_every_command_has_its_runner_and_its_help(capsys) -> None:
    from kpremia.app.cli_help import has_help

    for name, spec in COMMANDS.items():
        runners = commands.RUNNERS if spec.hydra else plain_commands.RUNNERS
        assert spec.runner in runners, name
        if spec.hydra:  # kpremia's own --help for every Hydra command
            assert has_help(name), name
    assert set(commands.RUNNERS) == {COMMANDS[n].runner for n in HYDRA_COMMANDS}
    assert set(plain_commands.RUNNERS) == {COMMANDS[n].runner for n in OTHER_COMMANDS}


def test_the_usage_lists_the_table_in_order(capsys) -> None:
    assert cli.main(["--help"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.split("commands:\n")[1].split("\n\n")[0].splitlines()
              if line.startswith("  ") and not line.startswith("   ")]
    assert listed == list(COMMANDS)


def test_an_unknown_command_is_one_line_naming_them_all(capsys) -> None:
    assert cli.main(["fitt", "seed=1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown command 'fitt'" in err and ", ".join(COMMANDS) in err
    with pytest.raises(UserError, match="unknown command"):
        command("fitt")


def test_a_plain_command_cannot_be_dispatched_as_a_hydra_one() -> None:
    with pytest.raises(UserError, match="takes command-line arguments"):
        commands.dispatch("compare", {}, None, [])
    with pytest.raises(UserError, match="is a Hydra command"):
        plain_commands.run_plain("fit", [])


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_facts_the_cli_reads_from_the_table(name: str, tmp_path) -> None:
    """A positional directory means ckpt= only where a checkpoint is needed; a new run dir is claimed under
    its label (Hydra's pattern only for a multirun, Hydra's own flags, or a hydra.run.dir of the user's)."""
    spec = command(name)
    if not spec.hydra:
        return
    positional = cli._positional_run_dir(name, ["runs/x"])
    assert positional == (["ckpt=runs/x"] if spec.checkpoint == "needed" else ["runs/x"])
    resolved = {"paths": {"runs_dir": str(tmp_path)}, "experiment_name": "mlp_ppo"}
    claimed = cli._hydra_run_dir_args(spec, resolved, [])
    unresolved = cli._hydra_run_dir_args(spec, None, [])
    if spec.run_dir == "new":
        made = [p for p in tmp_path.iterdir()]
        assert len(made) == 1 and made[0].is_dir() and made[0].name.endswith("_" + (spec.label or "mlp_ppo"))
        assert claimed == [f"hydra.run.dir={made[0]}"]
        pattern = "hydra.run.dir=${paths.runs_dir}/${now:%Y-%m-%d_%H-%M-%S}_" + str(spec.label)
        assert unresolved == ([] if spec.label is None else [pattern])
        assert cli._hydra_run_dir_args(spec, resolved, ["-m"]) == unresolved
        assert cli._hydra_run_dir_args(spec, resolved, ["hydra.run.dir=mine"]) == []  # the user's stays
    else:
        assert not any(tmp_path.iterdir())
        for extra in (claimed, unresolved):
            assert extra[0] == "hydra.run.dir=." and "hydra.output_subdir=null" in extra

"""kpremia's own help: --version, each command's --help, and errors that point to the command's help."""

from __future__ import annotations

import pytest

from kpremia import __version__
from kpremia.app.cli import HYDRA_COMMANDS, main


@pytest.mark.parametrize("argv", [["--version"], ["-V"], ["fit", "--version"]])
def test_version(argv, capsys):
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith(f"kpremia {__version__} ")


@pytest.mark.parametrize("command", HYDRA_COMMANDS)
def test_command_help_is_kpremias_own(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m kpremia {command}")
    assert "powered by Hydra" not in out and len(out.splitlines()) < 50
    assert f"python -m kpremia {command} --hydra-help" in out  # where the full help is
    assert "example" in out


def test_fit_help_names_the_main_keys_with_examples(capsys):
    main(["fit", "-h"])
    out = capsys.readouterr().out
    for key in ("experiment=", "encoder=", "algo=", "data=", "algo.total_env_steps=", "seed="):
        assert key in out, key
    assert "python -m kpremia fit experiment=mlp_ppo algo.total_env_steps=" in out


def test_hydra_help_is_still_reachable(run_cli):
    proc = run_cli("fit", "--hydra-help")
    assert proc.returncode == 0 and "Configuration groups" in proc.stdout and "encoder:" in proc.stdout


def test_grammar_error_points_to_the_help_of_the_command_run(capsys):
    assert main(["backtest", "data.path=a(b).csv"]) == 2
    err = capsys.readouterr().err
    assert "python -m kpremia backtest --help" in err and "fit --help" not in err
    assert "quote" in err  # how to pass such a value


def test_the_version_is_pyprojects_and_answers_without_the_public_api() -> None:
    """One version string: pyproject.toml's; `--version` reads it without kpremia.app.api (nor torch)."""
    import subprocess
    import sys
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert __version__ == pyproject["project"]["version"]
    code = ("import sys\nfrom kpremia.app.cli import main\nmain(['--version'])\n"
            "print(sorted(m for m in sys.modules if m in ('kpremia.app.api', 'kpremia.app.commands', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [f"kpremia {__version__} (python {sys.version.split()[0]})", "[]"]

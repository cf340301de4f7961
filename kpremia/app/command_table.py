"""The commands, in one table: what runs each one and what it needs (checkpoint, run directory, Hydra).

Why a table: the CLI (``python -m kpremia <command>``) and the Python API (``kpremia.fit`` ...)
both dispatch through it, so a command's facts are written once: whether Hydra composes its
config, whether it needs a checkpoint, whether it gets a new run directory and what that
directory is called (:mod:`kpremia.core.run_dirs`), and which function runs it
(:mod:`kpremia.app.commands` for a Hydra command, :mod:`kpremia.app.plain_commands` for the
others).  Plain data only: ``--help`` and the refusals read it without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kpremia.core.errors import UserError

Checkpoint = Literal["needed", "resume", "optional", "no"]
RunDir = Literal["new", "none"]


@dataclass(frozen=True)
class Command:
    """One command of ``python -m kpremia`` (and, where it has one, of the Python API)."""

    name: str
    usage: str  # its entry in `python -m kpremia --help` (continuation lines indented 13 spaces)
    runner: str  # the function that runs it: in kpremia.app.commands (hydra) or kpremia.app.plain_commands
    hydra: bool = True  # a Hydra application: key=value overrides, --cfg job, -m; else plain argv
    # needed: ckpt= (or a run directory as the first word) is required; resume: ckpt= continues that
    # run in its own directory; optional: a checkpoint or a rule; no: none is read
    checkpoint: Checkpoint = "no"
    run_dir: RunDir = "none"  # new: <runs_dir>/<date>_<time>_<label>; none: beside its checkpoint, or none
    label: str | None = None  # the new run directory's last part (None: the config's experiment_name)
    objective: str | None = None  # the result key a sweeper optimises; the CLI prints the run directory last

    @property
    def marks_failures(self) -> bool:
        """A command that makes its own run directory marks it failed when it fails (no bare folder left)."""
        return self.run_dir == "new"


COMMANDS: dict[str, Command] = {c.name: c for c in (
    Command("fit", "train an agent (e.g. `fit experiment=gru_attn_ppo`); prints the run directory last",
            "fit", checkpoint="resume", run_dir="new", objective="best_score"),
    Command("validate", "evaluate a checkpoint on the validation split (`validate ckpt=<path>`)",
            "validate", checkpoint="needed"),
    Command("test", "evaluate a checkpoint on the test split and write report/ (`test ckpt=<path>`)",
            "test", checkpoint="needed"),
    Command("backtest", "the rules on a data file, no checkpoint: band rule, z-score band, buy-and-hold, cash,\n"
            "random, oracle (`backtest data=csv data.path=<file>`; writes runs/<time>_backtest/report/)",
            "backtest", run_dir="new", label="backtest"),
    Command("live", "run a checkpoint (or a rule) on new bars: paper by default, crash-safe\n"
            "(`live ckpt=<path> live.state_dir=<dir>`; see docs/live.md)", "live", checkpoint="optional"),
    Command("serve", "the control API and status page over a checkpoint (`serve ckpt=<path>`; see docs/live.md)",
            "serve", checkpoint="optional"),
    Command("live-report", "replay a live session's journal through the simulator: fill, fee and PnL gaps\n"
            "(`live-report state_dir=<dir>`)", "live_report", hydra=False),
    Command("live-resolve", "settle a HALTED session's book mismatch by adopting one side, journaled\n"
            "(`live-resolve state_dir=<dir> adopt=broker|journal reason=\"...\"`; see docs/live.md)",
            "live_resolve", hydra=False),
    Command("list", "list the registered plug-ins (encoders, algos, action schemes, data sources, baselines)",
            "list_plugins_main", hydra=False),
    Command("data", "`data fetch ...` real history through ccxt, `data inspect <path> [data.* options]` coverage and\n"
            "premium stats", "data", hydra=False),
    Command("compare", "one table of test metrics across run directories or a multirun directory",
            "compare", hydra=False),
    Command("study", "fit an experiment over seeds (through a Hydra launcher), test each, compare; resumable\n"
            "(`study --seeds 0-19 experiment=gru_attn_ppo hydra/launcher=cores`; see docs/scale.md)",
            "study", hydra=False),
)}

HYDRA_COMMANDS = tuple(name for name, c in COMMANDS.items() if c.hydra)
OTHER_COMMANDS = tuple(name for name, c in COMMANDS.items() if not c.hydra)


def command(name: str) -> Command:
    """The table's entry for ``name``; an unknown name is one line listing the commands."""
    if name not in COMMANDS:
        raise UserError(f"unknown command {name!r}; use one of: {', '.join(COMMANDS)}")
    return COMMANDS[name]


def command_list() -> str:
    """The ``commands:`` block of ``python -m kpremia --help``, one entry per command of the table."""
    lines = []
    for c in COMMANDS.values():
        first, *rest = c.usage.splitlines()
        lines.append(f"  {c.name:<9}  {first}")
        lines += [" " * 13 + line for line in rest]
    return "\n".join(lines)

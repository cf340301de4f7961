"""Built-in ``checkpoints`` callback: the live model and runner state as files.

The journal already holds what a restart needs; this writes it where people
and other tools look: ``<state_dir>/checkpoints/live-last.pt`` (the runner's
state dict and account, loadable with ``torch.load``) every ``every`` (a
duration such as ``1d``, or a number of bars) and when a session that decided bars stops, written atomically (a start
that is refused rewrites nothing).  Temporary files an interrupted write left
there are removed when a session starts.  An online learner keeps its versions
beside it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from kpremia.core.bars import DEFAULT_BAR, bars_setting
from kpremia.core.io import atomic_write_bytes
from kpremia.core.registry import LIVE_CALLBACKS
from kpremia.live.loop.callback import LiveCallback
from kpremia.live.loop.types import Decision


@LIVE_CALLBACKS.register("checkpoints")
class CheckpointCallback(LiveCallback):
    """Writes ``checkpoints/live-last.pt`` every ``every`` (a duration, or a number of bars) and at stop."""

    def __init__(self, every: Any = "1d", dirpath: str | None = None) -> None:
        self.every = every
        self.every_bars = bars_setting(every, DEFAULT_BAR, "live.callbacks.checkpoints.every")  # checked now
        self.dirpath = Path(dirpath) if dirpath else None

    def setup(self, runner: Any) -> None:
        self.every_bars = bars_setting(self.every, runner.bar, "live.callbacks.checkpoints.every")
        if self.dirpath is None:
            self.dirpath = runner.journal.path.parent / "checkpoints"

    def save(self, runner: Any) -> Path:
        buf = io.BytesIO()
        torch.save({"state": runner.state.to_row(), "runner": runner.state_dict(),
                    "policy": runner.policy.name}, buf)
        return atomic_write_bytes(self.dirpath / "live-last.pt", buf.getvalue())

    def on_start(self, runner: Any) -> None:
        if self.dirpath is not None and self.dirpath.is_dir():
            for orphan in self.dirpath.glob(".live-last.pt.*.tmp"):  # a kill in the middle of a write
                orphan.unlink(missing_ok=True)

    def on_bar_end(self, runner: Any, decision: Decision) -> None:
        if decision.step % self.every_bars == 0:
            self.save(runner)

    def on_stop(self, runner: Any) -> None:
        if runner.bars_this_session > 0:
            self.save(runner)

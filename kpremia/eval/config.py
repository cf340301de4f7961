"""EvalConfig: the ``eval`` part of the run config (``validate`` / ``test``), typed and checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kpremia.config import ConfigPart, at_least, knob, positive


@dataclass(frozen=True)
class EvalConfig(ConfigPart):
    """``eval``: how a checkpoint's policy is run on a split, and beside which baselines."""

    section: ClassVar[str] = "eval"

    # Which bars: null = the command's split (validate: val, test: test); all = every bar after the warm-up.
    split: str | None = knob(None, ("val, test, all or null", lambda v: v in (None, "val", "test", "all")))
    deterministic: bool = knob(True)  # argmax action; false samples with `temperature`
    temperature: float = knob(1.0, positive())
    n_seeds: int = knob(5, at_least(1))  # sampled policies: how many seeds
    force_action: str | None = knob(None)  # a constant action name (e.g. hold), a sanity check
    baselines: tuple[str, ...] = knob(("cash", "buy_and_hold", "random", "premium_threshold", "premium_zscore",
                                       "oracle"))
    plots: bool = knob(True)
    # Model selection during `fit`: validation averages over the run's own val split and val_draws - 1
    # further draws of a generated market (data.seed * 1000 + 500 + j; synthetic source only).
    val_draws: int = knob(1, at_least(1))

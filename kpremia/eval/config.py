"""EvalConfig: the ``eval`` part of the run config (``validate`` / ``test``), typed and checked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from kpremia.core.config import ConfigPart, at_least, knob, positive
from kpremia.core.errors import UserError

# eval.rule_levels keys -> (baseline, its constructor option)
RULE_LEVEL_KEYS = {"buy_premium": ("premium_threshold", "buy_level"),
                   "sell_premium": ("premium_threshold", "sell_level"),
                   "zscore_window": ("premium_zscore", "window"), "buy_z": ("premium_zscore", "buy_z"),
                   "sell_z": ("premium_zscore", "sell_z")}


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
                                       "oracle", "model_based"))
    plots: bool = knob(True)
    # Levels given instead of fit on train: {buy_premium, sell_premium} (fractions) for premium_threshold,
    # {zscore_window (e.g. 7d), buy_z, sell_z} for premium_zscore; needed by `backtest eval.split=all`.
    rule_levels: dict[str, Any] | None = knob(None)
    # Model selection during `fit`: validation averages over the run's own val split and val_draws - 1
    # further draws of a generated market (data.seed * 1000 + 500 + j; synthetic source only).
    val_draws: int = knob(1, at_least(1))
    # `test` on a generated market: further draws of it (unseen data seeds 1000000 + j, the same for every
    # run), each beside the baselines fit on its own train split; 0 tests the own test split only.
    test_markets: int = knob(4, at_least(0))
    # `test` on a data file: walk-forward windows over the bars after the train split (equal shares), the rules
    # refit on each window's past, the policy and the rules on the window; 0: none.
    walk_forward: int = knob(0, at_least(0))

    def check_together(self) -> None:
        rule_options(self.rule_levels)


def rule_options(levels: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``eval.rule_levels`` as :func:`kpremia.eval.baselines.make_baselines` options; one line on a mistake.

    A rule is given whole or not at all (both premium levels; window and both z levels).
    """
    levels = dict(levels or {})
    unknown = sorted(set(levels) - set(RULE_LEVEL_KEYS))
    if unknown:
        raise UserError(f"eval.rule_levels.{unknown[0]} is not a level; use {', '.join(RULE_LEVEL_KEYS)}")
    options: dict[str, dict[str, Any]] = {}
    for key, value in levels.items():
        rule, option = RULE_LEVEL_KEYS[key]
        if value is None:
            continue
        if option != "window":
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise UserError(f"eval.rule_levels.{key}={value!r} must be a number") from None
        options.setdefault(rule, {})[option] = value
    for rule, given in options.items():
        missing = [k for k, (r, o) in RULE_LEVEL_KEYS.items() if r == rule and o not in given]
        if missing:
            raise UserError(f"eval.rule_levels gives {rule} only in part: add {', '.join(missing)}")
    band = options.get("premium_threshold")
    if band is not None:
        if not band["buy_level"] < band["sell_level"]:
            raise UserError(f"eval.rule_levels: buy_premium={band['buy_level']} must be below "
                            f"sell_premium={band['sell_level']} (fractions: 0.005 = 0.5 %)")
        band["method"] = "given"
    z = options.get("premium_zscore")
    if z is not None and not (z["buy_z"] > 0 and z["sell_z"] > 0):
        raise UserError("eval.rule_levels: buy_z and sell_z must be > 0 (distances in standard deviations)")
    return options

"""Plausibility checks: data that parses but cannot be a USDT/KRW market over USD/KRW.

Why: a file can be a perfectly valid table and still the wrong market -- a BTC/USD
close mapped onto ``close`` makes a "premium" of hundreds of percent, a KRW per EUR
column mapped onto ``fx`` moves every premium by 25 %, a premium in percent read as a
fraction is a hundred times too large.  Training on it would fit band levels on
nonsense.  So every real-data source checks its frame here and refuses with one line
naming the file, the column, the first offending bar and the setting that overrides
the check.  An override is deliberate: it is a ``data.checks.*`` setting, and the
manifest records the checks in force and which ones the user changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kpremia.core.errors import UserError


@dataclass(frozen=True)
class PlausibilityChecks:
    """``data.checks``: the ranges a USDT/KRW + USD/KRW frame must stay in.

    The defaults are generous: the USDT premium ran between about -5 % and +15 % in
    2017-2025 and USD/KRW between about 700 and 2,000 since 1990.
    """

    max_abs_premium: float = 0.5
    """Largest |premium| (a fraction: 0.5 = 50 %)."""
    fx_min: float = 500.0
    """Lowest plausible USD/KRW (KRW per USD)."""
    fx_max: float = 3000.0
    """Highest plausible USD/KRW."""

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> "PlausibilityChecks":
        """From ``data.checks`` (None or {} = the defaults); unknown keys refused."""
        cfg = dict(cfg or {})
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(cfg) - set(known))
        if unknown:
            raise UserError(f"data.checks.{unknown[0]} is not a check; known: {', '.join(known)}")
        values = {}
        for key, value in cfg.items():
            try:
                values[key] = float(value)
            except (TypeError, ValueError):
                raise UserError(f"data.checks.{key}={value!r} must be a number") from None
        checks = cls(**values)
        if not (checks.max_abs_premium > 0 and 0 < checks.fx_min < checks.fx_max):
            raise UserError(f"data.checks {values} are inconsistent: need max_abs_premium > 0 and 0 < fx_min < fx_max")
        return checks

    def overridden(self) -> list[str]:
        """The checks set to something else than the default (recorded in the manifest)."""
        default = type(self)()
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(default, f.name)]

    def describe(self) -> dict[str, Any]:
        """For the manifest: every limit and which ones the user changed."""
        return {**dataclasses.asdict(self), "overridden": self.overridden()}

    def check(self, frame: pd.DataFrame, *, premium_source: str = "close / fx - 1") -> None:
        """Refuse ``frame`` (a MarketFrame) at its first implausible bar; one line naming column and fix.

        ``premium_source`` says where the premium came from (for the message).
        """
        fx = frame["fx"].to_numpy(np.float64)
        bad_fx = (fx < self.fx_min) | (fx > self.fx_max)
        if bad_fx.any():
            i = int(np.flatnonzero(bad_fx)[0])
            raise UserError(
                f"column 'fx' is {fx[i]:,.2f} at {frame.index[i].isoformat()} ({int(bad_fx.sum())} bars outside "
                f"{self.fx_min:,.0f}..{self.fx_max:,.0f}), which is not USD/KRW (KRW per 1 USD, about 1,100-1,500 "
                "since 2010); map the USD/KRW column onto fx, or override with data.checks.fx_min / "
                "data.checks.fx_max (recorded in the manifest)")
        premium = frame["premium"].to_numpy(np.float64)
        bad = np.abs(premium) > self.max_abs_premium
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            median = float(np.nanmedian(np.abs(premium)))
            hint = ("; it looks like a percentage: divide it by 100 or set data.premium_unit=percent"
                    if premium_source == "the 'premium' column" and 0.5 < median < 50 else
                    "; check that close is the USDT/KRW price (a BTC/USD or BTC/KRW close is not) and fx is "
                    "USD/KRW" if premium_source != "the 'premium' column" else "")
            raise UserError(
                f"premium ({premium_source}) is {premium[i] * 100:+,.1f} % at {frame.index[i].isoformat()} "
                f"({int(bad.sum())} bars beyond +-{self.max_abs_premium * 100:g} %), not a USDT/KRW premium"
                f"{hint}; or override with data.checks.max_abs_premium (recorded in the manifest)")

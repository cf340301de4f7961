"""Train / val / test splits in time order.

Why by time and never shuffled: a trading agent is judged on a future it has
not seen.  Splits are contiguous, ordered and non-overlapping; an optional
embargo drops bars between them so features with long windows at the start of a
split don't straddle the boundary (the tables still *read* history from before a
split's start: that is the past, not a leak).  Dates win over fractions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from kpremia.core.errors import UserError

SPLIT_NAMES = ("train", "val", "test")

Bounds = dict[str, tuple[int, int]]


def _to_utc(value: Any, what: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise UserError(f"split {what}={value!r} is not a date ({exc}); use e.g. {what}=2025-01-01") from None
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def split_frame(
    frame: pd.DataFrame,
    *,
    train_end: Any = None,
    val_end: Any = None,
    train_frac: float = 0.7,
    val_frac: float = 0.15,
    embargo_bars: int = 0,
    require: Sequence[str] = ("train", "val"),
) -> Bounds:
    """Split a MarketFrame's rows into ``{"train", "val", "test"}`` index bounds.

    Args:
        frame: a MarketFrame (only its index is read).
        train_end: first bar time NOT in train (a date/timestamp; naive = UTC);
            wins over ``train_frac``.
        val_end: first bar time NOT in val; wins over ``val_frac``.
        train_frac, val_frac: fractions of all rows for train and val (test gets the rest).
        embargo_bars: bars dropped between train/val and val/test.
        require: splits that must not be empty.

    Returns:
        ``{name: (start, end)}`` row bounds, end exclusive, ordered and non-overlapping
        (an empty split is ``(k, k)``).

    Raises:
        UserError: bad fractions, unparseable or inverted dates, or an empty
            required split.
    """
    n = len(frame)
    if not (0 < train_frac <= 1 and 0 <= val_frac < 1 and train_frac + val_frac <= 1):
        raise UserError(f"split fractions train_frac={train_frac}, val_frac={val_frac} are invalid; "
                        "use 0 < train_frac, 0 <= val_frac and train_frac + val_frac <= 1")
    if embargo_bars < 0:
        raise UserError(f"split embargo_bars={embargo_bars} is negative; use 0 or more")
    times = frame.index
    te = _to_utc(train_end, "train_end") if train_end is not None else None
    ve = _to_utc(val_end, "val_end") if val_end is not None else None
    if te is not None and ve is not None and ve <= te:
        raise UserError(f"split val_end={ve.isoformat()} is not after train_end={te.isoformat()}; "
                        "set val_end later than train_end")

    train_stop = int(times.searchsorted(te, side="left")) if te is not None else int(np.floor(n * train_frac))
    val_start = min(n, train_stop + embargo_bars)
    if ve is not None:
        val_stop = max(val_start, int(times.searchsorted(ve, side="left")))
    else:
        val_stop = min(n, val_start + int(np.floor(n * val_frac)))
    test_start = min(n, val_stop + embargo_bars)
    bounds = {"train": (0, train_stop), "val": (val_start, val_stop), "test": (test_start, n)}

    for name in require:
        if name not in bounds:
            raise UserError(f"unknown split {name!r}; use one of: {', '.join(SPLIT_NAMES)}")
        start, end = bounds[name]
        if end <= start:
            first = times[0].isoformat() if n else "-"
            last = times[-1].isoformat() if n else "-"
            raise UserError(
                f"the {name} split is empty (data has {n} bars {first} .. {last}; train_end={train_end}, "
                f"val_end={val_end}, train_frac={train_frac}, val_frac={val_frac}, "
                f"embargo_bars={embargo_bars}); move the split dates inside the data or change the fractions"
            )
    return bounds


def split_from_config(frame: pd.DataFrame, split_cfg: Mapping[str, Any] | None,
                      require: Sequence[str] = ("train", "val")) -> Bounds:
    """:func:`split_frame` with keyword arguments from a config mapping (unknown keys refused)."""
    cfg = dict(split_cfg or {})
    known = {"train_end", "val_end", "train_frac", "val_frac", "embargo_bars"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise UserError(f"unknown split option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return split_frame(frame, require=require, **cfg)


def bounds_to_dict(frame: pd.DataFrame, bounds: Mapping[str, tuple[int, int]]) -> dict[str, dict]:
    """JSON-able description of split bounds (rows and first/last bar times) for manifests."""
    out = {}
    for name, (start, end) in bounds.items():
        out[name] = {
            "start": int(start), "end": int(end), "rows": int(end - start),
            "first_bar": frame.index[start].isoformat() if end > start else None,
            "last_bar": frame.index[end - 1].isoformat() if end > start else None,
        }
    return out

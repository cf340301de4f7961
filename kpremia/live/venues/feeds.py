"""Feeds: where closed bars come from.  ``replay`` plays a MarketFrame's bars.

A feed gives the runner two things: the history before its first bar (to
warm up the observation builder: features and daily windows need days of
bars) and the closed bars themselves, strictly after a given time, so a
restart continues from the first bar without a decision row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from kpremia.core.bars import DEFAULT_BAR, bar_of_minutes, frame_bar, timeframe_label
from kpremia.core.errors import UserError
from kpremia.core.registry import DATA_SOURCES, LIVE_FEEDS
from kpremia.data.feature_table import feature_lookback
from kpremia.live.loop.types import Bar

if TYPE_CHECKING:
    from kpremia.run.live_config import LiveConfig


log = logging.getLogger(__name__)


@runtime_checkable
class Feed(Protocol):
    """The feed interface of the live runner (``LIVE_FEEDS`` registry)."""

    bar: pd.Timedelta  # the size of the bars it gives
    replays: bool  # True: bars of recorded data, so the session's clock is the last bar's time, not the wall clock

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], live: LiveConfig, windows: Mapping[str, int],
                    bar: pd.Timedelta | None = None) -> Feed:
        """The feed the run config asks for (``cfg``: its ``data`` node and the rest; ``live``: typed), giving
        bars of size ``bar`` (the checkpoint's; None: the data's own)."""

    def connect(self) -> None:
        """Reach the data source before anything is written (a feed over the network fetches its warm-up
        history here); a source that cannot be reached raises :class:`~kpremia.data.exchange.FetchFailed`."""

    def history(self) -> pd.DataFrame:
        """MarketFrame rows before the first live bar (for the observation builder's warm-up)."""

    def bars(self, after: pd.Timestamp | None) -> Iterator[Bar]:
        """Closed bars in time order, each strictly after ``after`` (all of them for None)."""

    def can_still_send(self, bar_time: pd.Timestamp) -> bool:
        """Whether an order decided at the close of ``bar_time`` can still fill at the next open."""


def warmup_bars(window_1d: int, window_premium: int, bar: pd.Timedelta = DEFAULT_BAR) -> int:
    """Bars of size ``bar`` of history the observation builder needs before its first complete observation."""
    days = max(int(window_1d), int(window_premium)) + 2
    return days * int(pd.Timedelta("1D") / bar) + feature_lookback(bar)


def frame_bars(frame: pd.DataFrame) -> Iterator[Bar]:
    """The rows of a MarketFrame as :class:`Bar` values."""
    cols = {c: frame[c].to_numpy(np.float64) for c in ("open", "high", "low", "close", "volume", "fx", "premium")}
    for i, ts in enumerate(frame.index):
        yield Bar(time=ts, **{c: float(v[i]) for c, v in cols.items()})


@LIVE_FEEDS.register("replay")
class ReplayFeed:
    """Replays the bars of a MarketFrame from ``start`` to ``end`` (bar open times, UTC).

    Args:
        frame: the whole MarketFrame (history before ``start`` is the warm-up).
        start, end: first and last bar to play (inclusive; None = first / last row).
        speed: 0 plays as fast as the runner goes; ``s > 0`` sleeps ``bar / s``
            between bars: ``speed`` market seconds a second, whatever the bar size
            (``speed=3600`` plays an hour of bars a second).
        warmup: how many bars before ``start`` :meth:`history` returns.
        bar: the frame's bar size (:data:`kpremia.core.bars.DEFAULT_BAR` by default).
    """

    replays = True

    def __init__(self, frame: pd.DataFrame, start: Any = None, end: Any = None, speed: float = 0.0,
                 warmup: int = 0, bar: pd.Timedelta = DEFAULT_BAR) -> None:
        self.frame = frame
        self.bar = bar
        index = frame.index
        self.start = 0 if start is None else int(index.searchsorted(_utc(start, "live.replay.start")))
        self.end = len(frame) if end is None else int(index.searchsorted(_utc(end, "live.replay.end"), side="right"))
        if self.start >= self.end:
            raise UserError(f"live.replay has no bars between {start} and {end} (data covers "
                            f"{index[0]} .. {index[-1]}); pick dates inside the data")
        self.speed = float(speed)
        if self.speed < 0:
            raise UserError(f"live.replay.speed={speed} must be >= 0 (0 = as fast as possible)")
        self.warmup = int(warmup)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], live: LiveConfig, windows: Mapping[str, int],
                    bar: pd.Timedelta | None = None) -> ReplayFeed:
        """The run's data source, played over ``live.replay``'s dates or split (default: the test split).

        Its bars must be ``bar`` (the checkpoint's bar size) when one is given: one line otherwise.
        """
        replay = live.replay
        data_cfg = {k: v for k, v in cfg["data"].items() if k != "split"}
        frame, manifest = DATA_SOURCES.build(data_cfg).load()
        data_bar = bar_of_minutes(manifest["bar_minutes"]) if manifest.get("bar_minutes") else frame_bar(frame.index)
        if bar is not None and data_bar != bar:
            raise UserError(f"the checkpoint was trained on {timeframe_label(bar)} bars but the replayed data gives "
                            f"{timeframe_label(data_bar)} bars; replay {timeframe_label(bar)} bars "
                            f"(data.timeframe={timeframe_label(bar)})")
        bar = data_bar
        start, end = replay.start, replay.end
        if start is None and replay.split != "all":  # end alone: from the split's start, never the training data
            from kpremia.data.splits import split_from_config

            bounds = split_from_config(frame, cfg["data"].get("split") or {}, require=(replay.split,))
            lo, hi = bounds[replay.split]
            start = frame.index[lo]
            if end is None:
                end = frame.index[hi - 1]
            else:
                end_ts = pd.Timestamp(end)
                if (end_ts.tz_localize("UTC") if end_ts.tzinfo is None else end_ts) < start:
                    raise UserError(f"live.replay.end={end} is before the {replay.split} split, which starts at {start}: "
                                    "set live.replay.start as well (or live.replay.split=all to replay from the first "
                                    "bar)")
                log.warning("live.replay.end=%s without live.replay.start: replaying from the start of the %s split "
                            "(%s), not from the first bar of the data; set live.replay.start to choose", end,
                            replay.split, start)
        return cls(frame, start=start, end=end, speed=replay.speed,
                   warmup=warmup_bars(windows["window_1d"], windows["window_premium"], bar), bar=bar)

    @property
    def last_time(self) -> pd.Timestamp:
        return self.frame.index[self.end - 1]

    def connect(self) -> None:
        """Nothing to reach: the frame is in memory."""

    def history(self) -> pd.DataFrame:
        return self.frame.iloc[max(0, self.start - self.warmup):self.start]

    def bars(self, after: pd.Timestamp | None) -> Iterator[Bar]:
        begin = self.start if after is None else max(self.start, int(self.frame.index.searchsorted(after, "right")))
        delay = self.bar.total_seconds() / self.speed if self.speed > 0 else 0.0
        for i, bar in enumerate(frame_bars(self.frame.iloc[begin:self.end])):
            if delay and i:
                time.sleep(delay)
            yield bar

    def can_still_send(self, bar_time: pd.Timestamp) -> bool:
        return True  # replayed time waits for the runner: the next open is always still ahead


def _utc(value: Any, key: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise UserError(f"{key}={value!r} is not a date; use e.g. {key}=2025-01-01T00:00") from None
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")

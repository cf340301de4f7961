"""From a MarketFrame to per-split MarketTensors: observation tables + normaliser.

Why tables: everything in the observation that depends only on time is
computed once per bar here, so the batched simulator only gathers rows.  Row t
of every table describes the market at the close of bar t from bars ``<= t``:

* ``price_bars[t, j] = log(close[t - (W-1-j)] / close[t])``, j = 0..W-1 (last column 0);
* ``price_1d[t, j]  = log(daily_close[d_j] / close[t])`` over the last ``window_1d``
  completed UTC days (oldest first);
* ``premium[t, j]`` = premium of the last ``window_premium`` completed UTC days;
* ``features[t]`` = :mod:`kpremia.data.feature_formulas` at bar t (:mod:`kpremia.data.feature_table`).

Leakage guards: the frame is cut at the end of the last requested split
*before* anything is computed (``fit`` asks for train+val, so the test period is
never read), and the :class:`Normalizer` is fitted on train rows only and then
applied unchanged to every split (and, through its ``state_dict``, to live data).
Each split's tables are sliced from tables computed over the whole cut frame, so
the first val/test rows see their full history from the split before.  Rows
before a split's ``valid_from`` (the warm-up, only at the start of the data) are
all zeros; episodes never start there.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from kpremia.core.bars import DEFAULT_BAR, bar_minutes, frame_bar, timeframe_label, utc_timestamp
from kpremia.core.errors import UserError
from kpremia.core.spec import FEATURES, MARKET_KEYS, PREMIUM, PRICE_1D, PRICE_BARS, ObsSpec
from kpremia.data.daily import DailyHistory, daily_windows
from kpremia.data.feature_formulas import FEATURE_NAMES, feature_names
from kpremia.data.feature_table import IncrementalFeatures, feature_bars, feature_lookback, feature_matrix
from kpremia.data.repair import validate_frame
from kpremia.data.splits import bounds_to_dict, split_from_config
from kpremia.data.tensors import MarketTensors

log = logging.getLogger(__name__)



# --------------------------------------------------------------------------- tables

def build_obs_tables(
    frame: pd.DataFrame, window_bars: int = 15, window_1d: int = 10, window_premium: int = 10,
    bar: pd.Timedelta | None = None, features: tuple[str, ...] | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """Raw (un-normalised) observation tables of every bar, float64, and the first valid row.

    ``window_bars`` counts bars of the frame's bar size ``bar`` (None: the index's step);
    ``window_1d`` / ``window_premium`` count completed UTC days.

    Returns:
        ``(tables, valid_from)``: ``tables[key]`` is ``[T, W]``; rows before
        ``valid_from`` have NaN (incomplete windows); every row from it on is finite.
    """
    for name, w in (("window_bars", window_bars), ("window_1d", window_1d), ("window_premium", window_premium)):
        if int(w) < 1:
            raise UserError(f"{name}={w} must be >= 1; set env.{name} to a positive number of bars/days")
    bar = bar if bar is not None else frame_bar(frame.index)
    close = frame["close"].to_numpy(np.float64)
    log_close = np.log(close)
    padded = np.concatenate([np.full(window_bars - 1, np.nan), log_close])
    price_bars = np.lib.stride_tricks.sliding_window_view(padded, window_bars) - log_close[:, None]
    day_close, day_premium = daily_windows(frame, window_1d, window_premium, bar)
    tables = {
        PRICE_BARS: price_bars,
        PRICE_1D: np.log(day_close) - log_close[:, None],
        PREMIUM: day_premium,
        FEATURES: feature_matrix(frame, bar=bar, names=features).numpy(),
    }
    finite = np.ones(len(frame), dtype=bool)
    for table in tables.values():
        finite &= np.isfinite(table).all(axis=1)
    valid_from = int(np.argmax(finite)) if finite.any() else len(frame)
    if not finite[valid_from:].all():
        bad = valid_from + int(np.argmin(finite[valid_from:]))
        raise UserError(f"observation has non-finite values at {frame.index[bad].isoformat()} after the "
                        "warm-up; the market data has bad values there - validate it (repair=true)")
    return tables, valid_from


# --------------------------------------------------------------------------- normaliser

class Normalizer:
    """Per-key mean/std scaling (per column for ``features``), fitted on train rows only.

    ``x_norm = clip((x - mean) / std, -clip, clip)``; NaN (warm-up rows) become 0.
    A std below ``min_std`` is replaced by 1 (a constant input stays constant).
    Stored in checkpoints via :meth:`state_dict` so test and live reuse the
    training statistics.
    """

    def __init__(self, mean: Mapping[str, torch.Tensor], std: Mapping[str, torch.Tensor], clip: float = 10.0):
        self.mean = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in mean.items()}
        self.std = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in std.items()}
        self.clip = float(clip)

    @classmethod
    def fit(cls, tables: Mapping[str, np.ndarray | torch.Tensor], per_column: Sequence[str] = (FEATURES,),
            clip: float = 10.0, min_std: float = 1e-8) -> "Normalizer":
        """Statistics of ``tables`` (``[rows, W]`` each; pass train rows only)."""
        mean, std = {}, {}
        for key, table in tables.items():
            x = torch.as_tensor(np.asarray(table), dtype=torch.float64)
            dim = 0 if key in per_column else None
            m = x.mean(dim=dim) if dim is not None else x.mean()
            s = x.std(dim=dim, unbiased=False) if dim is not None else x.std(unbiased=False)
            if not bool(torch.isfinite(m).all() and torch.isfinite(s).all()):
                raise UserError(f"cannot fit the normaliser: {key} has non-finite values in train; "
                                "validate the data (repair=true)")
            mean[key] = m
            std[key] = torch.where(s < min_std, torch.ones_like(s), s)
        return cls(mean, std, clip)

    def normalize(self, key: str, x: np.ndarray | torch.Tensor, *, dtype: torch.dtype = torch.float32,
                  device: torch.device | str | None = None) -> torch.Tensor:
        """Normalise a ``[..., W]`` array of ``key`` (any leading dims); NaN -> 0."""
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(torch.float64)
        t = ((t.cpu() - self.mean[key]) / self.std[key]).clamp(-self.clip, self.clip)
        t = torch.nan_to_num(t, nan=0.0)
        return t.to(dtype=dtype, device=device)

    def normalize_obs(self, obs: Mapping[str, np.ndarray | torch.Tensor],
                      device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Normalise one live observation (``{key: [W]}`` or ``[1, W]``) to float32 ``[1, W]`` tensors.

        Keys the normaliser doesn't know (e.g. ``account``) pass through as float32.
        """
        out = {}
        for key, value in obs.items():
            t = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
            if t.ndim == 1:
                t = t[None]
            out[key] = (self.normalize(key, t, device=device) if key in self.mean
                        else t.to(dtype=torch.float32, device=device))
        return out

    def state_dict(self) -> dict[str, Any]:
        sd: dict[str, Any] = {"clip": self.clip}
        for k in self.mean:
            sd[f"mean.{k}"] = self.mean[k].clone()
            sd[f"std.{k}"] = self.std[k].clone()
        return sd

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.clip = float(state["clip"])
        keys = [k[len("mean."):] for k in state if k.startswith("mean.")]
        self.mean = {k: torch.as_tensor(state[f"mean.{k}"], dtype=torch.float64) for k in keys}
        self.std = {k: torch.as_tensor(state[f"std.{k}"], dtype=torch.float64) for k in keys}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> "Normalizer":
        norm = cls({}, {})
        norm.load_state_dict(state)
        return norm


# --------------------------------------------------------------------------- market data

@dataclass
class MarketData:
    """What :func:`build_market` returns: per-split tensors plus what describes them."""

    tensors: dict[str, MarketTensors]
    spec: ObsSpec
    normalizer: Normalizer
    manifest: dict
    split_bounds: dict[str, tuple[int, int]]
    windows: dict[str, int] = field(default_factory=dict)
    frame: pd.DataFrame | None = None  # the cut frame the tables were computed from
    bar: pd.Timedelta = DEFAULT_BAR  # the bar size of every split
    extra_features: tuple[str, ...] = ()  # optional features in the observation (env.extra_features)

    @property
    def bar_minutes(self) -> float:
        """The bar size in minutes (what checkpoints record and metrics annualise with)."""
        return bar_minutes(self.bar)
    # Further validation markets (other draws of a generated source, this run's normaliser): model
    # selection averages over them and tensors["val"] (kpremia.run.training.load_val_draws).
    val_draws: list[MarketTensors] = field(default_factory=list)

    def observation_builder(self) -> "ObservationBuilder":
        """A live, bar-by-bar builder with these windows, this normaliser and this bar size."""
        return ObservationBuilder(**self.windows, normalizer=self.normalizer, bar=self.bar,
                                  extra_features=self.extra_features)


def _split_tensors(frame: pd.DataFrame, tables: Mapping[str, np.ndarray], normalizer: Normalizer, name: str,
                   start: int, end: int, valid_from: int, device: torch.device | str,
                   bar: pd.Timedelta, features: tuple[str, ...] = FEATURE_NAMES) -> MarketTensors:
    part = frame.iloc[start:end]

    def col(c: str) -> torch.Tensor:
        return torch.from_numpy(part[c].to_numpy(np.float64).copy()).to(device)

    obs = {k: normalizer.normalize(k, tables[k][start:end], device=device) for k in MARKET_KEYS}
    for table in obs.values():  # warm-up rows (incomplete windows) are all zeros, never partial
        table[:valid_from] = 0.0
    return MarketTensors(
        times=part.index.tz_convert(None).to_numpy(dtype="datetime64[ns]"),
        open=col("open"), high=col("high"), low=col("low"), close=col("close"), fx=col("fx"),
        premium=col("premium"), obs=obs, valid_from=valid_from, feature_names=features, name=name,
        bar_minutes=bar_minutes(bar),
    )


def build_market(
    frame: pd.DataFrame,
    split_cfg: Mapping[str, Any] | None = None,
    windows: Mapping[str, int] | None = None,
    *,
    window_bars: int = 15,
    window_1d: int = 10,
    window_premium: int = 10,
    splits: Sequence[str] = ("train", "val"),
    device: torch.device | str = "cpu",
    source_manifest: Mapping[str, Any] | None = None,
    validate: bool = True,
    normalizer: Normalizer | None = None,
    bar: pd.Timedelta | None = None,
    extra_features: Sequence[str] = (),
) -> MarketData:
    """Cut, tabulate, normalise and move a MarketFrame to the device, one MarketTensors per split.

    Args:
        frame: a MarketFrame (from ``source.load()``).
        split_cfg: :func:`kpremia.data.splits.split_frame` options (``train_end``,
            ``val_end``, ``train_frac``, ``val_frac``, ``embargo_bars``).
        windows: optional mapping with ``window_bars``/``window_1d``/``window_premium``
            (e.g. the env config); its values win over the keyword defaults.
        splits: which splits to build; the frame is cut at the end of the last one
            before anything is computed, and ``train`` is always needed for the normaliser
            (unless ``normalizer`` is given).  ``"all"`` is every bar of the frame.
        normalizer: a saved normaliser (a checkpoint's) to apply instead of fitting one on
            train, so a policy sees its training statistics on any data.
        device: where the tensors go.
        source_manifest: the source's manifest; the result's manifest extends it.
        validate: re-check the cut frame strictly (no repairs) before use.
        bar: the frame's bar size (None: the index's step); windows, features and the
            warm-up follow it.
        extra_features: optional features added to the default ones
            (:data:`kpremia.data.feature_formulas.OPTIONAL_FEATURE_NAMES`, ``env.extra_features``).

    Raises:
        UserError: bad split config, empty split, too little data for the warm-up,
            or a frame that isn't a valid MarketFrame.
    """
    t0 = time.perf_counter()
    names = feature_names(tuple(extra_features))
    w = {"window_bars": int(window_bars), "window_1d": int(window_1d), "window_premium": int(window_premium)}
    if windows:
        unknown = sorted(set(windows) - set(w))
        if unknown:
            raise UserError(f"unknown window option(s) {', '.join(unknown)}; known: {', '.join(w)}")
        w.update({k: int(v) for k, v in windows.items()})
    splits = tuple(splits)
    if "train" not in splits and normalizer is None:
        splits = ("train", *splits)  # the normaliser is always fitted on train
    named = tuple(s for s in splits if s != "all")
    bounds = split_from_config(frame, split_cfg, require=named) if named else {}
    if "all" in splits:
        bounds["all"] = (0, len(frame))
    cut_end = max(bounds[s][1] for s in splits)
    cut = frame.iloc[:cut_end]
    bar = bar if bar is not None else frame_bar(frame.index)
    if validate:
        # The premium is the source's (its basis, e.g. premium_basis=btc, is not close / fx - 1).
        cut, _ = validate_frame(cut, bar=bar, repair=False, keep_premium=True)

    tables, valid_from = build_obs_tables(cut, **w, bar=bar, features=names)
    train_start, train_end = bounds.get("train", (0, len(cut)))
    if normalizer is None and valid_from >= train_end:
        raise UserError(too_short_message(train_end, valid_from, w, bar))
    if normalizer is None:
        normalizer = Normalizer.fit({k: v[valid_from:train_end] for k, v in tables.items()})

    tensors: dict[str, MarketTensors] = {}
    for name in splits:
        start, end = bounds[name]
        split_valid = max(0, valid_from - start)
        if split_valid >= end - start:
            raise UserError(f"the {name} split ({end - start} {timeframe_label(bar)} bars) ends before the "
                            f"observation warm-up ({valid_from + 1} bars) is complete; give it more bars or move "
                            "the split dates")
        tensors[name] = _split_tensors(cut, tables, normalizer, name, start, end, split_valid, device, bar, names)

    spec = ObsSpec.default(**w, feature_names=names)
    requested = {k: bounds[k] for k in splits}
    elapsed = time.perf_counter() - t0
    manifest = dict(source_manifest or {})
    manifest.update({
        "splits": bounds_to_dict(cut, requested),
        "market": {
            "cut_rows": int(cut_end), "cut_last_bar": cut.index[-1].isoformat(), "windows": w,
            "timeframe": timeframe_label(bar), "bar_minutes": bar_minutes(bar),
            "feature_names": list(names), "feature_lookback": feature_lookback(bar, names),
            "feature_bars": feature_bars(bar, names),
            "valid_from": {k: int(t.valid_from) for k, t in tensors.items()},
            "spec": spec.to_dict(), "build_seconds": round(elapsed, 3),
        },
    })
    log.info("market built in %.2fs: %s", elapsed,
             ", ".join(f"{k} {t.n_bars} bars (valid from {t.valid_from})" for k, t in tensors.items()))
    return MarketData(tensors=tensors, spec=spec, normalizer=normalizer, manifest=manifest,
                      split_bounds=requested, windows=w, frame=cut, bar=bar,
                      extra_features=tuple(dict.fromkeys(extra_features)))


def too_short_message(train_bars: int, valid_from: int, windows: Mapping[str, int], bar: pd.Timedelta) -> str:
    """One line: the train split is shorter than the observation's warm-up, in bars and time, and the fix."""
    label = timeframe_label(bar)
    days = max(windows["window_1d"], windows["window_premium"])
    return (f"too short: the train split has {train_bars} {label} bars ({train_bars * bar / pd.Timedelta(days=1):.1f} "
            f"days) but the observation needs {valid_from + 1} bars of warm-up before its first complete row "
            f"(features: {feature_lookback(bar)} bars = 7 days + 1 bar; price window: {windows['window_bars']} bars; "
            f"daily windows: {days} completed UTC days); use a longer file, move split.train_end later (or raise "
            "split.train_frac), or shrink env.window_bars / env.window_1d / env.window_premium")


# --------------------------------------------------------------------------- live

class ObservationBuilder:
    """Bar-by-bar observation rows for live use, equal to :func:`build_obs_tables` rows.

    Uses the same feature functions (:class:`IncrementalFeatures`) and daily
    rule (:class:`DailyHistory`) as the batch path; missing bars are filled as
    no-trade bars like :func:`kpremia.data.repair.validate_frame` does.
    """

    def __init__(self, window_bars: int = 15, window_1d: int = 10, window_premium: int = 10,
                 normalizer: Normalizer | None = None, bar: pd.Timedelta = DEFAULT_BAR,
                 extra_features: Sequence[str] = ()) -> None:
        self.window_bars = window_bars
        self.normalizer = normalizer
        self.bar = bar
        self.features = IncrementalFeatures(bar, feature_names(tuple(extra_features)))
        self.daily = DailyHistory(window_1d, window_premium, bar)
        self._closes: deque[float] = deque(maxlen=window_bars)
        self._last_time: pd.Timestamp | None = None

    @property
    def ready(self) -> bool:
        """True once every part of the observation is complete (no NaN)."""
        return (self.features.ready and len(self._closes) == self.window_bars
                and not np.isnan(self.daily.closes()).any() and not np.isnan(self.daily.premiums()).any())

    def update(self, bar: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Add one closed bar (see :meth:`IncrementalFeatures.update`); raw float64 tables rows ``{key: [W]}``."""
        time_ = utc_timestamp(bar["time"])
        if self._last_time is not None and time_ > self._last_time + self.bar and self._closes:
            missing = int((time_ - self._last_time) / self.bar) - 1
            for _ in range(min(missing, self.window_bars)):
                self._closes.append(self._closes[-1])
        close = float(bar["close"])
        premium = float(bar["premium"]) if bar.get("premium") is not None else close / float(bar["fx"]) - 1.0
        feats = self.features.update(bar)  # raises on out-of-order bars before any state below changes
        self.daily.update(time_, close, premium)
        self._closes.append(close)
        self._last_time = time_
        log_close = np.log(close)
        closes = np.full(self.window_bars, np.nan)
        closes[self.window_bars - len(self._closes):] = np.log(np.array(self._closes))
        return {
            PRICE_BARS: closes - log_close,
            PRICE_1D: np.log(self.daily.closes()) - log_close,
            PREMIUM: self.daily.premiums(),
            FEATURES: feats,
        }

    def observe(self, bar: Mapping[str, Any], device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """:meth:`update` then normalise: float32 ``[1, W]`` tensors (the env adds ``account``)."""
        if self.normalizer is None:
            raise ValueError("ObservationBuilder has no normalizer; pass the one saved with the checkpoint")
        return self.normalizer.normalize_obs(self.update(bar), device=device)

    def warm_up(self, frame: pd.DataFrame) -> None:
        """Feed the history of a MarketFrame (e.g. the last days before going live)."""
        for ts, row in zip(frame.index, frame.itertuples(index=False), strict=True):
            self.update({"time": ts, **row._asdict()})

    def state_dict(self) -> dict:
        return {"features": self.features.state_dict(), "daily": self.daily.state_dict(),
                "closes": list(self._closes),
                "last_time": None if self._last_time is None else self._last_time.isoformat()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.features.load_state_dict(state["features"])
        self.daily.load_state_dict(state["daily"])
        self._closes.clear()
        self._closes.extend(state["closes"])
        self._last_time = None if state["last_time"] is None else utc_timestamp(state["last_time"])

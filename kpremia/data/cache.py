"""Parquet cache of exchange candles, one dataset per (exchange, symbol, timeframe).

Why a cache: fetching 17 months of 15m Upbit candles is ~240 rate-limited
requests; a research loop must not repeat them, and a run must be reproducible
offline.  The cache stores the *raw* candles (no FX, no premium), so the FX
source or premium definition can change without refetching.

Layout under the data directory (``data.cache_dir``, default
``$KPREMIA_DATA_DIR`` or ``~/.cache/kpremia``)::

    ohlcv/<exchange>/<SYMBOL>/<timeframe>.parquet        candles (index: bar open time, UTC)
    ohlcv/<exchange>/<SYMBOL>/<timeframe>.manifest.json  what the parquet holds (see below)

``SYMBOL`` is the unified symbol with ``/`` -> ``-`` and ``:`` -> ``_`` (``USDT/KRW`` -> ``USDT-KRW``).

The manifest records the source, exchange, symbol, timeframe, first/last bar,
rows, gaps, the *coverage* (time ranges already scanned, so a market that did
not trade or did not exist yet is not rescanned), the sha256 of the parquet
file and ``fetched_at``.  A second fetch downloads only what the coverage
lacks.

Integrity rules:

* Every write is atomic: temp file in the same directory, ``fsync``,
  ``os.replace`` (and a best-effort directory fsync).  Parquet first, manifest
  second; the manifest is the commit point.  A crash in between leaves a parquet
  whose sha256 does not match the manifest, which the next read detects.
* A dataset whose parquet is unreadable, whose manifest is unreadable, or whose
  sha256 differs from the manifest is logged, moved aside as ``*.corrupt`` and
  treated as absent (refetched).  It is never used.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from kpremia.core.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")
MANIFEST_VERSION = 1
ENV_DATA_DIR = "KPREMIA_DATA_DIR"

Interval = tuple[int, int]
"""A half-open time range ``[start_ms, end_ms)`` in epoch milliseconds (UTC)."""


# --------------------------------------------------------------------------- paths


def default_cache_dir() -> Path:
    """``$KPREMIA_DATA_DIR`` if set, else ``~/.cache/kpremia``."""
    env = os.environ.get(ENV_DATA_DIR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kpremia"


@dataclass(frozen=True)
class DatasetKey:
    """Identity of a cached candle series: ``exchange:symbol:timeframe``."""

    exchange: str
    symbol: str
    timeframe: str

    @property
    def id(self) -> str:
        return f"{self.exchange}:{self.symbol}:{self.timeframe}"

    @property
    def symbol_slug(self) -> str:
        return self.symbol.replace("/", "-").replace(":", "_")

    def relpath(self) -> Path:
        return Path("ohlcv") / self.exchange / self.symbol_slug / self.timeframe

    @classmethod
    def parse(cls, text: str) -> DatasetKey:
        """Parse ``upbit:USDT/KRW:15m`` (the id printed by ``data fetch``)."""
        parts = text.split(":")
        if len(parts) < 3 or not all(parts):
            raise ValueError(f"not a dataset id: {text!r} (expected exchange:symbol:timeframe)")
        # a derivative symbol may itself contain ':' (BTC/USDT:USDT)
        return cls(parts[0], ":".join(parts[1:-1]), parts[-1])


# --------------------------------------------------------------------------- atomic io


def parquet_bytes(df: pd.DataFrame) -> bytes:
    """Serialise a frame to parquet in memory, so its sha256 is of exactly the bytes written."""
    buf = io.BytesIO()
    df.to_parquet(buf, engine="pyarrow")
    return buf.getvalue()


def atomic_write_parquet(path: Path, df: pd.DataFrame) -> str:
    """Write ``df`` atomically as parquet; returns the sha256 of the file."""
    data = parquet_bytes(df)
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- intervals


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted union of half-open intervals; touching intervals are joined."""
    out: list[list[int]] = []
    for start, end in sorted((int(a), int(b)) for a, b in intervals if b > a):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def subtract_intervals(want: Interval, have: Iterable[Interval]) -> list[Interval]:
    """Parts of ``want`` not covered by ``have`` (what still has to be fetched)."""
    start, end = want
    missing: list[Interval] = []
    cursor = start
    for a, b in merge_intervals(have):
        if b <= cursor or a >= end:
            continue
        if a > cursor:
            missing.append((cursor, min(a, end)))
        cursor = max(cursor, b)
        if cursor >= end:
            break
    if cursor < end:
        missing.append((cursor, end))
    return missing


def ms_to_iso(ms: int) -> str:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").isoformat()


def iso_to_ms(text: str) -> int:
    ts = pd.Timestamp(text)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value // 1_000_000)


# --------------------------------------------------------------------------- candles


def empty_candles() -> pd.DataFrame:
    index = pd.DatetimeIndex([], tz="UTC", name="time").as_unit("ms")
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in OHLCV_COLUMNS}, index=index)


def candles_from_rows(rows: Iterable[list[Any]]) -> pd.DataFrame:
    """ccxt OHLCV rows ``[ms, o, h, l, c, v]`` -> canonical candles frame (sorted, deduped)."""
    rows = list(rows)
    if not rows:
        return empty_candles()
    df = pd.DataFrame(rows, columns=["time", *OHLCV_COLUMNS])
    df["time"] = pd.to_datetime(df["time"].astype("int64"), unit="ms", utc=True).dt.as_unit("ms")
    df = df.set_index("time").astype("float64")
    return normalise_candles(df)


def normalise_candles(df: pd.DataFrame) -> pd.DataFrame:
    """Sort by time and drop duplicate bars; a later copy of a bar wins (it is the fresher fetch)."""
    df = df[~df.index.duplicated(keep="last")].sort_index()
    df.index = pd.DatetimeIndex(df.index).as_unit("ms")  # exchanges speak ms; one unit in and out of parquet
    df.index.name = "time"
    return df[list(OHLCV_COLUMNS)].astype("float64")


def merge_candles(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    if old.empty:
        return normalise_candles(new)
    if new.empty:
        return normalise_candles(old)
    return normalise_candles(pd.concat([old, new]))


def gap_summary(index: pd.DatetimeIndex, bar: pd.Timedelta) -> dict[str, Any]:
    """Missing bars between the first and the last bar (no-trade bars for candle data)."""
    if len(index) < 2:
        return {"count": 0, "missing_bars": 0, "longest_bars": 0, "longest_start": None}
    steps = (pd.Series(index[1:] - index[:-1]) / bar).round().astype("int64") - 1
    gaps = steps[steps > 0]
    if gaps.empty:
        return {"count": 0, "missing_bars": 0, "longest_bars": 0, "longest_start": None}
    i = int(gaps.idxmax())
    return {
        "count": int(len(gaps)),
        "missing_bars": int(gaps.sum()),
        "longest_bars": int(gaps.max()),
        "longest_start": (index[i] + bar).isoformat(),
    }


# --------------------------------------------------------------------------- the cache


class CachedOhlcv(NamedTuple):
    candles: pd.DataFrame
    coverage: list[Interval]
    manifest: dict[str, Any]


class CacheCorrupt(Exception):
    """The cached parquet or manifest cannot be trusted."""


class OhlcvCache:
    """Parquet + manifest store of candle datasets under ``root``."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_cache_dir()

    def paths(self, key: DatasetKey) -> tuple[Path, Path]:
        base = self.root / key.relpath()
        return base.with_suffix(".parquet"), base.with_suffix(".manifest.json")

    def exists(self, key: DatasetKey) -> bool:
        parquet, manifest = self.paths(key)
        return parquet.exists() or manifest.exists()

    def load(self, key: DatasetKey) -> CachedOhlcv | None:
        """The verified dataset, or ``None`` when absent or untrustworthy (logged, moved aside)."""
        parquet, manifest_path = self.paths(key)
        if not parquet.exists() and not manifest_path.exists():
            return None
        try:
            return self._read_verified(key, parquet, manifest_path)
        except CacheCorrupt as exc:
            log.warning("cache for %s is unusable (%s); moving it aside and refetching", key.id, exc)
            self._quarantine(parquet, manifest_path)
            return None

    def _read_verified(self, key: DatasetKey, parquet: Path, manifest_path: Path) -> CachedOhlcv:
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise CacheCorrupt(f"manifest {manifest_path} unreadable: {exc}") from None
        if not isinstance(manifest, Mapping) or "sha256" not in manifest:
            raise CacheCorrupt(f"manifest {manifest_path} has no sha256")
        try:
            data = parquet.read_bytes()
        except OSError as exc:
            raise CacheCorrupt(f"parquet {parquet} unreadable: {exc}") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != manifest["sha256"]:
            raise CacheCorrupt(f"sha256 of {parquet.name} is {digest[:12]}…, manifest says {str(manifest['sha256'])[:12]}…")
        try:
            df = pd.read_parquet(io.BytesIO(data), engine="pyarrow")
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise CacheCorrupt(f"parquet {parquet.name} unreadable: {type(exc).__name__}: {exc}") from None
        missing = [c for c in OHLCV_COLUMNS if c not in df.columns]
        if missing or not isinstance(df.index, pd.DatetimeIndex) or df.index.tz is None:
            raise CacheCorrupt(f"parquet {parquet.name} is not a candle table (missing {missing or 'UTC index'})")
        for field in ("exchange", "symbol", "timeframe"):
            if manifest.get(field) != getattr(key, field):
                raise CacheCorrupt(f"manifest {field}={manifest.get(field)!r} does not match {key.id}")
        coverage = merge_intervals((iso_to_ms(a), iso_to_ms(b)) for a, b in manifest.get("coverage", []))
        return CachedOhlcv(normalise_candles(df), coverage, dict(manifest))

    @staticmethod
    def _quarantine(*paths: Path) -> None:
        for path in paths:
            if path.exists():
                try:
                    os.replace(path, path.with_name(path.name + ".corrupt"))
                except OSError as exc:
                    log.warning("could not move %s aside: %s", path, exc)

    def save(
        self,
        key: DatasetKey,
        candles: pd.DataFrame,
        coverage: Iterable[Interval],
        *,
        bar: pd.Timedelta,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Atomically write candles then the manifest (the commit point); returns the manifest."""
        parquet, manifest_path = self.paths(key)
        candles = normalise_candles(candles)
        sha = atomic_write_parquet(parquet, candles)
        coverage = merge_intervals(coverage)
        idx = candles.index
        expected = int(round((idx[-1] - idx[0]) / bar)) + 1 if len(idx) else 0
        manifest: dict[str, Any] = {
            "version": MANIFEST_VERSION,
            "dataset": key.id,
            "source": "ccxt",
            "exchange": key.exchange,
            "symbol": key.symbol,
            "timeframe": key.timeframe,
            "first_bar": idx[0].isoformat() if len(idx) else None,
            "last_bar": idx[-1].isoformat() if len(idx) else None,
            "rows": int(len(idx)),
            "expected_rows": expected,
            "gaps": gap_summary(idx, bar),
            "coverage": [[ms_to_iso(a), ms_to_iso(b)] for a, b in coverage],
            "file": parquet.name,
            "sha256": sha,
            "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if extra:
            manifest.update({k: v for k, v in extra.items() if k not in manifest})
        atomic_write_json(manifest_path, manifest)
        return manifest

    def datasets(self) -> list[DatasetKey]:
        """Every dataset with a manifest under the root (for ``data inspect`` listings)."""
        keys = []
        for path in sorted((self.root / "ohlcv").glob("*/*/*.manifest.json")):
            try:
                m = json.loads(path.read_text())
                keys.append(DatasetKey(m["exchange"], m["symbol"], m["timeframe"]))
            except (OSError, ValueError, KeyError):
                continue
        return keys

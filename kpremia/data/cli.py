"""``kpremia data fetch`` and ``kpremia data inspect``.

The main CLI dispatches ``python -m kpremia data fetch ...`` to :func:`fetch_main`
and ``data inspect ...`` to :func:`inspect_main`.  Both return 0 on success; a
user mistake raises :class:`~kpremia.core.errors.UserError` (argparse mistakes too),
which the main CLI prints as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from kpremia.core.bars import DEFAULT_BAR, DEFAULT_TIMEFRAME, frame_bar
from kpremia.core.errors import UserError
from kpremia.core.io import atomic_write_json
from kpremia.data.cache import (
    OHLCV_COLUMNS,
    DatasetKey,
    OhlcvCache,
    atomic_write_parquet,
    gap_summary,
)

log = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    """argparse that raises UserError (one line, exit 2 via the main CLI) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{self.prog}: {message}; see {self.prog} --help")


def _ensure_logging() -> None:
    """Show INFO logs when run as a command and nothing configured logging yet."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


# --------------------------------------------------------------------------- fetch


def _fetch_parser() -> _Parser:
    p = _Parser(prog="kpremia data fetch",
                description="Download exchange candles into the cache (resumable) and build the MarketFrame.")
    p.add_argument("--exchange", default="upbit", help="ccxt exchange id (default upbit)")
    p.add_argument("--symbol", default="USDT/KRW", help="unified symbol (default USDT/KRW)")
    p.add_argument("--timeframe", default=DEFAULT_TIMEFRAME,
                   help=f"candle timeframe: the bar size (default {DEFAULT_TIMEFRAME}; 1h, 4h, 1d, ...)")
    p.add_argument("--start", required=True, help="first day (YYYY-MM-DD, UTC) or ISO timestamp")
    p.add_argument("--end", default=None, help="last day, inclusive (YYYY-MM-DD) or exclusive ISO timestamp; "
                                               "default now")
    p.add_argument("--fx", default="ecb", help="'ecb' (bundled ECB reference rates) or a CSV path")
    p.add_argument("--cache-dir", default=None, help="data directory (default $KPREMIA_DATA_DIR or ~/.cache/kpremia)")
    p.add_argument("--page-size", type=int, default=None, help="candles per request (default: exchange maximum)")
    p.add_argument("--max-retries", type=int, default=5)
    p.add_argument("--retry-base-delay", type=float, default=1.0, help="seconds; doubles each retry")
    p.add_argument("--fallback", nargs="*", default=[], metavar="EXCHANGE", help="exchanges to try in order")
    p.add_argument("--premium-basis", choices=("usdt", "btc"), default="usdt")
    p.add_argument("--out", default=None, help="also write the MarketFrame here (.parquet, + .manifest.json)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def fetch_main(argv: Sequence[str], *, exchange_factory: Any = None) -> int:
    """``data fetch``: fill the cache for a period; print coverage and the fetch rate.

    ``exchange_factory`` (tests, replays) builds the ccxt exchange from an id.
    """
    from kpremia.data.ccxt_source import CcxtSource

    args = _fetch_parser().parse_args(list(argv))
    _ensure_logging()
    source = CcxtSource(
        exchange=args.exchange, symbol=args.symbol, timeframe=args.timeframe, start=args.start, end=args.end,
        page_size=args.page_size, max_retries=args.max_retries, retry_base_delay_s=args.retry_base_delay,
        fallback_exchanges=args.fallback, cache_dir=args.cache_dir, fx=args.fx, premium_basis=args.premium_basis,
        progress=not args.no_progress, exchange_factory=exchange_factory,
        failure_fix="or try other exchanges in order with --fallback EXCHANGE [EXCHANGE ...] (e.g. --fallback bithumb)",
    )
    cache = source.cache or OhlcvCache(args.cache_dir)
    try:
        frame, manifest = source.load()
    except UserError as exc:
        raise UserError(in_flags(str(exc))) from None
    if manifest.get("synthetic"):  # only with allow_synthetic_fallback, never set here
        raise UserError(f"no exchange data: {manifest.get('fallback_reason')}")
    key = DatasetKey(manifest["exchange"], manifest["symbol"], args.timeframe)
    print(_format_coverage(key.id, coverage_of_frame(frame, _bar(args.timeframe))))
    _print_fetch_stats(source, cache, key)
    if args.out:
        out = Path(args.out).expanduser()
        atomic_write_parquet(out, frame)
        atomic_write_json(out.with_suffix(".manifest.json"), manifest)
        basis = f" data.premium_basis={args.premium_basis}" if args.premium_basis != "usdt" else ""
        print(f"MarketFrame written to {out} (manifest {out.with_suffix('.manifest.json').name}); train on it "
              f"with: python -m kpremia fit data=parquet data.path={out}{basis}")
    return 0


# What `fit` calls data.<key>, `data fetch` takes as a flag: its errors name the flag.
_FETCH_FLAGS = {"data.fallback_exchanges": "--fallback", "data.exchange": "--exchange", "data.symbol": "--symbol",
                "data.timeframe": "--timeframe", "data.start": "--start", "data.end": "--end",
                "data.page_size": "--page-size", "data.max_retries": "--max-retries",
                "data.retry_base_delay_s": "--retry-base-delay", "data.premium_basis": "--premium-basis"}


def in_flags(message: str) -> str:
    """A data-source error reworded for ``data fetch``: its config keys become the command's flags."""
    for key, flag in sorted(_FETCH_FLAGS.items(), key=lambda kv: -len(kv[0])):
        message = re.sub(rf"{re.escape(key)}\b", flag, message)
    return message


def _bar(timeframe: str) -> pd.Timedelta:
    from kpremia.data.exchange import timeframe_ms

    return pd.Timedelta(milliseconds=timeframe_ms(timeframe))


def _print_fetch_stats(source: Any, cache: OhlcvCache, key: DatasetKey) -> None:
    parquet, manifest = cache.paths(key)
    print(f"  cache            {parquet}")
    for name, st in source.last_stats.items():
        if st.requests == 0:
            print(f"  fetched          {name}: nothing new (cache complete for the period)")
            continue
        rate = st.requests / st.seconds if st.seconds > 0 else float("inf")
        print(f"  fetched          {name}: {st.requests} requests, {st.bars_scanned:,} bars scanned in "
              f"{st.seconds:.1f} s ({rate:.1f} req/s, {st.bars_scanned / max(st.seconds, 1e-9) * 60:,.0f} bars/min)")


# --------------------------------------------------------------------------- coverage


def coverage_of_candles(candles: pd.DataFrame, bar: pd.Timedelta = DEFAULT_BAR) -> dict[str, Any]:
    """First/last bar, rows, expected rows and missing-bar gaps of raw candles."""
    idx = candles.index
    gaps = gap_summary(idx, bar)
    expected = int(round((idx[-1] - idx[0]) / bar)) + 1 if len(idx) else 0
    return {"first_bar": idx[0].isoformat() if len(idx) else None,
            "last_bar": idx[-1].isoformat() if len(idx) else None,
            "rows": int(len(idx)), "expected_rows": expected,
            "gaps": gaps["count"], "missing_bars": gaps["missing_bars"], "longest_gap_bars": gaps["longest_bars"]}


def coverage_of_frame(frame: pd.DataFrame, bar: pd.Timedelta = DEFAULT_BAR) -> dict[str, Any]:
    """Coverage of a MarketFrame; gaps there were filled, so no-trade bars (volume 0) are counted too."""
    out = coverage_of_candles(frame, bar)
    no_trade = (frame["volume"].to_numpy() == 0) if "volume" in frame else np.zeros(len(frame), bool)
    runs = _run_lengths(no_trade)
    out.update({"no_trade_bars": int(no_trade.sum()), "no_trade_runs": len(runs),
                "longest_no_trade_bars": int(max(runs, default=0))})
    return out


def _run_lengths(mask: np.ndarray) -> list[int]:
    if not mask.any():
        return []
    m = np.concatenate([[0], mask.astype(np.int8), [0]])
    d = np.diff(m)
    return list(np.flatnonzero(d == -1) - np.flatnonzero(d == 1))


def _format_coverage(title: str, cov: Mapping[str, Any]) -> str:
    lines = [f"{title}", "coverage",
             f"  first bar        {cov['first_bar']}",
             f"  last bar         {cov['last_bar']}",
             f"  rows             {cov['rows']:,}",
             f"  expected rows    {cov['expected_rows']:,}",
             f"  gaps             {cov['gaps']:,} ({cov['missing_bars']:,} missing bars, longest "
             f"{cov['longest_gap_bars']:,})"]
    if "no_trade_bars" in cov and cov["no_trade_bars"] is None:
        lines.append("  no-trade bars    unknown (the file has no volume)")
    elif "no_trade_bars" in cov:
        lines.append(f"  no-trade bars    {cov['no_trade_bars']:,} in {cov['no_trade_runs']:,} runs, longest "
                     f"{cov['longest_no_trade_bars']:,}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- inspect


def _inspect_parser() -> _Parser:
    p = _Parser(prog="kpremia data inspect",
                description="Coverage and premium/FX statistics of a dataset (daily samples at 09:00 KST). A csv or "
                            "parquet file is read exactly as `fit data=csv|parquet data.path=<file>` reads it, "
                            "with the same data.* options.")
    p.add_argument("target", help="a .csv/.parquet file (read like data=csv|parquet) or a cached dataset id "
                                  "exchange:symbol:timeframe (e.g. upbit:USDT/KRW:15m)")
    p.add_argument("overrides", nargs="*", metavar="data.KEY=VALUE",
                   help="the data options of fit for a file, e.g. data.time_column=Date "
                        "'data.columns={trade_price: close}' data.timeframe=1h 'data.read_kwargs={skiprows: 1}'")
    p.add_argument("--fx", default=None, help="USD/KRW: for a file without fx the same as data.fx_path (a CSV, an "
                                              "ECB file, or 'ecb'); for a cached dataset 'ecb' (default) or a CSV")
    p.add_argument("--cache-dir", default=None, help="data directory holding cached datasets")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p


FILE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def file_source_config(path: Path, overrides: Sequence[str], fx: str | None = None) -> dict[str, Any]:
    """The ``data`` config ``fit data=csv|parquet data.path=<path> <overrides>`` would use (real Hydra composition)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from kpremia.core.compose import compose_config

    fmt = FILE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"{path}: not a .csv or .parquet file; inspect reads files like data=csv / data=parquet")
    bad = [o for o in overrides if not o.lstrip("+~").startswith("data.")]
    if bad:
        raise UserError(f"`data inspect` takes data options only (data.KEY=VALUE), not {bad[0]!r}")
    extra = list(overrides)
    if fx is not None and not any(o.lstrip("+~").startswith("data.fx_path=") for o in overrides):
        extra.append(f"data.fx_path={fx}")
    try:
        data = compose_config([f"data={fmt}", f"data.path={path}", *extra])["data"]
    except (HydraException, OmegaConfBaseException) as exc:
        text = " ".join(str(exc).split()).split(" Config search path:")[0]
        raise UserError(f"{text} - the data options are those of `fit data={fmt}` (docs/data.md)") from None
    return {k: v for k, v in data.items() if k != "split"}


def load_target(target: str, cache_dir: str | None = None) -> tuple[pd.DataFrame, str]:
    """Candles of a cached dataset id (exchange:symbol:timeframe)."""
    cache = OhlcvCache(cache_dir)
    try:
        key = DatasetKey.parse(target)
    except ValueError:
        known = ", ".join(k.id for k in cache.datasets()) or "(none cached)"
        raise UserError(f"{target!r} is neither a file nor a dataset id exchange:symbol:timeframe; cached in "
                        f"{cache.root}: {known}") from None
    cached = cache.load(key)
    if cached is None:
        known = ", ".join(k.id for k in cache.datasets()) or "(none)"
        raise UserError(f"no usable cached dataset {key.id} in {cache.root}; run `kpremia data fetch` first "
                        f"(cached: {known})")
    return cached.candles, key.id


def inspect_file(path: Path, overrides: Sequence[str], fx: str | None = None) -> dict[str, Any]:
    """Coverage, what reading the file did (order, inserted bars, assumptions) and ``market_stats``."""
    from kpremia.core.bars import bar_of_minutes
    from kpremia.core.registry import DATA_SOURCES
    from kpremia.data.stats import market_stats

    data_cfg = file_source_config(path, overrides, fx)
    frame, manifest = DATA_SOURCES.get(data_cfg["name"])(**{k: v for k, v in data_cfg.items() if k != "name"}).load()
    bar = bar_of_minutes(manifest["bar_minutes"])
    report: dict[str, Any] = {"bar": manifest["timeframe"], "coverage": coverage_of_frame(frame, bar),
                              "fx_source": manifest.get("fx_path") or "from file",
                              "file": {k: manifest.get(k) for k in (
                                  "file_spacing", "row_order", "inserted_bars", "assumed", "replaced_columns",
                                  "resampled_from", "premium_basis", "checks")}}
    if "volume" in (manifest.get("assumed") or {}):  # volume 0 was assumed: every bar would look like no trade
        report["coverage"].update(no_trade_bars=None, no_trade_runs=None, longest_no_trade_bars=None)
    report["stats"] = market_stats(frame, bar)
    return report


def inspect_report(df: pd.DataFrame, *, fx: str = "ecb") -> dict[str, Any]:
    """Coverage and ``market_stats`` of cached candles (15m or any timeframe) or a MarketFrame."""
    from kpremia.data.assemble import assemble_frame
    from kpremia.data.fx import FxSettings, load_fx
    from kpremia.data.stats import market_stats

    missing = [c for c in ("close",) if c not in df.columns]
    if missing:
        raise UserError(f"data has no {missing[0]} column (columns: {', '.join(map(str, df.columns))}); "
                        "inspect needs candles or a MarketFrame")
    bar = frame_bar(df.index)
    report: dict[str, Any] = {"bar": str(bar)}
    if {"fx", "premium"} <= set(df.columns):
        frame = df
        report["coverage"] = coverage_of_frame(frame, bar)
        report["fx_source"] = "from file"
    else:
        report["coverage"] = coverage_of_candles(df, bar)
        settings = FxSettings.from_config(fx)
        series = load_fx(settings.source, path=settings.path)
        candles = df[[c for c in OHLCV_COLUMNS if c in df.columns]].astype("float64")
        if "volume" not in candles:
            candles["volume"] = 0.0
        frame, _ = assemble_frame(candles, series, max_staleness=settings.max_staleness, bar=bar)
        report["fx_source"] = settings.describe()["label"]
        report["coverage"].update({k: v for k, v in coverage_of_frame(frame, bar).items() if "no_trade" in k})
    report["stats"] = market_stats(frame, bar)
    return report


def _pct(x: float, signed: bool = True) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:+.2f} %" if signed else f"{x:.2f} %"


def format_report(title: str, report: Mapping[str, Any]) -> str:
    lines = [_format_coverage(f"{title} ({report.get('bar')} bars)" if report.get("file") else title,
                              report["coverage"])]
    info = report.get("file")
    if info:
        order = info.get("row_order") or {}
        lines.append(f"  rows in file     {order.get('order')}, {order.get('rows_moved', 0):,} moved by sorting, "
                     f"{order.get('identical_duplicates_dropped', 0):,} identical repeats dropped")
        lines.append(f"  file spacing     {info.get('file_spacing')}"
                     + (f" (aggregated to {report.get('bar')})" if info.get("resampled_from") else ""))
        lines.append(f"  inserted bars    {info.get('inserted_bars', 0):,} (no-trade bars at the file's own spacing)")
        for column, what in (info.get("assumed") or {}).items():
            lines.append(f"  assumed {column:<8} {what}")
        for ours, theirs in (info.get("replaced_columns") or {}).items():
            lines.append(f"  column {ours:<9} from data.columns; the file's own {theirs!r} not used")
        overridden = (info.get("checks") or {}).get("overridden") or []
        if overridden:
            lines.append(f"  checks overridden {', '.join(overridden)}")
    s = report.get("stats")
    if not s:
        lines.append(f"  ({report.get('note', 'no statistics')})")
        return "\n".join(lines)
    lines += [
        f"premium (daily samples at 09:00 KST = 00:00 UTC, {s['days']} days; fx: {report.get('fx_source')})",
        f"  mean             {_pct(s['premium_mean_pct'])}",
        f"  sd               {_pct(s['premium_sd_pct'], False)}",
        f"  p5 / p95         {_pct(s['premium_p5_pct'])} / {_pct(s['premium_p95_pct'])}",
        f"  min / max        {_pct(s['premium_min_pct'])} / {_pct(s['premium_max_pct'])} "
        f"(intraday {_pct(s['premium_min_intraday_pct'])} / {_pct(s['premium_max_intraday_pct'])})",
        f"  negative days    {100 * s['negative_days_frac']:.1f} %",
        f"  daily AR(1)      {s['premium_daily_ar1']:.3f}",
        f"  daily change sd  {s['premium_change_sd_pp']:.2f} pp",
        f"  |change| > 2 pp  {100 * s['big_move_days_frac']:.1f} % of days",
        "fx (USD/KRW)",
        f"  range            {s['fx_min']:,.1f} .. {s['fx_max']:,.1f}",
        f"  daily log-ret sd {_pct(s['fx_daily_logret_sd_pct'], False)} (days on which FX moved)",
    ]
    return "\n".join(lines)


def inspect_main(argv: Sequence[str]) -> int:
    """``data inspect``: print coverage and premium statistics of a file or cached dataset."""
    args = _inspect_parser().parse_args(list(argv))
    _ensure_logging()
    path = Path(args.target).expanduser()
    if path.exists():
        title = str(path)
        report = inspect_file(path, args.overrides, args.fx)
    else:
        if args.overrides:
            raise UserError(f"data options ({args.overrides[0]}) apply to files; {args.target!r} is not a file")
        df, title = load_target(args.target, args.cache_dir)
        report = inspect_report(df, fx=args.fx or "ecb")
    if args.json:
        print(json.dumps({"target": title, **report}, indent=2, default=_json_default))
    else:
        print(format_report(title, report))
    return 0


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return None if np.isnan(obj) else float(obj)
    return str(obj)


if __name__ == "__main__":  # python -m kpremia.data.cli fetch|inspect ...
    commands = {"fetch": fetch_main, "inspect": inspect_main}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.stderr.write("usage: python -m kpremia.data.cli {fetch,inspect} ...\n")
        raise SystemExit(2)
    try:
        raise SystemExit(commands[sys.argv[1]](sys.argv[2:]))
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(exc.exit_code) from None

"""`data fetch` / `data inspect` on a replayed Upbit fetch (real ccxt.upbit, HTTP replayed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "ccxt"))
from ccxt_replay import ReplayServer, make_premium_candles, replay_factory  # noqa: E402

from kpremia.core.errors import UserError  # noqa: E402
from kpremia.data.cli import fetch_main, inspect_main  # noqa: E402
from kpremia.data.stats import market_stats  # noqa: E402

DAYS = 60


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    # the real market's premium (mean 1.4 %, sd 1.8 %, daily AR 0.91; docs/market.md) over real ECB USD/KRW,
    # with no-trade bars
    return make_premium_candles("2024-06-01", 96 * DAYS, seed=5, missing={100, 101, 102, 3000})


@pytest.fixture
def server(table) -> ReplayServer:
    return ReplayServer(upbit_candles={"KRW-USDT": table})


def run_fetch(server, tmp_path, *extra: str) -> int:
    argv = ["--exchange", "upbit", "--symbol", "USDT/KRW", "--timeframe", "15m", "--start", "2024-06-01",
            "--end", "2024-07-30", "--cache-dir", str(tmp_path), "--no-progress", *extra]
    return fetch_main(argv, exchange_factory=replay_factory(server))


def test_fetch_then_inspect_dataset(server, tmp_path, capsys):
    assert run_fetch(server, tmp_path) == 0
    out = capsys.readouterr().out
    assert "upbit:USDT/KRW:15m" in out and f"rows             {96 * DAYS:,}" in out
    assert "no-trade bars    4 in 2 runs, longest 3" in out
    assert "requests" in out and "bars/min" in out

    assert inspect_main(["upbit:USDT/KRW:15m", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"expected rows    {96 * DAYS:,}" in out
    assert "gaps             2 (4 missing bars, longest 3)" in out
    assert f"premium (daily samples at 09:00 KST = 00:00 UTC, {DAYS} days; fx: ecb)" in out
    for label in ("mean", "p5 / p95", "negative days", "daily AR(1)", "daily change sd", "|change| > 2 pp",
                  "range", "daily log-ret sd"):
        assert label in out


def test_inspect_statistics_of_a_replayed_fetch(server, tmp_path, capsys):
    """The statistics come from market_stats on daily 00:00 UTC samples of the fetched frame."""
    out_path = tmp_path / "frame.parquet"
    run_fetch(server, tmp_path, "--out", str(out_path))
    capsys.readouterr()
    assert inspect_main([str(out_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    stats = report["stats"]
    frame = pd.read_parquet(out_path)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "fx", "premium"]
    assert stats == pytest.approx(market_stats(frame), nan_ok=True)  # the one shared implementation
    assert stats["days"] == DAYS
    # 60 days of an AR(1) with a 7-day half-life: the sample mean is loose around the generator's 1.4 %
    assert -1.0 < stats["premium_mean_pct"] < 4.5
    assert 0.3 < stats["premium_sd_pct"] < 3.0
    assert 1300 < stats["fx_min"] < stats["fx_max"] < 1420  # ECB USD/KRW, Jun-Jul 2024
    assert report["coverage"]["no_trade_bars"] == 4
    manifest = json.loads(out_path.with_suffix(".manifest.json").read_text())
    assert manifest["source"] == "ccxt" and manifest["fx"]["publication_tz"] == "Europe/Berlin"


def test_second_fetch_reports_nothing_new(server, tmp_path, capsys):
    run_fetch(server, tmp_path)
    n = len(server.requests)
    run_fetch(server, tmp_path)
    assert len(server.requests) == n
    assert "nothing new" in capsys.readouterr().out


def test_hourly_timeframe_fetched_and_assembled_at_1h(tmp_path, capsys):
    fine = make_premium_candles("2024-06-01", 96 * 2, seed=1)
    hourly = fine.iloc[::4].reset_index(drop=True)  # 1h candles, opening on the hour
    server = ReplayServer(upbit_candles={"KRW-USDT": hourly})  # served for any unit by the replay
    argv = ["--timeframe", "1h", "--start", "2024-06-01", "--end", "2024-06-01", "--cache-dir", str(tmp_path),
            "--no-progress", "--out", str(tmp_path / "frame_1h.parquet")]
    assert fetch_main(argv, exchange_factory=replay_factory(server)) == 0
    assert "/v1/candles/minutes/60" in server.requests[-1]
    out = capsys.readouterr().out
    assert "upbit:USDT/KRW:1h" in out and "rows             24" in out and "gaps             0" in out
    frame = pd.read_parquet(tmp_path / "frame_1h.parquet")
    assert len(frame) == 24 and (frame.index[1:] - frame.index[:-1] == pd.Timedelta("1h")).all()


@pytest.mark.parametrize("argv, match", [
    (["--end", "2024-06-02"], "the following arguments are required: --start"),
    (["--start", "2024-06-01", "--exchange", "upbitt"], "Did you mean upbit"),
    (["--start", "2024-06-01", "--premium-basis", "eth"], "invalid choice"),
    (["--start", "2024-06-05", "--end", "2024-06-01"], "is not after"),
])
def test_fetch_user_errors_are_one_line(argv, match, tmp_path):
    with pytest.raises(UserError, match=match) as info:
        fetch_main([*argv, "--cache-dir", str(tmp_path)])
    assert "\n" not in str(info.value)


def test_inspect_user_errors(tmp_path):
    with pytest.raises(UserError, match="neither a file nor a dataset id"):
        inspect_main(["nothing-here", "--cache-dir", str(tmp_path)])
    with pytest.raises(UserError, match="run `kpremia data fetch` first"):
        inspect_main(["upbit:USDT/KRW:15m", "--cache-dir", str(tmp_path)])
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(UserError, match="cannot read"):
        inspect_main([str(bad)])


def _offline_factory(exchange_id: str):
    """A real ccxt exchange on a machine where names do not resolve (``.invalid`` never does)."""
    import socket
    import types

    import ccxt

    exchange = getattr(ccxt, exchange_id)({"enableRateLimit": True})

    def fetch(self, url, method="GET", headers=None, body=None):
        try:
            socket.getaddrinfo("api.kpremia-offline.invalid", 443)
        except socket.gaierror as exc:  # what ccxt's own fetch does with a requests ConnectionError
            raise ccxt.NetworkError(f"{self.id} {method} {url}") from exc
        raise AssertionError("a .invalid name resolved")

    exchange.fetch = types.MethodType(fetch, exchange)
    return exchange


def test_offline_fetch_fails_at_once_naming_the_commands_flags(tmp_path):
    """Before: five backoff retries (31 s) and a hint naming fit's keys (data.fallback_exchanges)."""
    import time

    started = time.perf_counter()
    with pytest.raises(UserError) as info:
        fetch_main(["--start", "2024-06-01", "--end", "2024-06-02", "--cache-dir", str(tmp_path), "--no-progress"],
                   exchange_factory=_offline_factory)
    assert time.perf_counter() - started < 5
    message = str(info.value)
    assert "no network: cannot resolve" in message and "--fallback EXCHANGE" in message
    assert "data." not in message and "\n" not in message


def test_data_help_is_help(capsys):
    from kpremia.app.cli import main

    assert main(["data", "--help"]) == 0
    out = capsys.readouterr().out
    assert "fetch" in out and "inspect" in out and "error" not in out

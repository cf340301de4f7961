"""The operator's first hour: what used to surprise is refused or said in one line."""

from __future__ import annotations

import hashlib

import pytest

from kpremia.core.errors import UserError
from kpremia.run.live_config import ApiConfig, LiveConfig
from kpremia.live.http.api import check_bind
from kpremia.live.venues.feeds import ReplayFeed

from .conftest import run_cli

WINDOWS = {"window_bars": 8, "window_1d": 5, "window_premium": 5}


def test_a_short_token_is_refused_even_on_loopback(monkeypatch):
    monkeypatch.setenv("KPREMIA_API_TOKEN", "abc")
    with pytest.raises(UserError, match="has 3 characters: a token that short is guessed in seconds, even on 127"):
        check_bind(ApiConfig())
    monkeypatch.setenv("KPREMIA_API_TOKEN", "x" * 16)
    assert check_bind(ApiConfig()) == "x" * 16
    monkeypatch.delenv("KPREMIA_API_TOKEN")
    assert check_bind(ApiConfig()) is None  # no token on 127.0.0.1: allowed, as documented


def test_replay_end_alone_starts_at_the_test_split_not_the_training_data(compose_cfg, caplog):
    cfg = compose_cfg("data.days=30")
    whole = ReplayFeed.from_config(cfg, LiveConfig.from_dict({"replay": {"split": "test"}}), WINDOWS)
    end = str(whole.last_time - (whole.last_time - whole.frame.index[whole.start]) / 2)
    feed = ReplayFeed.from_config(cfg, LiveConfig.from_dict({"replay": {"end": end}}), WINDOWS)
    assert feed.frame.index[feed.start] == whole.frame.index[whole.start] and feed.last_time <= whole.last_time
    assert "replaying from the start of the test split" in caplog.text
    everything = ReplayFeed.from_config(cfg, LiveConfig.from_dict({"replay": {"split": "all"}}), WINDOWS)
    with pytest.raises(UserError, match="is before the test split"):
        ReplayFeed.from_config(cfg, LiveConfig.from_dict({"replay": {"end": str(everything.frame.index[everything.start])}}), WINDOWS)


def _hashes(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_initial_krw_on_a_resume_is_refused_in_one_line_and_changes_nothing(capsys, tmp_path):
    args = ("live", "live.policy=premium_threshold", "live.rule.buy_threshold=0.01", "live.rule.sell_threshold=0.02",
            "data.days=30", f"live.state_dir={tmp_path / 's'}", "live.journal.synchronous=NORMAL")
    code, err = run_cli(capsys, *args, "live.max_bars=1", "live.initial_krw=2000000")
    assert code == 0, err
    before = _hashes(tmp_path / "s")
    code, err = run_cli(capsys, *args, "live.max_bars=1", "live.initial_krw=3000000")
    assert code == 2 and len(err) == 1, err
    assert "live.initial_krw=3e+06 but the session" in err[0] and "started with 2e+06 KRW" in err[0]
    assert _hashes(tmp_path / "s") == before
    code, err = run_cli(capsys, *args, "live.max_bars=1", "live.initial_krw=2000000")  # the same amount: resumes
    assert code == 0, err

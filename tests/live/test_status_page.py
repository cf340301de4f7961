"""The status page in headless Chromium: the figures a person sees are the journal's figures."""

from __future__ import annotations

import copy
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from kpremia.run.live_config import LiveConfig
from kpremia.live.http.api import ApiConfig, ApiServer, create_app
from kpremia.live.http.serve import build_host
from kpremia.live.http.status import StatusSource
from kpremia.live.learning.control_log import read_events
from kpremia.live.loop.build import run_live
from kpremia.live.loop.journal import read_table
from kpremia.live.ops.halt import read_risk_events

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOKEN = "page-token-0123456789"


def _browser(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--hide-scrollbars", "--virtual-time-budget=10000", *args], capture_output=True, text=True,
                          timeout=timeout)


def _values(dom: str) -> dict[str, str]:
    """``{element id: data-value}`` for every figure on the page."""
    out = {}
    for tag in re.findall(r"<[^>]+\bdata-value=\"[^\"]*\"[^>]*>", dom):
        ident = re.search(r"\bid=\"([^\"]+)\"", tag)
        value = re.search(r"\bdata-value=\"([^\"]*)\"", tag)
        if ident:
            out[ident.group(1)] = value.group(1)
    return out


def _serve_and_render(checkpoint, state_dir: Path, cli: dict, shot: Path, height: int):
    """Serve the session's status page, screenshot it (to ``$KPREMIA_SCREENSHOT_DIR`` when set) and
    return the (closed) host and the DOM headless Chromium rendered."""
    shot = Path(os.environ.get("KPREMIA_SCREENSHOT_DIR", shot.parent)) / shot.name
    host = build_host(str(checkpoint), state_dir, LiveConfig.from_dict(cli["live"]).learn)
    server = ApiServer(create_app(host, StatusSource(state_dir), TOKEN), ApiConfig(port=0))
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/#token={TOKEN}"
        proc = _browser(f"--screenshot={shot}", f"--window-size=1280,{height}", url)
        assert shot.is_file() and shot.stat().st_size > 20_000, proc.stderr[-2000:]
        return host, _browser("--dump-dom", url).stdout
    finally:
        server.stop()
        host.close()


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/system-deps installs it)")
def test_status_page_in_chromium_shows_the_journal(live_cfg, checkpoint, tmp_path, monkeypatch):
    state_dir = tmp_path / "state"
    cli = copy.deepcopy(live_cfg)
    cli["ckpt"] = str(checkpoint)
    cli["live"].update(state_dir=str(state_dir), journal={"synchronous": "NORMAL"}, max_bars=80)
    cli["live"]["learn"].update(enabled=True, every=2, batch_size=8, lr=0.003)
    cli["live"]["learn"]["challenger"].update(enabled=False)
    run_live(cli, overrides=[])

    host, dom = _serve_and_render(checkpoint, state_dir, cli, tmp_path / "status_page.png", height=1000)

    assert 'data-loaded="1"' in dom, "the page never rendered /status (token or fetch failed)"
    seen = _values(dom)
    decisions = read_table(state_dir / "journal.sqlite", "decisions")
    state = json.loads(read_table(state_dir / "journal.sqlite", "state")["state_json"].iloc[0])
    last, first = decisions.iloc[-1], decisions.iloc[0]
    initial = float(state["initial_krw"])
    assert float(seen["equity"]) == pytest.approx(float(last["equity_krw"]), rel=1e-12)
    assert float(seen["buy-hold"]) == pytest.approx(initial * float(last["close"]) / float(first["close"]), rel=1e-12)
    assert float(seen["position"]) == pytest.approx(float(state["position_usdt"]), abs=1e-12)
    assert float(seen["cash"]) == pytest.approx(float(state["cash_krw"]), rel=1e-12)
    assert float(seen["premium"]) == pytest.approx(float(last["premium"]), rel=1e-12)
    assert seen["risk-state"] == state["risk_state"] == "ACTIVE"
    assert seen["last-bar"] == last["bar_time"]
    assert int(seen["bars"]) == len(decisions) == 80
    assert int(seen["orders"]) == int(decisions["client_order_id"].notna().sum()) > 0
    versions = sorted((state_dir / "versions").iterdir())
    assert seen["model-version"] == host.version and seen["model-version"].startswith("v1_0_")
    updates = [e for e in read_events(state_dir / "model_journal.sqlite", source="learner") if e["kind"] == "update"]
    assert int(seen["learning"]) == len(updates) > 0
    # the last decisions are marked on the premium chart, one marker per order in the window
    assert len(re.findall(r'class="decision (?:buy|sell)"', dom)) == int(decisions["client_order_id"].notna().sum())
    assert len(versions) > 1


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/system-deps installs it)")
def test_halted_session_page_shows_why_and_since_when(live_cfg, tmp_path):
    """A session halted by a book mismatch: the page names the cause, its time, the risk events; only real
    decisions are listed (the policy acts every 4 bars: the bars between are journaled, not listed); both charts
    have a time axis."""
    import sqlite3

    from tests.live.conftest import make_checkpoint

    cfg = copy.deepcopy(live_cfg)
    cfg["env"]["decision_every"] = 4
    checkpoint = make_checkpoint(tmp_path / "every4" / "checkpoints" / "last.ckpt", cfg)
    state_dir = tmp_path / "state"
    cli = copy.deepcopy(live_cfg)
    cli["ckpt"] = str(checkpoint)
    cli["live"].update(state_dir=str(state_dir), journal={"synchronous": "NORMAL"}, max_bars=60)
    run_live(cli, overrides=[])
    with sqlite3.connect(state_dir / "paper_exchange.sqlite") as conn:  # someone trades behind the runner's back
        conn.execute("UPDATE account SET usdt = usdt + 1.5")
    conn.close()
    cli["live"]["max_bars"] = 60  # enough decisions after the halt for runs of refusals
    assert run_live(cli, overrides=[])["risk_state"] == "HALTED"

    _, dom = _serve_and_render(checkpoint, state_dir, cli, tmp_path / "status_halted.png", height=1500)

    assert 'data-loaded="1"' in dom
    seen = _values(dom)
    dom = dom.split("<script>")[0]  # what the page rendered, not the script that renders it
    events = read_table(state_dir / "journal.sqlite", "risk_events")
    cause = events[events["kind"] == "reconcile"].iloc[-1]
    assert seen["risk-state"] == "HALTED"
    assert seen["risk-reason"] == html.escape(cause["reason"], quote=True) and "the broker" in cause["reason"]
    assert seen["risk-since"] == cause["created_at"]
    assert re.search(r'id="risk-banner" class="banner HALTED"(?! hidden)', dom)
    from kpremia.live.http.status import grouped_events

    groups = grouped_events(read_risk_events(state_dir / "journal.sqlite"))
    assert dom.count('class="risk-event"') == min(12, len(groups)) and len(groups) < len(events)
    assert re.search(r"halted ×\d+", dom)  # the refusals of every halted bar, one row
    assert seen["api-requests"] == "0"  # the page's own requests were all authorised (no favicon 401)
    decisions = read_table(state_dir / "journal.sqlite", "decisions")
    assert decisions["reason"].str.startswith("between decisions").sum() > 30  # journaled ...
    assert "between decisions" not in dom and "warm-up" not in dom  # ... but not listed as decisions
    assert dom.count('class="decision-row"') == min(12, int(decisions["action"].notna().sum()))
    labels = re.findall(r'class="tick-label"[^>]*>([^<]+)<', dom)
    assert len(labels) == 12  # six ticks on each chart
    first_bar = pd.Timestamp(decisions["bar_time"].iloc[0])
    assert labels[0] == first_bar.strftime("%Y-%m-%d %H:%M")  # UTC bar times, the year included
    # what to do, the halt moment and the refused orders marked, the axes' units
    assert seen["risk-todo"].startswith("resolve the mismatch (python -m kpremia live-resolve")
    assert dom.count('class="halt-mark"') == 2 and dom.count('class="refused-mark"') >= 1  # one line per chart
    assert re.findall(r'class="y-unit"[^>]*>([^<]+)<', dom) == ["KRW", "%"]
    assert re.search(r'id="token-help" hidden', dom)  # the token was given: no help shown


_NODE_DOM = """
const els = {};
function el(id) { return els[id] || (els[id] = {id, dataset: {}, textContent: "", innerHTML: "", hidden: false,
                                                 className: "", title: ""}); }
global.document = {getElementById: el, querySelector: q => el(q), body: {dataset: {}}};
global.location = {hash: "#token=x"};
global.fetch = async () => ({ok: STATUS === 200, status: STATUS, json: async () => (PAYLOAD)});
global.setTimeout = () => 0;
"""
_NODE_REPORT = """
setImmediate(() => console.log(JSON.stringify({error: el("error").textContent, todo: el("risk-todo").textContent,
  banner_hidden: el("risk-banner").hidden, token_help_hidden: el("token-help").hidden,
  premium: el("chart-premium").innerHTML, equity: el("chart-equity").innerHTML, learning: el("learning").textContent,
  learning_title: el("learning").title})));
"""


def _render_in_node(payload: dict, status: int = 200) -> dict:
    """The page's own script run by node over a minimal DOM: what it puts where (no browser needed)."""
    from kpremia.live.http.status_page import STATUS_PAGE

    node = shutil.which("node")
    if node is None:
        pytest.skip("needs node to run the page's script")
    script = re.search(r"<script>(.*)</script>", STATUS_PAGE, re.S).group(1)
    program = (_NODE_DOM.replace("PAYLOAD", json.dumps(payload)).replace("STATUS", str(status)) + script
               + _NODE_REPORT)
    proc = subprocess.run([node, "-"], input=program, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_a_halted_page_says_what_to_do_marks_the_halt_and_refusals_and_has_units(tmp_path):
    from tests.live.conftest import price_frame, rule_runner

    low, mid, high = 0.005, 0.015, 0.025
    frame = price_frame([1400, 1400, 1390, 1300, 1260, 1260, 1260, 1260], [low, mid, mid, mid, mid, high, low, high])
    rule_runner(tmp_path, frame, risk={"max_daily_loss": 0.05}).run()  # halts on the loss, then refuses the sells
    payload = {**StatusSource(tmp_path).figures(), "model_version": "v1", "hparams": {}, "requests": {},
               "learning": {"enabled": True, "mode": "learning", "updates": 3, "anchor_distance": 0.0451,
                            "max_distance": 1.0}}
    page = _render_in_node(payload)
    assert page["error"] == "" and not page["banner_hidden"] and page["token_help_hidden"]
    assert page["todo"].startswith("look at the day's trades; after 00:00 UTC")
    for chart in ("premium", "equity"):
        assert page[chart].count('class="halt-mark"') == 1, "the moment it halted, on both charts"
    assert page["premium"].count('class="refused-mark"') >= 1 and "halted" in page["premium"]
    assert re.findall(r'class="y-unit"[^>]*>([^<]+)<', page["equity"]) == ["KRW"]
    assert re.findall(r'class="y-unit"[^>]*>([^<]+)<', page["premium"]) == ["%"]
    assert re.findall(r'class="tick-label"[^>]*>([^<]+)<', page["premium"])[0] == "2025-03-03 00:00"  # the year
    assert "drift from the checkpoint 0.0451 of 1 allowed" in page["learning"]
    assert "live.learn.max_distance" in page["learning_title"]


def test_without_the_token_the_page_explains_the_token_form():
    from kpremia.live.http.status_page import STATUS_PAGE

    assert "/#token=&lt;the token&gt;" in STATUS_PAGE
    page = _render_in_node({"detail": "missing or wrong token"}, status=401)
    assert not page["token_help_hidden"] and "missing or wrong token" in page["error"]

"""Webhook alerts against a real local HTTP server: retried, delivered, never blocking the caller."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kpremia.core.errors import UserError
from kpremia.live.loop.alerts import AlertConfig, WebhookSender


class _Receiver:
    """A real http.server on 127.0.0.1 that fails the first ``fail_first`` POSTs with ``status``."""

    def __init__(self, fail_first: int = 0, status: int = 503):
        self.received: list[dict] = []
        self.attempts = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.attempts += 1
                if outer.attempts <= fail_first:
                    self.send_response(status)
                    self.end_headers()
                    return
                outer.received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _wait(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_failures_are_retried_until_delivered_in_order():
    rx = _Receiver(fail_first=2, status=503)
    sender = WebhookSender(AlertConfig(url=rx.url, backoff_s=0.01))
    sender.send("risk", "ACTIVE -> HALTED (max_daily_loss)", state_after="HALTED")
    sender.send("fill", "buy 10 USDT @ 1400", price=1400.0)
    sender.send("debug", "not subscribed")  # kinds outside live.callbacks.alerts.events are not sent
    sender.close()
    rx.close()
    assert [m["kind"] for m in rx.received] == ["risk", "fill"]
    assert rx.received[0]["state_after"] == "HALTED" and rx.received[1]["price"] == 1400.0
    assert rx.attempts == 4 and sender.delivered == 2 and sender.dropped == 0


def test_a_dead_endpoint_never_blocks_or_raises():
    rx = _Receiver()
    url = rx.url
    rx.close()  # nothing listens there any more: connection refused
    sender = WebhookSender(AlertConfig(url=url, retries=2, backoff_s=0.01, timeout_s=0.5))
    t0 = time.perf_counter()
    for i in range(50):
        sender.send("error", f"boom {i}")
    assert time.perf_counter() - t0 < 0.5  # the caller only enqueues
    assert _wait(lambda: sender.dropped == 50, timeout=30)
    assert sender.delivered == 0


def test_a_4xx_is_not_retried_and_telegram_body_format():
    rx = _Receiver(fail_first=1, status=400)
    sender = WebhookSender(AlertConfig(url=rx.url, format="telegram", chat_id="42", backoff_s=0.01))
    sender.send("risk", "first")  # 400: a bad request will not get better by retrying
    sender.send("risk", "second")
    sender.close()
    rx.close()
    assert rx.attempts == 2 and sender.dropped == 1
    assert rx.received == [{"chat_id": "42", "text": "[kpremia risk] second"}]


def test_config_errors(monkeypatch):
    monkeypatch.delenv("KPREMIA_ALERT_URL", raising=False)
    with pytest.raises(UserError, match="export KPREMIA_ALERT_URL"):
        AlertConfig.from_cfg({})
    monkeypatch.setenv("KPREMIA_ALERT_URL", "http://127.0.0.1:9/x")
    assert AlertConfig.from_cfg({}).resolve_url() == "http://127.0.0.1:9/x"
    with pytest.raises(UserError, match="chat_id"):
        AlertConfig.from_cfg({"format": "telegram"})
    with pytest.raises(UserError, match="not a setting"):
        AlertConfig.from_cfg({"urll": "x"})


def test_alerts_callback_in_a_paper_session(live_cfg, checkpoint, tmp_path):
    """Fills and a kill-switch HALT reach the webhook; a dead webhook never stops the session."""
    import copy

    from kpremia.live.loop.build import run_live
    from kpremia.live.loop.journal import read_table

    rx = _Receiver(fail_first=3, status=503)
    state_dir = tmp_path / "state"
    cli = copy.deepcopy(live_cfg)
    cli["ckpt"] = str(checkpoint)
    cli["live"].update(state_dir=str(state_dir), journal={"synchronous": "NORMAL"}, max_bars=30)
    cli["live"]["callbacks"]["alerts"] = {"url": rx.url, "backoff_s": 0.01}
    cli["live"]["risk"]["kill_switch"] = "KILL"  # under live.state_dir
    state_dir.mkdir()
    (state_dir / "KILL").touch()  # the kill switch: HALTED from the start
    run_live(cli, overrides=[])
    rx.close()
    events = read_table(state_dir / "journal.sqlite", "risk_events")
    risk = [m for m in rx.received if m["kind"] == "risk"]
    assert len(risk) == len(events) >= 1 and risk[0]["state_after"] == "HALTED"

    dead = _Receiver()
    url = dead.url
    dead.close()
    cli2 = copy.deepcopy(cli)
    cli2["live"].update(state_dir=str(tmp_path / "state2"), max_bars=40)

    cli2["live"]["callbacks"]["alerts"] = {"url": url, "retries": 1, "backoff_s": 0.01, "timeout_s": 0.2}
    summary = run_live(cli2, overrides=[])
    assert summary["bars_this_session"] == 40
    fills = read_table(tmp_path / "state2" / "journal.sqlite", "fills")
    assert len(fills) > 0  # it traded (and alerted into the void) all the way

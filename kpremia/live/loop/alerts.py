"""Webhook alerts: risk events, fills and errors posted to a URL, without ever stopping trading.

Any endpoint that takes a JSON POST works (Slack/Discord-style webhooks, a
self-hosted receiver); ``format: telegram`` posts Telegram's Bot API body
(``{"chat_id", "text"}``) to ``https://api.telegram.org/bot<token>/sendMessage``.
The URL usually embeds a secret, so it is read from an environment variable
(``url_env``) and never logged or journaled.

Delivery is a background thread with a bounded queue: the runner's thread only
enqueues (microseconds) and returns; a failed POST (connection refused, timeout,
HTTP 5xx/429) is retried with exponential backoff up to ``retries`` times, then
dropped with a warning; a full queue drops the oldest message.  Nothing here
raises into the trading loop.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from kpremia.core.errors import UserError
from kpremia.core.registry import LIVE_CALLBACKS
from kpremia.live.loop.callback import LiveCallback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertConfig:
    """``live.callbacks.alerts.*``."""

    url: str | None = None  # the webhook URL (prefer url_env: URLs often carry a token)
    url_env: str | None = "KPREMIA_ALERT_URL"
    format: str = "json"  # json | telegram
    chat_id: str | None = None  # telegram: the chat to post to
    events: tuple[str, ...] = ("risk", "fill", "error", "model")
    retries: int = 5
    backoff_s: float = 0.5
    timeout_s: float = 5.0
    queue_size: int = 1000

    @classmethod
    def from_cfg(cls, cfg: dict[str, Any] | None) -> AlertConfig:
        cfg = dict(cfg or {})
        known = set(cls.__dataclass_fields__)
        unknown = set(cfg) - known
        if unknown:
            raise UserError(f"live.callbacks.alerts.{sorted(unknown)[0]} is not a setting; use one of {sorted(known)}")
        if "events" in cfg:
            cfg["events"] = tuple(cfg["events"])
        out = cls(**cfg)
        if out.format not in ("json", "telegram"):
            raise UserError(f"live.callbacks.alerts.format={out.format!r}; use json or telegram")
        if out.format == "telegram" and not out.chat_id:
            raise UserError("live.callbacks.alerts.format=telegram needs live.callbacks.alerts.chat_id=<chat id>")
        bad = set(out.events) - {"risk", "fill", "error", "model", "order"}
        if bad:
            raise UserError(f"live.callbacks.alerts.events has {sorted(bad)}; use risk, fill, order, error, model")
        if out.resolve_url() is None:
            raise UserError(f"live alerts need a webhook URL: export {out.url_env or 'KPREMIA_ALERT_URL'}=<url> "
                            "(or set live.callbacks.alerts.url), or switch alerts off")
        return out

    def resolve_url(self) -> str | None:
        if self.url:
            return str(self.url)
        return os.environ.get(self.url_env) if self.url_env else None


class WebhookSender:
    """Posts messages from a background thread with retries; ``send`` never blocks or raises."""

    def __init__(self, config: AlertConfig):
        self.config = config
        self._url = config.resolve_url()
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=config.queue_size)
        self.delivered = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._work, name="kpremia-alerts", daemon=True)
        self._thread.start()

    def send(self, kind: str, text: str, **fields: Any) -> None:
        """Queue one alert (oldest dropped when the queue is full); ``fields`` ride along in the JSON."""
        if kind not in self.config.events:
            return
        message = {**fields, "kind": kind, "text": text,
                   "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        while True:
            try:
                self._queue.put_nowait(message)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout_s``), then stop the thread."""
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)

    # ----------------------------------------------------------------- worker
    def _body(self, message: dict[str, Any]) -> bytes:
        if self.config.format == "telegram":
            return json.dumps({"chat_id": self.config.chat_id, "text": f"[kpremia {message['kind']}] "
                               f"{message['text']}"}).encode()
        return json.dumps(message, default=str).encode()

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(self._url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
            response.read()

    def _work(self) -> None:
        while True:
            message = self._queue.get()
            if message is None:
                return
            body = self._body(message)
            for attempt in range(self.config.retries + 1):
                try:
                    self._post(body)
                    self.delivered += 1
                    break
                except urllib.error.HTTPError as exc:
                    retry = exc.code >= 500 or exc.code == 429
                    reason = f"HTTP {exc.code}"
                except Exception as exc:  # noqa: BLE001 - any transport failure is retried, never raised
                    retry, reason = True, type(exc).__name__
                if not retry or attempt == self.config.retries:
                    self.dropped += 1
                    log.warning("alert %r not delivered after %d attempt(s) (%s); trading continues",
                                message["kind"], attempt + 1, reason)
                    break
                time.sleep(self.config.backoff_s * 2**attempt)


def _never_raises(hook: Any) -> Any:
    """An alert that cannot be composed is logged, never raised into the trading loop."""

    def wrapped(self: Any, *args: Any) -> None:
        try:
            hook(self, *args)
        except Exception:  # noqa: BLE001 - alerts must never stop trading
            log.exception("alert hook %s failed; trading continues", hook.__name__)

    wrapped.__name__ = hook.__name__
    wrapped.__doc__ = hook.__doc__
    return wrapped


@LIVE_CALLBACKS.register("alerts")
class AlertsCallback(LiveCallback):
    """Posts risk events, fills, order errors, model events and errors to a webhook (``live.callbacks.alerts``)."""

    def __init__(self, **options: Any) -> None:
        self.config = AlertConfig.from_cfg(options)
        self.sender: WebhookSender | None = None

    def setup(self, runner: Any) -> None:
        self.sender = WebhookSender(self.config)

    @_never_raises
    def on_risk_event(self, runner: Any, event: dict[str, Any]) -> None:
        fields = {k: str(v) for k, v in event.items() if k not in ("kind", "text")}
        self.sender.send("risk", f"{event['kind']}: {event['state_before']} -> {event['state_after']}: "
                         f"{event['reason']}", risk_kind=str(event["kind"]), **fields)

    @_never_raises
    def on_order(self, runner: Any, order: Any, report: Any) -> None:
        if report.error or report.status.value == "rejected":
            self.sender.send("order", f"order {order.client_order_id} {order.side}: {report.status.value} "
                             f"{report.error or ''}".strip(), client_order_id=order.client_order_id)

    @_never_raises
    def on_fill(self, runner: Any, order_id: str, fill: Any) -> None:
        self.sender.send("fill", f"{order_id}: {fill.usdt_delta:+.6f} USDT at {fill.price:.2f} KRW, fee "
                         f"{fill.fee_krw:.2f} KRW", client_order_id=order_id, price=fill.price,
                         usdt_delta=fill.usdt_delta, fee_krw=fill.fee_krw)

    @_never_raises
    def on_bar_end(self, runner: Any, decision: Any) -> None:
        model = next((cb for cb in runner.callbacks if type(cb).__name__ == "ModelCallback"), None)
        event = getattr(getattr(model, "host", None), "last_challenge", None)
        if event is not None and event.bar_time == str(decision.bar.time):
            self.sender.send("model", f"challenger {event.outcome}: {event.reason}", outcome=event.outcome)

    @_never_raises
    def on_error(self, runner: Any, error: BaseException) -> None:
        self.sender.send("error", f"live runner stopped by {type(error).__name__}: {error}")

    def teardown(self, runner: Any) -> None:
        if self.sender is not None:
            self.sender.close()

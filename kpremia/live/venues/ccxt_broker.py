"""The ``ccxt`` broker: real market orders on a ccxt exchange, with client order ids.

Refuses to exist unless the user asked for real orders twice over:
``live.allow_real_orders=true`` and API keys in environment variables (the
config names the variables, never the keys).  ``live.sandbox=true`` switches
ccxt to the exchange's sandbox/testnet where it has one.

What it does about the failures peers lose orders to:

* every order carries the runner's deterministic client order id (Upbit's
  ``identifier``), so after a timeout the broker asks the exchange for that id
  instead of guessing: "sent and accepted" is found, "never arrived" is sent
  again (a 429 or a dropped connection before acceptance);
* an order the exchange cancelled after a partial fill is reported with its
  fills and as final: the runner books the partial fill and never sends a
  second order for the same decision;
* fees, the minimum order and the fee convention come from the run's
  :class:`~kpremia.envs.execution.ExecutionRules` -- the simulator's and the paper
  broker's: a buy's KRW amount is the intent's ``cost_krw``, which the runner sized
  with those rules (with ``fee_convention=krw_on_top``, Upbit's, the fee is added on
  top of it and fits the cash); sells never exceed the intent's amount; orders below
  ``min_order_krw`` are refused before sending; a fill whose fee the exchange
  charged another way than the rules say is logged as an error (the simulator and
  the exchange disagree);
* key material never reaches the journal or the logs: error texts are
  scrubbed of the key, the secret and any signature.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ccxt

from kpremia.core.errors import UserError
from kpremia.core.registry import LIVE_BROKERS
from kpremia.data.exchange import create_exchange
from kpremia.envs.execution import KRW_ON_TOP, ExecutionRules
from kpremia.run.live_config import LiveConfig
from kpremia.live.loop.types import Bar, FillReport, OrderIntent, OrderReport, OrderStatus
from kpremia.live.venues.broker import BrokerError, OrderUnknownOutcome

log = logging.getLogger(__name__)

# How exchanges whose fee rule is known charge it (checked before any network call): Upbit charges the fee
# in KRW, added to a bid's KRW amount and taken from an ask's proceeds (docs/live.md, "Fee conventions").
EXCHANGE_FEE_CONVENTIONS = {"upbit": KRW_ON_TOP}

_STATUS = {"open": OrderStatus.OPEN, "closed": OrderStatus.FILLED, "canceled": OrderStatus.CANCELLED,
           "cancelled": OrderStatus.CANCELLED, "expired": OrderStatus.CANCELLED, "rejected": OrderStatus.REJECTED}


def exchange_keys(api_key_env: str, secret_env: str) -> tuple[str, str]:
    """The API key and secret from the named environment variables; UserError naming a missing one."""
    missing = [name for name in (api_key_env, secret_env) if not os.environ.get(name)]
    if missing:
        raise UserError(f"real orders need API keys: set the environment variable(s) {', '.join(missing)} "
                        "(live.ccxt.api_key_env / live.ccxt.secret_env name them)")
    return os.environ[api_key_env], os.environ[secret_env]


@LIVE_BROKERS.register("ccxt")
class CcxtBroker:
    """Market orders through a ccxt exchange instance (already holding its keys).

    Args:
        exchange: a ccxt exchange with ``apiKey``/``secret`` set.
        market: the exchange's symbol, e.g. ``USDT/KRW``.
        rules: the run's execution rules (fee convention, minimum order: those the simulator fills with).
        retries: sends retried after a rate limit or a network error (asking first).
        sleep: how to wait between retries (tests pass a no-op).
    """

    name = "ccxt"
    is_paper = False

    def __init__(self, exchange: ccxt.Exchange, market: str = "USDT/KRW", *, rules: ExecutionRules,
                 retries: int = 4, backoff_s: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.exchange = exchange
        self.market = market
        self.rules = rules
        self.min_order_krw = float(rules.min_order_krw)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.sleep = sleep
        self._secrets = [s for s in (getattr(exchange, "apiKey", None), getattr(exchange, "secret", None)) if s]
        self._ids: dict[str, str] = {}  # client order id -> exchange order id, for exchanges that need it
        self._call(lambda: exchange.load_markets(), "load markets")

    @classmethod
    def check_config(cls, live: LiveConfig) -> None:
        """Refuse real orders without ``live.allow_real_orders=true`` and keys in the environment."""
        if not live.allow_real_orders:
            raise UserError("the ccxt broker sends REAL orders and is off: add live.allow_real_orders=true (and API "
                            "keys in the environment), or use live.broker=paper")
        exchange_keys(live.ccxt.api_key_env, live.ccxt.secret_env)

    @classmethod
    def check_rules(cls, live: LiveConfig, rules: ExecutionRules) -> None:
        """Refuse execution rules that cannot be the exchange's (before any network call)."""
        convention = EXCHANGE_FEE_CONVENTIONS.get(live.ccxt.exchange)
        if convention is not None and rules.fee_convention != convention:
            raise UserError(f"{live.ccxt.exchange} charges fees as env.fee_convention={convention}, but the run's "
                            "rules "
                            f"say {rules.fee_convention}: use env={live.ccxt.exchange} (or "
                            f"env.fee_convention={convention}) so the simulator fills as the exchange does")

    @classmethod
    def from_config(cls, live: LiveConfig, rules: ExecutionRules, state_dir: Path | None = None,
                    initial_krw: float | None = None,
                    exchange_factory: Callable[..., ccxt.Exchange] | None = None) -> CcxtBroker:
        """A keyed exchange for ``live.ccxt`` (after :meth:`check_config`); the account is the exchange's."""
        cls.check_config(live)
        cls.check_rules(live, rules)
        opts = live.ccxt
        key, secret = exchange_keys(opts.api_key_env, opts.secret_env)
        settings = {"apiKey": key, "secret": secret, "timeout": int(opts.timeout_ms)}
        exchange = (exchange_factory or create_exchange)(opts.exchange, config=settings)
        if live.sandbox:
            try:
                if not (exchange.urls or {}).get("test"):
                    raise ccxt.NotSupported(opts.exchange)
                exchange.set_sandbox_mode(True)
            except ccxt.NotSupported:
                raise UserError(f"{opts.exchange} has no sandbox/testnet in ccxt; drop live.sandbox=true or use an "
                                "exchange that has one (e.g. binance)") from None
        return cls(exchange, opts.market, rules=rules)

    # ------------------------------------------------------------------ helpers
    def scrub(self, text: str) -> str:
        """``text`` without the key, the secret, bearer tokens or signatures."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = re.sub(r"(Bearer\s+)[A-Za-z0-9._\-]+", r"\1***", text)
        return re.sub(r"(signature=)[0-9a-fA-F]+", r"\1***", text)

    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        try:
            return fn()
        except ccxt.NetworkError as exc:  # timeouts, dropped connections, 429 / DDoS protection
            raise BrokerError(f"{what}: {type(exc).__name__}: {self.scrub(str(exc))[:300]}") from None
        except ccxt.ExchangeError as exc:
            raise BrokerError(f"{what}: {type(exc).__name__}: {self.scrub(str(exc))[:300]}") from None

    # ------------------------------------------------------------------ broker interface
    def observe(self, bar: Bar) -> None:
        """Nothing to do: the exchange fills on its own."""

    def submit(self, order: OrderIntent) -> OrderReport:
        """Send a market order; after a network error or a 429, ask for the id before sending again."""
        cid = order.client_order_id
        if order.side == "buy":  # the KRW amount the rules sized (whole KRW, never more than sized)
            cost = math.floor(order.cost_krw)
            size_krw, args = cost, (None, None, {"clientOrderId": cid, "cost": cost})
        else:
            amount = float(self.exchange.amount_to_precision(self.market, order.amount_usdt))
            size_krw, args = amount * order.ref_price, (amount, None, {"clientOrderId": cid})
        if size_krw < self.min_order_krw:
            return OrderReport(cid, OrderStatus.REJECTED, error=f"order of {size_krw:.0f} KRW is below the "
                                                                 f"exchange minimum of {self.min_order_krw:.0f} KRW")
        for attempt in range(self.retries + 1):
            try:
                placed = self.exchange.create_order(self.market, "market", order.side, *args)
                self._ids[cid] = placed["id"]
                return self._report(cid, placed)
            except (ccxt.InsufficientFunds, ccxt.InvalidOrder) as exc:
                return OrderReport(cid, OrderStatus.REJECTED, error=f"{type(exc).__name__}: "
                                                                    f"{self.scrub(str(exc))[:300]}")
            except ccxt.NetworkError as exc:
                log.warning("order %s: %s on send (%s); asking the exchange about it", cid, type(exc).__name__,
                            self.scrub(str(exc))[:160])
                known = self._fetch_quietly(cid)
                if known is not None:
                    return known
                if attempt < self.retries:
                    self.sleep(self.backoff_s * 2 ** attempt)
            except ccxt.ExchangeError as exc:
                return OrderReport(cid, OrderStatus.REJECTED, error=f"{type(exc).__name__}: "
                                                                    f"{self.scrub(str(exc))[:300]}")
        raise OrderUnknownOutcome(f"order {cid}: no answer after {self.retries + 1} attempts")

    def _fetch_quietly(self, cid: str) -> OrderReport | None:
        try:
            return self.fetch_order(cid)
        except BrokerError as exc:
            log.warning("order %s: lookup failed too (%s)", cid, exc)
            return None

    def fetch_order(self, client_order_id: str) -> OrderReport | None:
        """The exchange's view of ``client_order_id`` (None: the exchange has no such order)."""
        try:
            if self.exchange.id == "upbit":  # Upbit looks orders up by `identifier` directly
                raw = self.exchange.privateGetOrder({"identifier": client_order_id})
                found = self.exchange.parse_order(raw)
            else:
                found = self.exchange.fetch_order(self._ids.get(client_order_id), self.market,
                                                  {"clientOrderId": client_order_id})
        except ccxt.OrderNotFound:
            return None
        except ccxt.NetworkError as exc:
            raise BrokerError(f"fetch order {client_order_id}: {type(exc).__name__}: "
                              f"{self.scrub(str(exc))[:300]}") from None
        return self._report(client_order_id, found)

    def _report(self, cid: str, order: Mapping[str, Any]) -> OrderReport:
        status = _STATUS.get(str(order.get("status")), OrderStatus.OPEN)
        trades = list(order.get("trades") or [])
        fee_total = float((order.get("fee") or {}).get("cost") or 0.0)
        cost_total = sum(float(t.get("cost") or 0.0) for t in trades)
        base, quote = self.market.split("/")
        order_fee_currency = (order.get("fee") or {}).get("currency") or quote
        buy = order.get("side") == "buy"
        fills = []
        for i, t in enumerate(trades):
            amount, price = float(t["amount"]), float(t["price"])
            cost = float(t.get("cost") or amount * price)
            fee = t.get("fee") or {}
            currency = fee.get("currency") or order_fee_currency
            fee_cost = float(fee["cost"]) if fee.get("cost") is not None else (
                fee_total * cost / cost_total if cost_total else 0.0)
            if currency == base:  # the fee came out of the USDT (bought or sold)
                fee_krw, usdt_fee, krw_fee = fee_cost * price, fee_cost, 0.0
            else:  # charged in KRW: on top of a buy, out of a sell's proceeds
                fee_krw, usdt_fee, krw_fee = fee_cost, 0.0, fee_cost
            if buy and fee_cost and (currency == quote) != (self.rules.fee_convention == KRW_ON_TOP):
                log.error("order %s: the exchange charged the buy's fee in %s but env.fee_convention=%s: the simulator "
                          "and the exchange disagree; set env.fee_convention to the exchange's", cid, currency,
                          self.rules.fee_convention)
            fills.append(FillReport(cid, str(t.get("id") or i),
                                    usdt_delta=amount - usdt_fee if buy else -(amount + usdt_fee),
                                    krw_delta=-(cost + krw_fee) if buy else cost - krw_fee, price=price,
                                    fee_krw=fee_krw))
        if status is OrderStatus.FILLED and not fills and float(order.get("filled") or 0.0) > 0:
            status = OrderStatus.OPEN  # closed but trades not listed yet: ask again on the next bar
        return OrderReport(cid, status, exchange_order_id=order.get("id"), fills=fills)

    def open_order_ids(self) -> list[str]:
        orders = self._call(lambda: self.exchange.fetch_open_orders(self.market), "fetch open orders")
        return [o["clientOrderId"] for o in orders if str(o.get("clientOrderId") or "").startswith("kp-")]

    def balance(self) -> tuple[float, float]:
        bal = self._call(lambda: self.exchange.fetch_balance(), "fetch balance")
        base, quote = self.market.split("/")
        return float((bal.get(quote) or {}).get("total") or 0.0), float((bal.get(base) or {}).get("total") or 0.0)

    def close(self) -> None:
        close = getattr(self.exchange, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # closing a session must never mask the run's own outcome
                pass

"""The ``live`` command: a runner built from the resolved config, run, and summarised.

Which config wins: a checkpoint policy brings its run's config (data, env
windows, execution rules, action scheme); the command line may override data
or env keys explicitly (e.g. replay another file), exactly as for ``test``.
The ``live`` group (``configs/live/default.yaml``) is always the command line's.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import ccxt

from kpremia.core.bars import DEFAULT_BAR
from kpremia.core.errors import SessionStopped, UserError
from kpremia.core.registry import LIVE_BROKERS, LIVE_CALLBACKS, LIVE_FEEDS, LIVE_POLICIES
from kpremia.data.exchange import FetchFailed
from kpremia.data.market import ObservationBuilder
from kpremia.run.live_config import LiveConfig
from kpremia.live.loop.account import Account
from kpremia.live.loop.callback import LiveCallback
from kpremia.live.loop.journal import Journal
from kpremia.live.loop.risk import RiskEngine
from kpremia.live.loop.runner import LiveRunner
from kpremia.live.loop.state import LiveState
from kpremia.live.loop.stopping import stop_on_signals, stopped_line
from kpremia.live.ops.preflight import check_live_start, read_meta
from kpremia.live.venues.broker import BrokerError
from kpremia.run.run_config import RunConfig

log = logging.getLogger(__name__)


# Real-order limits beyond these are not limits: a day may lose at most a quarter of the equity, and the
# position is capped at 1,000,000,000 KRW (raise the constants in code, knowingly, to go further).
REAL_MAX_DAILY_LOSS = 0.25
REAL_MAX_POSITION_KRW = 1e9


def check_real_orders(live: LiveConfig, broker_cls: Any) -> None:
    """Refuse to trade real money without the guards: one line, before anything is built or contacted.

    A broker that is not paper (``is_paper`` false) needs ``live.allow_real_orders=true``,
    ``live.risk.max_daily_loss`` in (0, 0.25] and
    ``live.risk.max_position_krw`` in (0, 1e9] (``max_order_krw``, when set, no larger),
    ``live.learn.allow_real_orders=true`` when it is to learn online; then the broker's
    own checks (e.g. API keys).  No network call happens before these pass.
    """
    if not broker_cls.is_paper:
        if not live.allow_real_orders:
            raise UserError(f"live.broker={live.broker} sends REAL orders and is off: add live.allow_real_orders=true "
                            "(with risk limits), or use live.broker=paper")
        risk = live.risk
        missing = [key for key, value in (("live.risk.max_daily_loss", risk.max_daily_loss),
                                          ("live.risk.max_position_krw", risk.max_position_krw)) if not value]
        if missing:
            raise UserError(f"real orders need risk limits but {' and '.join(missing)} "
                            f"{'is' if len(missing) == 1 else 'are'} not set: set live.risk.max_daily_loss (e.g. 0.03) "
                            "and live.risk.max_position_krw (e.g. 500000)")
        if risk.max_daily_loss > REAL_MAX_DAILY_LOSS:
            raise UserError(f"live.risk.max_daily_loss={risk.max_daily_loss:g} is no limit for real orders: use at "
                            "most "
                            f"{REAL_MAX_DAILY_LOSS:g} (a quarter of the equity in a day), e.g. 0.03")
        if risk.max_position_krw > REAL_MAX_POSITION_KRW:
            raise UserError(f"live.risk.max_position_krw={risk.max_position_krw:g} is no limit for real orders: use at "
                            f"most {REAL_MAX_POSITION_KRW:,.0f} KRW, e.g. 500000")
        if risk.max_order_krw and risk.max_order_krw > risk.max_position_krw:
            raise UserError(f"live.risk.max_order_krw={risk.max_order_krw:g} is larger than live.risk.max_position_krw="
                            f"{risk.max_position_krw:g}: one order cannot exceed the position limit; lower it")
        if live.learn.enabled and not live.learn.allow_real_orders:
            raise UserError("online learning would change a policy that trades REAL money (live.broker="
                            f"{live.broker}): learn on paper (live.broker=paper), or set "
                            "live.learn.allow_real_orders=true knowingly")
    broker_cls.check_config(live)


def check_initial_krw_on_resume(live: LiveConfig, state_dir: Path) -> None:
    """``live.initial_krw`` only makes a new account: on a resume with another amount, one line (read-only check)."""
    started = read_meta(state_dir / "journal.sqlite", "initial_krw") if live.initial_krw is not None else None
    if started is not None and float(started) != float(live.initial_krw):
        raise UserError(f"live.initial_krw={live.initial_krw:g} but the session in {state_dir} started with "
                        f"{float(started):g} KRW and resumes with its own account: drop live.initial_krw to resume, or "
                        "use a new live.state_dir for a new account")


@contextlib.contextmanager
def reach(what: str) -> Iterator[None]:
    """A source that cannot be reached at start becomes one line (exit 2), raised before anything is written."""
    try:
        yield
    except UserError:
        raise
    except (FetchFailed, BrokerError, ccxt.BaseError, OSError) as exc:
        text = " ".join(str(exc).split())[:300]
        raise UserError(f"cannot reach {what} at start ({text}): check the network and the exchange's status, then "
                        "start again; nothing was written") from None


def build_callbacks(live: LiveConfig) -> list[LiveCallback]:
    """Callbacks switched on in ``live.callbacks`` (name -> options; null switches one off), in that order."""
    out = []
    for name, options in live.callbacks.items():
        if not live.callback_on(name):
            continue
        options = {} if options is True else dict(options)
        out.append(LIVE_CALLBACKS.get(name).from_config(options, live))
    return out


def run_live(cli_cfg: Mapping[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Build and run the live runner; print and return a summary."""
    live = RunConfig.of(cli_cfg).live  # the entry passes its parsed RunConfig
    if not live.state_dir:
        raise UserError("`live` needs live.state_dir=<dir> (the journal and broker state live there; reuse it "
                        "to resume)")
    state_dir = Path(live.state_dir)
    broker_cls = LIVE_BROKERS.get(live.broker)
    # a damaged journal or book, a read-only dir, a full disk: one line, nothing written
    check_live_start(live, paper=broker_cls.is_paper)
    check_real_orders(live, broker_cls)  # refuse (real orders without the guards) before any work
    feed_cls = LIVE_FEEDS.get(live.feed)
    callbacks = build_callbacks(live)
    policy, cfg = LIVE_POLICIES.get(live.policy).from_config(cli_cfg, live, overrides)
    from kpremia.core.threads import apply_threads

    apply_threads(dict(cli_cfg), auto=1)  # torch_threads=auto is 1 here: per-bar ops stall with more threads
    env = RunConfig.of(cfg).env  # a checkpoint's config with the overrides, parsed once (checkpoint.apply_overrides)
    broker_cls.check_rules(live, env.execution)  # e.g. Upbit's fee convention: still before any network call
    windows = policy.windows or env.windows
    initial_krw = float(live.initial_krw or env.initial_krw)
    check_initial_krw_on_resume(live, state_dir)
    # Everything over the network happens here, before the journal exists: no network, one line, nothing written.
    with reach(f"the {live.feed} feed"):
        feed = feed_cls.from_config(cfg, live, windows, policy.bar)
        feed.connect()
    bar = feed.bar or policy.bar or DEFAULT_BAR  # the bars the runner sees
    broker = None
    if not broker_cls.is_paper:
        with reach(f"the {live.broker} broker ({live.ccxt.exchange})"):
            broker = broker_cls.from_config(live, env.execution, state_dir, initial_krw)
            balance = broker.balance()
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        journal = Journal(state_dir / "journal.sqlite", busy_timeout_ms=live.journal.busy_timeout_ms,
                          synchronous=live.journal.synchronous)
    except BaseException:
        if broker is not None:
            broker.close()
        raise
    try:
        broker = broker or broker_cls.from_config(live, env.execution, state_dir, initial_krw)
    except BaseException:
        journal.close()
        raise
    initial = LiveState(run_id=uuid.uuid4().hex[:12], symbol=live.symbol, initial_krw=initial_krw,
                        cash_krw=initial_krw)
    if not broker.is_paper and journal.load_state() is None:
        # A real account starts from what the exchange holds, valued at the last close before the run.
        krw, usdt = balance
        history = feed.history()
        price = float(history["close"].iloc[-1]) if len(history) else 0.0
        held = Account(float(krw), float(usdt))
        initial = LiveState(run_id=initial.run_id, symbol=live.symbol, initial_krw=held.value(price),
                            cash_krw=held.cash_krw, position_usdt=held.position_usdt)
    runner = LiveRunner(
        feed=feed, broker=broker, policy=policy, journal=journal,
        builder=ObservationBuilder(**windows, normalizer=policy.normalizer, bar=bar), callbacks=callbacks,
        initial_state=initial, risk=RiskEngine.from_config(live), rules=env.execution, max_bars=live.max_bars,
        resend_intents=live.resend_intents,
        reconcile_tolerance=(live.reconcile.tolerance_krw, live.reconcile.tolerance_usdt),
        fingerprint=policy.fingerprint(), config={"state_dir": str(state_dir)},
    )
    with stop_on_signals(runner):
        runner.run()
    state = runner.state
    summary = {"state_dir": str(state_dir), "run_id": state.run_id, "policy": policy.name, "steps": state.step,
               "bars_this_session": runner.bars_this_session, "cash_krw": state.cash_krw,
               "position_usdt": state.position_usdt, "equity_krw": state.equity(),
               "return": state.equity() / state.initial_krw - 1.0, "risk_state": state.risk_state.value}
    print(format_summary(summary))
    print(state_dir, flush=True)
    if runner.stop_signal is not None:  # exit 130 / 143: the shell's "ended by this signal", after a clean stop
        raise SessionStopped(stopped_line(runner, str(state_dir)), 128 + int(runner.stop_signal))
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    rows = [("policy", summary["policy"]), ("run", summary["run_id"]),
            ("bars (this session / total)", f"{summary['bars_this_session']} / {summary['steps']}"),
            ("equity KRW", f"{summary['equity_krw']:,.0f}"), ("return", f"{summary['return']:+.4%}"),
            ("cash KRW", f"{summary['cash_krw']:,.0f}"), ("position USDT", f"{summary['position_usdt']:,.4f}"),
            ("risk state", summary["risk_state"])]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

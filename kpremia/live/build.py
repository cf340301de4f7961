"""The ``live`` command: a runner built from the resolved config, run, and summarised.

Which config wins: a checkpoint policy brings its run's config (data, env
windows, execution rules, action scheme); the command line may override data
or env keys explicitly (e.g. replay another file), exactly as for ``test``.
The ``live`` group (``configs/live/default.yaml``) is always the command line's.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from kpremia.bars import DEFAULT_BAR, bar_of_minutes, frame_bar, timeframe_label
from kpremia.data.market import ObservationBuilder
from kpremia.envs.factory import env_kwargs
from kpremia.errors import UserError
from kpremia.live.feeds import warmup_bars
from kpremia.live.paper import execution_rules
from kpremia.live.journal import Journal
from kpremia.live.preflight import check_live_start
from kpremia.live.runner import LiveRunner
from kpremia.live.state import LiveState
from kpremia.registry import DATA_SOURCES, LIVE_BROKERS, LIVE_CALLBACKS, LIVE_FEEDS, LIVE_POLICIES

log = logging.getLogger(__name__)


def build_policy(cli_cfg: dict[str, Any], overrides: list[str]) -> tuple[Any, dict[str, Any]]:
    """The policy and the config the run uses (the checkpoint's, with explicit overrides)."""
    live = cli_cfg["live"]
    name = live.get("policy", "checkpoint")
    LIVE_POLICIES.get(name)
    if name == "checkpoint":
        ckpt = cli_cfg.get("ckpt") or cli_cfg.get("ckpt_path")
        if not ckpt:
            raise UserError("`live` needs a policy: add ckpt=<run dir>/checkpoints/last.ckpt, or "
                            "live.policy=premium_threshold for the rule")
        from kpremia.evaluate import apply_overrides

        eval_cfg = cli_cfg.get("eval", {})
        policy = LIVE_POLICIES.get("checkpoint")(ckpt, deterministic=bool(eval_cfg.get("deterministic", True)),
                                                 temperature=float(eval_cfg.get("temperature", 1.0)),
                                                 seed=int(cli_cfg.get("seed", 0)),
                                                 trace=bool(live.get("trace_policy", True)))
        cfg = apply_overrides(policy.cfg, cli_cfg, overrides)
    else:
        cfg = dict(cli_cfg)
        rule = dict(live.get("rule") or {})
        fit_on = None
        if rule.get("buy_threshold") is None or rule.get("sell_threshold") is None:
            from kpremia import training

            fit_on = training.load_market(cfg, ("train",)).tensors["train"]
        policy = LIVE_POLICIES.get(name)(**rule, fit_on=fit_on, rules=env_kwargs(cfg["env"]))
    cfg["live"] = live
    return policy, cfg


def build_feed(cfg: dict[str, Any], windows: dict[str, int], bar: pd.Timedelta | None = None) -> Any:
    """The configured feed, giving bars of size ``bar`` (a checkpoint's; None: the data's own)."""
    live = cfg["live"]
    name = live.get("feed", "replay")
    cls = LIVE_FEEDS.get(name)
    if name == "replay":
        replay = dict(live.get("replay") or {})
        data_cfg = {k: v for k, v in cfg["data"].items() if k != "split"}
        frame, manifest = DATA_SOURCES.build(data_cfg).load()
        data_bar = bar_of_minutes(manifest["bar_minutes"]) if manifest.get("bar_minutes") else frame_bar(frame.index)
        if bar is not None and data_bar != bar:
            raise UserError(f"the checkpoint was trained on {timeframe_label(bar)} bars but the replayed data gives "
                            f"{timeframe_label(data_bar)} bars; replay {timeframe_label(bar)} bars "
                            f"(data.timeframe={timeframe_label(bar)})")
        bar = data_bar
        start, end = replay.get("start"), replay.get("end")
        split = replay.get("split", "test")
        if start is None and end is None and split != "all":
            from kpremia.data.splits import split_from_config

            bounds = split_from_config(frame, cfg["data"].get("split") or {}, require=(split,))
            if split not in bounds:
                raise UserError(f"live.replay.split={split!r}; use train, val, test or all (or set live.replay.start)")
            lo, hi = bounds[split]
            start, end = frame.index[lo], frame.index[hi - 1]
        return cls(frame, start=start, end=end, speed=float(replay.get("speed", 0.0)),
                   warmup=warmup_bars(windows["window_1d"], windows["window_premium"], bar), bar=bar)
    return cls.from_config(cfg, windows, bar=bar)


def build_broker(cfg: dict[str, Any], state_dir: Path, initial_krw: float) -> Any:
    live = cfg["live"]
    name = live.get("broker", "paper")
    cls = LIVE_BROKERS.get(name)
    rules = env_kwargs(cfg["env"])
    if name == "paper":
        paper = dict(live.get("paper") or {})
        return cls(paper.get("path") or state_dir / "paper_exchange.sqlite", initial_krw=initial_krw, rules=rules)
    return cls.from_config(cfg, rules)


def build_callbacks(live: dict[str, Any]) -> list[Any]:
    """Callbacks from ``live.callbacks`` (name -> options; null switches one off), in that order."""
    out = []
    for name, options in (live.get("callbacks") or {}).items():
        if options is None or options is False:
            continue
        options = {} if options is True else dict(options)
        try:
            out.append(LIVE_CALLBACKS.get(name)(**options))
        except TypeError as exc:
            raise UserError(f"live callback {name!r} rejected its options {sorted(options)}: {exc}; fix "
                            f"live.callbacks.{name}") from None
    return out


def run_live(cli_cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Build and run the live runner; print and return a summary."""
    live = cli_cfg["live"]
    if not live.get("state_dir"):
        raise UserError("`live` needs live.state_dir=<dir> (the journal and broker state live there; reuse it "
                        "to resume)")
    state_dir = Path(live["state_dir"])
    check_live_start(live)  # a damaged journal or book, a read-only dir, a full disk: one line, nothing written
    check = getattr(LIVE_BROKERS.get(live.get("broker", "paper")), "check_config", None)
    if check is not None:  # refuse (real orders without the flag or keys) before any work
        check(cli_cfg)
    policy, cfg = build_policy(cli_cfg, overrides)
    from kpremia.training import apply_threads

    apply_threads(cli_cfg)  # torch_threads (1 by default): per-bar ops stall with more threads on a few cores
    env = cfg["env"]
    windows = policy.windows or {k: int(env[k]) for k in ("window_15m", "window_1d", "window_premium")}
    initial_krw = float(live.get("initial_krw") or env.get("initial_krw", 1_000_000.0))
    if initial_krw <= 0:
        raise UserError(f"live.initial_krw={initial_krw} must be > 0")
    symbol = str(live.get("symbol", "USDT/KRW"))
    feed = build_feed(cfg, windows, getattr(policy, "bar", None))
    bar = getattr(feed, "bar", None) or getattr(policy, "bar", None) or DEFAULT_BAR  # the bars the runner sees
    callbacks = build_callbacks(live)
    state_dir.mkdir(parents=True, exist_ok=True)
    journal_cfg = dict(live.get("journal") or {})
    journal = Journal(state_dir / "journal.sqlite", busy_timeout_ms=int(journal_cfg.get("busy_timeout_ms", 5000)),
                      synchronous=str(journal_cfg.get("synchronous", "FULL")))
    try:
        broker = build_broker(cfg, state_dir, initial_krw)
    except BaseException:
        journal.close()
        raise
    recon = dict(live.get("reconcile") or {})
    initial = LiveState(run_id=uuid.uuid4().hex[:12], symbol=symbol, initial_krw=initial_krw, cash_krw=initial_krw)
    if getattr(broker, "name", "") != "paper" and journal.load_state() is None:
        # A real account starts from what the exchange holds, valued at the last close before the run.
        krw, usdt = broker.balance()
        history = feed.history()
        price = float(history["close"].iloc[-1]) if len(history) else 0.0
        initial = LiveState(run_id=initial.run_id, symbol=symbol, initial_krw=krw + usdt * price, cash_krw=krw,
                            position_usdt=usdt)
    runner = LiveRunner(
        feed=feed, broker=broker, policy=policy, journal=journal,
        builder=ObservationBuilder(**windows, normalizer=policy.normalizer, bar=bar), callbacks=callbacks,
        initial_state=initial,
        rules=execution_rules(env_kwargs(env)), max_bars=live.get("max_bars"), resend_intents=bool(live.get("resend_intents", True)),
        reconcile_tolerance=(float(recon.get("tolerance_krw", 0.0)), float(recon.get("tolerance_usdt", 0.0))),
        fingerprint=policy.fingerprint(), config={"state_dir": str(state_dir)},
    )
    state = runner.run()
    summary = {"state_dir": str(state_dir), "run_id": state.run_id, "policy": policy.name, "steps": state.step,
               "bars_this_session": runner.bars_this_session, "cash_krw": state.cash_krw,
               "position_usdt": state.position_usdt, "equity_krw": state.equity(),
               "return": state.equity() / state.initial_krw - 1.0, "risk_state": state.risk_state.value}
    print(format_summary(summary))
    print(state_dir, flush=True)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    rows = [("policy", summary["policy"]), ("run", summary["run_id"]),
            ("bars (this session / total)", f"{summary['bars_this_session']} / {summary['steps']}"),
            ("equity KRW", f"{summary['equity_krw']:,.0f}"), ("return", f"{summary['return']:+.4%}"),
            ("cash KRW", f"{summary['cash_krw']:,.0f}"), ("position USDT", f"{summary['position_usdt']:,.4f}"),
            ("risk state", summary["risk_state"])]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

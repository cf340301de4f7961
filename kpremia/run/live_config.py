"""LiveConfig: the ``live`` part of the run config, typed and checked in one place.

Like ``env``, ``algo`` and ``eval``, every live setting is one field of a frozen
dataclass (its default and its rule) and one line of ``configs/live/default.yaml``
(a test keeps the two equal), with one address each: the risk limits are
``live.risk.*`` and nowhere else (the ``risk`` callback reads them from there), the
online learner's settings ``live.learn.*``, the control API's ``live.api.*``.
``live.callbacks`` only switches callbacks on and off and carries the options of
callbacks that have no section of their own (``logging``, ``checkpoints``,
``alerts``, third-party ones).

Built once by :meth:`LiveConfig.from_dict` from the resolved ``live`` node; a bad
value is one line naming the key and the fix.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from kpremia.core.config import ConfigPart, at_least, between, bars_or_duration, knob, knob_of, optional, positive
from kpremia.core.errors import UserError
from kpremia.run.live_hparams import in_range

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


@dataclass(frozen=True)
class OnlineLearnConfig(ConfigPart):
    """The online update's settings (reference live defaults; ``live.learn.*`` sets the first nine).

    ``gamma``, ``gae_lambda``, ``max_grad_norm`` and ``reward_scale`` are the
    checkpoint's own (:meth:`kpremia.run.live_config.LearnConfig.learner`): a
    transition is one decision with the training reward, so it is discounted and
    scaled as in training.
    """

    section: ClassVar[str] = "live.learn"

    lr: float = knob(1e-4, in_range("lr"))
    clip_epsilon: float = knob(0.1, in_range("clip_epsilon"))
    entropy_coef: float = knob(0.02, in_range("entropy_coef"))
    value_coef: float = knob(0.4, in_range("value_coef"))
    update_epochs: int = knob(1, at_least(1))
    batch_size: int = knob(16, at_least(2))  # transitions per update (the most recent ones)
    every: int = knob(3, at_least(1))  # new transitions between updates
    anchor: float = knob(0.1, in_range("anchor"))  # L2 pull towards the loaded weights (0 disables it)
    max_distance: float = knob(1.0, positive())  # hard radius ||theta - theta_0|| (L2 over all parameters)
    gamma: float = knob(0.99, between(0, 1, low_open=True))
    gae_lambda: float = knob(0.95, between(0, 1))
    max_grad_norm: float = knob(0.5, positive())
    reward_scale: float = knob(1.0, positive())
    normalize_advantages: bool = knob(True)

    def __post_init__(self) -> None:
        self.check()


# What /set_hparams may change while running.
RUNTIME_HPARAMS = ("lr", "clip_epsilon", "entropy_coef", "value_coef", "anchor")


@dataclass(frozen=True)
class ReplayConfig(ConfigPart):
    """``live.replay``: which bars the replay feed plays."""

    section: ClassVar[str] = "live.replay"
    split: str = knob("test", ("train, val, test or all", lambda v: v in ("train", "val", "test", "all")))
    start: str | None = knob(None)  # first bar to play (UTC), e.g. 2025-06-01; overrides split
    end: str | None = knob(None)  # last bar to play
    speed: float = knob(0.0, at_least(0))  # 0 = as fast as possible; else market seconds per second (3600: an hour of bars a second)


@dataclass(frozen=True)
class RuleConfig(ConfigPart):
    """``live.rule``: the thresholds of ``live.policy=premium_threshold`` (null: fit on the train split)."""

    section: ClassVar[str] = "live.rule"
    buy_threshold: float | None = knob(None)
    sell_threshold: float | None = knob(None)


@dataclass(frozen=True)
class PaperConfig(ConfigPart):
    """``live.paper``: the paper exchange's own book."""

    section: ClassVar[str] = "live.paper"
    path: str | None = knob(None)  # null: <state_dir>/paper_exchange.sqlite


@dataclass(frozen=True)
class CcxtConfig(ConfigPart):
    """``live.ccxt``: the exchange of the ccxt feed and broker (keys come from the environment, never a file)."""

    section: ClassVar[str] = "live.ccxt"
    exchange: str = knob("upbit")  # any ccxt exchange id
    market: str = knob("USDT/KRW")  # the exchange's symbol for USDT/KRW
    api_key_env: str = knob("KPREMIA_API_KEY")  # names of the environment variables holding the keys
    secret_env: str = knob("KPREMIA_API_SECRET")
    timeout_ms: int = knob(10000, at_least(1))
    fx_path: str | None = knob(None)  # feed: a USD/KRW file (csv/parquet with time, fx)
    fx_rate: float | None = knob(None, optional(positive()))  # feed: a fixed USD/KRW rate instead


@dataclass(frozen=True)
class JournalConfig(ConfigPart):
    """``live.journal``: the SQLite journal's durability settings."""

    section: ClassVar[str] = "live.journal"
    busy_timeout_ms: int = knob(5000, at_least(0))
    synchronous: str = knob("FULL", (" or ".join(_SYNCHRONOUS), lambda v: v in _SYNCHRONOUS))
    min_free_mb: float = knob(64.0, at_least(0))  # refuse to start with less free space on the state_dir's disk


@dataclass(frozen=True)
class ReconcileConfig(ConfigPart):
    """``live.reconcile``: journal vs broker differences still called equal (real exchanges: dust)."""

    section: ClassVar[str] = "live.reconcile"
    tolerance_krw: float = knob(0.0, at_least(0))
    tolerance_usdt: float = knob(0.0, at_least(0))


@dataclass(frozen=True)
class RiskConfig(ConfigPart):
    """``live.risk``: the risk manager's limits (null or 0 switches a limit off)."""

    section: ClassVar[str] = "live.risk"
    max_daily_loss: float | None = knob(None, optional(between(0, 1, high_open=True,
                                                               note=" (a fraction of equity, e.g. 0.05)")))
    max_position_krw: float | None = knob(None, optional(at_least(0)))  # USDT held after an order, at the close
    max_order_krw: float | None = knob(None, optional(at_least(0)))  # notional of one order
    cooldown_bars: int = knob(0, at_least(0))  # bars of REDUCING after a round trip that lost money
    kill_switch: str | None = knob("KILL")  # HALTED while this file exists (relative to live.state_dir)
    clear_halt: bool = knob(False)  # lift HALTED on this start (journaled); refused while the cause persists
    stop_on_halt: bool = knob(False)  # end the session (exit code 3) at the bar that halted it

    def kill_switch_path(self, state_dir: str | Path | None) -> Path | None:
        """The kill switch file: ``kill_switch`` under ``state_dir`` unless it is absolute; None when off."""
        if not self.kill_switch:
            return None
        path = Path(self.kill_switch)
        return path if path.is_absolute() or state_dir is None else Path(state_dir) / path


@dataclass(frozen=True)
class ChallengerConfig(ConfigPart):
    """``live.learn.challenger``: the updated copy trades on paper until it beats the incumbent."""

    section: ClassVar[str] = "live.learn.challenger"
    enabled: bool = knob(True)
    window: Any = knob("1d", bars_or_duration())  # compare the two accounts over this span (a number: bars)
    margin: float = knob(0.001, ("a finite return difference >= 0, e.g. 0.001",
                                 lambda v: math.isfinite(v) and v >= 0))


@dataclass(frozen=True)
class LearnConfig(ConfigPart):
    """``live.learn``: online PPO while trading (the update's settings are :class:`OnlineLearnConfig`'s)."""

    section: ClassVar[str] = "live.learn"
    enabled: bool = knob(False)
    allow_real_orders: bool = knob(False)  # learning while a real (not paper) broker trades
    lr: float = knob_of(OnlineLearnConfig, "lr")
    clip_epsilon: float = knob_of(OnlineLearnConfig, "clip_epsilon")
    entropy_coef: float = knob_of(OnlineLearnConfig, "entropy_coef")
    value_coef: float = knob_of(OnlineLearnConfig, "value_coef")
    update_epochs: int = knob_of(OnlineLearnConfig, "update_epochs")
    batch_size: int = knob_of(OnlineLearnConfig, "batch_size")
    every: int = knob_of(OnlineLearnConfig, "every")
    anchor: float = knob_of(OnlineLearnConfig, "anchor")
    max_distance: float = knob_of(OnlineLearnConfig, "max_distance")
    keep_versions: int | None = knob(100, optional(at_least(2)))  # retention: the last N (null keeps all)
    challenger: ChallengerConfig = knob(ChallengerConfig())

    def learner(self, algo: ConfigPart) -> OnlineLearnConfig:
        """The learner's settings: these, with the discount, GAE, clipping and reward scale the policy trained with
        (``algo``: the checkpoint's ``AlgoConfig``; any part with those fields)."""
        own = {k: getattr(self, k) for k in OnlineLearnConfig.field_names() if k in self.field_names()}
        trained = {k: getattr(algo, k) for k in ("gamma", "gae_lambda", "max_grad_norm", "reward_scale")
                   if k in algo.field_names()}
        return OnlineLearnConfig(**own, **trained)


@dataclass(frozen=True)
class ApiConfig(ConfigPart):
    """``live.api``: the HTTP control API and status page."""

    section: ClassVar[str] = "live.api"
    enabled: bool = knob(False)
    host: str = knob("127.0.0.1")  # any other bind refuses to start without a token in token_env
    port: int = knob(8765, ("a TCP port (0-65535)", lambda v: 0 <= v < 65536))
    token_env: str = knob("KPREMIA_API_TOKEN")
    max_connections: int = knob(64, at_least(1))  # open connections (and requests) at once; beyond: 503 at once
    save_every_s: float = knob(10.0, at_least(0))  # /save at most once per this many seconds (429 in between)

    def token(self) -> str | None:
        """The bearer token from the environment variable ``token_env`` (None when unset)."""
        value = os.environ.get(self.token_env) if self.token_env else None
        return value or None


DEFAULT_CALLBACKS = {"logging": {"every": "1d"}, "metrics": {}, "checkpoints": {"every": "1d"},
                     "model": {}, "api": {}, "alerts": None}


@dataclass(frozen=True)
class LiveConfig(ConfigPart):
    """``live``: what the live runner hosts, where bars come from and orders go, and its limits."""

    section: ClassVar[str] = "live"
    state_dir: str | None = knob(None)  # journal, paper exchange, metrics; reuse it to resume
    policy: str = knob("checkpoint")  # checkpoint (needs ckpt=...) | premium_threshold (registered policies)
    feed: str = knob("replay")  # replay | ccxt (registered feeds)
    broker: str = knob("paper")  # paper | ccxt (registered brokers)
    max_bars: int | None = knob(None, optional(at_least(1)))  # stop after this many bars in this session
    symbol: str = knob("USDT/KRW")
    initial_krw: float | None = knob(None, optional(positive()))  # paper account cash (null: env.initial_krw)
    refresh_interval: float = knob(60.0, positive())  # ccxt feed: seconds between polls for a new candle
    allow_real_orders: bool = knob(False)  # a real broker refuses to start without it
    sandbox: bool = knob(False)  # ccxt broker: the exchange's sandbox/testnet where it has one
    trace_policy: bool = knob(True)  # act through a checked TorchScript trace of the network
    resend_intents: bool = knob(True)  # on start, send an intent the broker never saw if its fill is still ahead
    replay: ReplayConfig = knob(ReplayConfig())
    rule: RuleConfig = knob(RuleConfig())
    paper: PaperConfig = knob(PaperConfig())
    ccxt: CcxtConfig = knob(CcxtConfig())
    journal: JournalConfig = knob(JournalConfig())
    reconcile: ReconcileConfig = knob(ReconcileConfig())
    risk: RiskConfig = knob(RiskConfig())
    learn: LearnConfig = knob(LearnConfig())
    api: ApiConfig = knob(ApiConfig())
    rollback: str | None = knob(None)  # a model version to trade from on this start, e.g. v1_0_3
    # Callbacks in call order: name -> options (null switches one off; {} on with its defaults).
    callbacks: dict[str, Any] = knob(DEFAULT_CALLBACKS)

    def check_together(self) -> None:
        """The risk engine is not a callback: ``live.callbacks.risk`` cannot switch it off."""
        super().check_together()
        if "risk" in self.callbacks:
            raise UserError("the risk engine is always on and is not a callback: remove live.callbacks.risk; its "
                            "limits are live.risk.* (all off by default on paper)")

    def callback_on(self, name: str) -> bool:
        """Whether callback ``name`` is switched on in ``live.callbacks``."""
        options = self.callbacks.get(name)
        return options is not None and options is not False

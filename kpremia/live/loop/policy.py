"""Policies the runner can host: a trained checkpoint, or a registered rule.

One interface (:class:`LivePolicy`), so a rule can trade on paper beside the agent::

    policy = LIVE_POLICIES.get(name).from_config(cli_cfg, live, overrides)   # and the run config it trades with
    policy.scheme                    # action scheme: n_actions, action_names, target_weight
    policy.clock                     # when it decides (the DecisionClock it was trained with)
    policy.normalizer                # the normaliser its observations need (None: a rule on raw bars)
    policy.act(obs, bar) -> int      # the action at the close of a decision bar
    policy.state_dict() / load_state_dict()

A checkpoint policy acts as it was trained: the checkpoint's own normaliser
and windows, eval mode, argmax by default or sampling at ``temperature`` from
its own seeded generator (saved in the state, so a restart samples the same).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd
import torch
from torch import Tensor

from kpremia.core.bars import bar_of_minutes
from kpremia.core.config import checkpoint_of
from kpremia.core.errors import UserError
from kpremia.core.registry import ACTION_SCHEMES, LIVE_POLICIES
from kpremia.data.market import Normalizer
from kpremia.envs.clock import DecisionClock
from kpremia.envs.config import EnvConfig
from kpremia.run.live_config import LiveConfig
from kpremia.run.live_hparams import RUNTIME_RANGES
from kpremia.live.loop.types import Bar
from kpremia.run.run_config import RunConfig

log = logging.getLogger(__name__)


@runtime_checkable
class LivePolicy(Protocol):
    """What the runner calls on a policy (``LIVE_POLICIES`` registry)."""

    name: str
    scheme: Any  # the action scheme: n_actions, action_names, target_weight
    clock: DecisionClock  # when it decides (in bars); the runner holds in between
    bar: pd.Timedelta | None  # the bar size it acts on (a checkpoint's training bars; None: the data's)
    normalizer: Normalizer | None  # None: a rule that reads raw bars, needs no features
    windows: dict[str, int] | None  # observation windows (None: the run config's)

    @classmethod
    def from_config(cls, cli_cfg: Mapping[str, Any], live: LiveConfig,
                    overrides: list[str]) -> tuple[LivePolicy, dict[str, Any]]:
        """The policy and the run config it trades with (data, env: a checkpoint brings its own)."""

    def act(self, obs: dict[str, Tensor] | None, bar: Bar) -> int:
        """The action at the close of ``bar`` (a decision bar)."""

    def fingerprint(self) -> str:
        """What identifies it (a restart refuses another policy in the same state_dir)."""

    def state_dict(self) -> dict[str, Any]:
        """What it needs to resume exactly (e.g. a sampling generator)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


@LIVE_POLICIES.register("checkpoint")
class CheckpointPolicy:
    """A trained agent loaded from a ``fit`` checkpoint (module, normaliser, windows, action scheme).

    ``lock`` guards the acting weights: the online learner's model host swaps them
    under the same lock (it is created with this policy's lock).
    """

    def __init__(self, ckpt: str | Path, deterministic: bool = True, temperature: float = 1.0, seed: int = 0,
                 trace: bool = True) -> None:
        from kpremia.run.checkpoint import load_checkpoint

        loaded = load_checkpoint(ckpt)
        if loaded.normalizer is None:
            raise UserError(f"checkpoint {str(ckpt)!r} has no saved normaliser; retrain it with this kpremia "
                            "version (live trading needs the training statistics)")
        self.ckpt = str(Path(ckpt).resolve())
        self.module = loaded.module
        self.module.eval()
        self.net = self.module.net.eval()
        self.cfg = loaded.module.cfg
        self.normalizer: Normalizer | None = loaded.normalizer
        self.env = loaded.cfg.env  # the market model it was trained on (the online reward's too)
        self.windows = self.env.observation  # windows and optional features: what its observation builder needs
        self.scheme = self.env.scheme()
        # The bar size it was trained on: the feed must give bars of that size (kpremia.live.loop.build).
        self.bar = bar_of_minutes(loaded.bar_minutes)
        # Trained to act every k bars (env.decision_every): live acts on the same cadence, holding in between.
        self.clock = self.env.in_bars(loaded.bar_minutes).clock
        self.lock = threading.RLock()
        self.deterministic = bool(deterministic)
        allowed = RUNTIME_RANGES["temperature"]  # the range /set_hparams accepts: one table for both doors
        if not self.deterministic and not allowed.contains(float(temperature)):
            raise UserError(f"eval.temperature={temperature} must be in {allowed.describe()} to sample actions "
                            f"({allowed.meaning})")
        self.temperature = float(temperature)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.name = f"checkpoint:{Path(ckpt).name}"
        self.trace = bool(trace)
        self._traced: Any = None

    @classmethod
    def from_config(cls, cli_cfg: Mapping[str, Any], live: LiveConfig,
                    overrides: list[str]) -> tuple[CheckpointPolicy, RunConfig]:
        """The checkpoint of ``ckpt=...``; the run config is the checkpoint's, with explicit overrides."""
        ckpt = checkpoint_of(cli_cfg)
        if not ckpt:
            raise UserError("`live` needs a policy: add ckpt=<run dir>/checkpoints/last.ckpt, or "
                            "live.policy=premium_threshold for the rule")
        from kpremia.run.checkpoint import apply_overrides

        eval_cfg = cli_cfg.get("eval", {})
        policy = cls(ckpt, deterministic=bool(eval_cfg.get("deterministic", True)),
                     temperature=float(eval_cfg.get("temperature", 1.0)), seed=int(cli_cfg.get("seed", 0)),
                     trace=live.trace_policy)
        return policy, apply_overrides(policy.cfg, dict(cli_cfg), overrides)

    def act(self, obs: dict[str, Tensor], bar: Bar) -> int:
        """The module's action for one observation (eval mode, no gradients).

        The network stays in eval mode for the whole run (set once in ``__init__``):
        toggling train/eval per call, as ``RLModule.act`` does, costs more than the
        forward pass.  The argmax path runs a TorchScript trace of the network (about a
        third less Python overhead per bar); it shares the network's parameters, so
        weights loaded in place (an online update, a rollback) act at once.
        """
        with self.lock:
            if self.deterministic:
                if self.trace and self._traced is None:
                    self._traced = self._trace(obs)
                forward = self._traced if self._traced is not None and self._traced is not False else self.net
                with torch.inference_mode():
                    out = forward(obs)
                logits = out[0] if isinstance(out, tuple) else out  # (log-probs, value) or Q-values
                return int(logits.argmax(dim=-1)[0])
            with torch.inference_mode():
                a = self.net.act(obs, deterministic=False, temperature=self.temperature, generator=self.generator)
            return int(a[0])

    def _trace(self, obs: dict[str, Tensor]) -> Any:
        """A trace of the network checked against it on ``obs``; ``False`` (eager from then on) if they differ."""
        try:
            # TorchScript tracing rather than torch.compile, which needs a C++ toolchain at run
            # time and compiles for seconds; the trace is checked below, and live.trace_policy=false
            # turns it off.  Its warnings (torch's own, about TorchScript's future and shape checks
            # in its RNN code, which the fixed observation shapes make constant) are silenced.
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(self.net, (obs,), strict=False, check_trace=False)
                eager, got = self.net(obs), traced(obs)
            eager = eager[0] if isinstance(eager, tuple) else eager
            got = got[0] if isinstance(got, tuple) else got
            if torch.equal(eager, got):
                return traced
            log.info("the traced policy differs from the network; acting with the network itself")
        except Exception as exc:  # a third-party encoder torch.jit cannot trace: act eagerly
            log.info("policy not traceable (%s: %s); acting with the network itself", type(exc).__name__, exc)
        return False

    def fingerprint(self) -> str:
        """sha256 of the checkpoint file (a restart refuses a changed file)."""
        digest = hashlib.sha256()
        with open(self.ckpt, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"])


@LIVE_POLICIES.register("premium_threshold")
class PremiumThresholdRule:
    """The ``premium_threshold`` baseline as a live rule: buy at premium <= ``buy``, sell at >= ``sell``.

    It wraps the baseline itself (:class:`kpremia.eval.baselines.PremiumThreshold`): thresholds
    given (``method="given"``, deciding on every bar), or fitted on the train split of the data
    exactly as the baseline is fitted for ``test`` (pass ``fit_on``: a MarketTensors train
    split), cadence included.  Each bar's decision is the baseline's
    (:meth:`~kpremia.eval.baselines.PremiumThreshold.decide`) and its clock the baseline's, so
    the band rule's decision has one home.
    Acts in the ``hold_buy_sell`` scheme on the bar's premium; needs no normaliser.
    """

    def __init__(self, buy_threshold: float | None = None, sell_threshold: float | None = None,
                 fit_on: Any = None, env: EnvConfig | None = None) -> None:
        from kpremia.eval.baselines import PremiumThreshold, make_baselines

        if buy_threshold is None or sell_threshold is None:
            if fit_on is None:
                raise UserError("the premium_threshold rule needs live.rule.buy_threshold and "
                                "live.rule.sell_threshold, or data to fit them on")
            baseline = make_baselines(["premium_threshold"], env)["premium_threshold"]
            baseline.fit(fit_on)  # levels and cadence, as for `test`
        else:
            if not float(buy_threshold) < float(sell_threshold):
                raise UserError(f"live.rule.buy_threshold={buy_threshold} must be below "
                                f"sell_threshold={sell_threshold}")
            baseline = PremiumThreshold(method="given", buy_level=float(buy_threshold),
                                        sell_level=float(sell_threshold))  # every bar
        self.baseline = baseline
        self.buy_threshold, self.sell_threshold = float(baseline.buy_threshold), float(baseline.sell_threshold)
        self.scheme = ACTION_SCHEMES.get("hold_buy_sell")()
        self.clock = baseline.decision_clock  # the cadence its levels were chosen at
        self.bar = None  # any bar size: it reads the premium of each bar
        self.normalizer = None
        self.windows = None
        self.name = f"premium_threshold(buy<={self.buy_threshold:.4f}, sell>={self.sell_threshold:.4f})"

    @classmethod
    def from_config(cls, cli_cfg: Mapping[str, Any], live: LiveConfig,
                    overrides: list[str]) -> tuple[PremiumThresholdRule, dict[str, Any]]:
        """``live.rule``'s thresholds, or fitted on the train split of the run's data with its fills."""
        cfg = dict(cli_cfg)
        rule = live.rule
        fit_on = None
        if rule.buy_threshold is None or rule.sell_threshold is None:
            from kpremia.envs.experiment import load_market

            fit_on = load_market(cfg, ("train",)).tensors["train"]
        return cls(rule.buy_threshold, rule.sell_threshold, fit_on=fit_on, env=EnvConfig.of(cfg["env"])), cfg

    def act(self, obs: dict[str, Tensor] | None, bar: Bar) -> int:
        return self.baseline.decide(bar.premium)

    def fingerprint(self) -> str:
        return f"premium_threshold:{self.buy_threshold!r}:{self.sell_threshold!r}"

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

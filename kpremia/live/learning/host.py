"""ModelHost: the acting network, its versions, the online learner and the challenger, behind one lock.

Both front ends use it: ``python -m kpremia serve`` (the control API alone) and
the live runner's ``online_learning`` callback (the API beside a trading loop).
Requests arrive on server threads and the runner acts on its own thread, so
every read or swap of the acting weights holds :attr:`ModelHost.lock`; a swap
is a ``load_state_dict`` of a few tens of KB (well under a millisecond).

The online update itself never holds the lock: it runs on the learner's own
copy of the network (:class:`~kpremia.live.learning.online_ppo.OnlinePPO`), and only the
publication of its result takes the lock.  Which network trades after an
update depends on the mode:

* ``challenger`` (default): the updated copy is the *challenger*; it trades on
  paper beside the incumbent and replaces it only when
  :class:`~kpremia.live.learning.challenger.Challenger` says so (a ``promotion`` version);
* direct (``live.learn.challenger.enabled=false``): every kept update trades.

Every weight change is a version (:mod:`kpremia.live.learning.versions`) and every
request or model event a row of the model journal (:mod:`kpremia.live.learning.control_log`).
Rows of bar processing carry the trading journal's step (``bar``), so a restart
rolls them back with it (:meth:`~kpremia.live.learning.control_log.ControlLog.rewind`).
Version names come from :attr:`ModelHost.issued` (the last number this history
issued, part of :meth:`ModelHost.state_dict`), never from the folders on disk,
so a restart after a kill names the same weights the same way.

A load or rollback holds :attr:`ModelHost.learn_lock` as well, so it never
changes the learner's network under a running update, and an update that ran
on the weights rolled away from is discarded, not published (its
``lineage`` differs from the learner's).
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from kpremia.core.bars import DEFAULT_BAR
from kpremia.core.errors import UserError
from kpremia.run.live_config import ChallengerConfig
from kpremia.live.learning.challenger import Challenger, ChallengerDecision
from kpremia.live.learning.control_log import ControlLog
from kpremia.run.live_hparams import check_hparam
from kpremia.live.learning.online_ppo import OnlinePPO, Transition, UpdateResult
from kpremia.run.live_config import RUNTIME_HPARAMS, OnlineLearnConfig
from kpremia.live.learning.versions import Version, VersionStore, next_version

log = logging.getLogger(__name__)


class ModelHost:
    """Hosts one policy network for acting, learning, versioning and control.

    Args:
        module: the loaded RLModule (its ``net`` acts; its ``spec`` and ``action_names`` describe it).
        state_dir: where ``versions/`` and ``model_journal.sqlite`` live.
        learn: the online learner's settings, or None for no learning.
        challenger: the challenger's settings (``enabled=False``: direct mode).
        source: the checkpoint file (recorded in the first version's manifest).
        deterministic / temperature: how ``act`` picks (argmax, or sampled at ``temperature``).
        lock: the lock of the acting weights; the live runner passes its checkpoint policy's, so the
            policy acts and the host swaps weights under one lock.
        keep_versions: retention (:meth:`VersionStore.prune`): the last N versions besides the acting, the
            challenger, checkpoints and promotions (None keeps all).
        trading: the live runner's checkpoint policy, whose sampling ``temperature`` follows ``set_hparams``.
        begin: continue from the newest version in ``state_dir`` now (``serve``), or start ``v1_0_0``;
            False (a live session) writes nothing until :meth:`begin` or :meth:`load_state_dict` (a restart).
        bar: the bar size of the bars the challenger is judged on (its window is a duration).
    """

    def __init__(self, module: Any, state_dir: str | Path, *, learn: OnlineLearnConfig | None = None,
                 challenger: ChallengerConfig | None = None, source: str | None = None, deterministic: bool = True,
                 temperature: float = 1.0, seed: int = 0, lock: threading.RLock | None = None,
                 keep_versions: int | None = None, trading: Any | None = None, begin: bool = True,
                 bar: pd.Timedelta = DEFAULT_BAR):
        self.lock = lock if lock is not None else threading.RLock()  # the acting weights
        self.learn_lock = threading.RLock()  # the learner (its window, optimiser, copy of the weights)
        self.module = module
        self.net: nn.Module = module.net
        self.net.eval()
        self.state_dir = Path(state_dir)
        self.versions = VersionStore(self.state_dir / "versions")
        self.log = ControlLog(self.state_dir / "model_journal.sqlite")
        self.deterministic = bool(deterministic)
        self.temperature = float(temperature)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.learner = OnlinePPO(self.net, learn) if learn is not None else None
        self.challenger_cfg = challenger or ChallengerConfig(enabled=False)
        self.challenger = Challenger(self.challenger_cfg, bar) if self.learner and self.challenger_cfg.enabled else None
        self.challenger_net: nn.Module | None = copy.deepcopy(self.net) if self.challenger else None
        self.challenger_version: str | None = None
        self.bars_seen = 0
        self.last_update: UpdateResult | None = None
        self.last_challenge: ChallengerDecision | None = None
        self.started = time.time()
        self.source = source
        self.keep_versions = keep_versions
        self.trading = trading
        self.issued: tuple[int, int, int] | None = None  # the last version number this history issued
        self.version: str | None = None  # set by begin() or load_state_dict()
        if begin:
            self.begin()

    def begin(self, *, adopt_latest: bool = True, bar: int | None = None) -> Version:
        """Start the history: ``v1_0_0`` from the checkpoint's weights, or (``adopt_latest``) the newest version.

        ``bar``: the first step of the live session that starts it (its ``start`` row belongs to that bar).

        ``adopt_latest=False`` (a new live session) accepts only an empty ``versions/`` or a lone ``v1_0_0``
        (a start killed before its first commit: reused when it holds these weights); another run's
        history is refused in one line (start-up checks refuse the usual case earlier, before any write).
        """
        latest = self.versions.latest()
        if latest is not None and adopt_latest:
            self.version, self.issued = latest.name, latest.number
            return latest
        if latest is not None and [v.name for v in self.versions.list()] != ["v1_0_0"]:
            raise UserError(f"{self.versions.root} holds another run's model history ({latest.name}) but this "
                            "session has none: move versions/ and model_journal.sqlite away too to start over, or "
                            "use a new live.state_dir")
        first = self._new_version(self.net.state_dict(), "checkpoint", None, source=self.source)
        self.version = first.name
        self.log.write("host", "start", {"source": self.source}, model_version=self.version, bar=bar)
        return first

    def _new_version(self, weights: dict[str, torch.Tensor], kind: str, parent: str | None, **details: Any) -> Version:
        """Save the next version of this history (named from :attr:`issued`), then apply retention."""
        version = self.versions.save(weights, name=next_version(self.issued, kind), kind=kind, parent=parent,
                                     **details)
        self.issued = version.number
        protect = {self.version, self.challenger_version, version.name, version.parent}
        self.versions.prune(self.keep_versions, protect)
        return version

    # ----------------------------------------------------------------- acting
    def act(self, obs: dict[str, torch.Tensor], deterministic: bool | None = None) -> tuple[int, torch.Tensor]:
        """The acting network's action for one observation and its action probabilities."""
        det = self.deterministic if deterministic is None else bool(deterministic)
        with self.lock, torch.inference_mode():
            logp, _ = self.net(obs)
            if det:
                action = int(logp[0].argmax())
            else:
                from kpremia.algos.networks import sample_categorical

                action = int(sample_categorical(logp / self.temperature, self.generator)[0])
        return action, logp[0].exp()

    def logprob(self, obs: dict[str, torch.Tensor], action: int, net: nn.Module | None = None) -> float:
        """Behaviour log-probability of ``action`` under the acting (or the given) network."""
        with self.lock, torch.inference_mode():
            logp, _ = (net or self.net)(obs)
        return float(logp[0, int(action)])

    def challenger_act(self, obs: dict[str, torch.Tensor]) -> int:
        """The challenger's (deterministic) action, for its paper account."""
        with self.lock, torch.inference_mode():
            logp, _ = self.challenger_net(obs)
        return int(logp[0].argmax())

    # ----------------------------------------------------------------- learning
    def require_learner(self) -> OnlinePPO:
        if self.learner is None:
            raise UserError("online learning is off; start with live.learn.enabled=true")
        return self.learner

    def add_transition(self, transition: Transition) -> bool:
        """Feed the learner; True when an update is due (the caller runs :meth:`update`, maybe on a thread)."""
        learner = self.require_learner()
        with self.learn_lock:
            return learner.add(transition)

    def update(self, bars_seen: int | None = None) -> UpdateResult:
        """Run one online update now and publish it as a version (a load waits until it is published)."""
        learner = self.require_learner()
        with self.learn_lock:
            lineage = learner.lineage
            result = learner.update()
            if bars_seen is not None:
                self.bars_seen = int(bars_seen)
            self.publish(result, lineage)
        return result

    def publish(self, result: UpdateResult, lineage: int | None = None, bar: int | None = None) -> Version | None:
        """Keep (version + swap) or refuse an update's weights.

        ``lineage``: the learner's lineage when the update started; an update that ran before a load or
        rollback (another lineage) is discarded, its weights are of the line rolled away from.
        ``bar``: the live step that publishes it (None: a request to the API).
        """
        learner = self.require_learner()
        figures = {k: v for k, v in result._asdict().items()}
        with self.learn_lock:
            if lineage is not None and lineage != learner.lineage:
                self.log.write("learner", "discard", {**figures, "reason": "the model was loaded or rolled back "
                                                      "while this update ran"}, model_version=self.version, ok=False,
                               bar=bar)
                return None
            if not result.kept or not all(math.isfinite(float(v)) for v in figures.values()):
                self.log.write("learner", "refuse", {**figures, "reason": "non-finite loss or weights"},
                               model_version=self.version, ok=False, bar=bar)
                return None
            weights = learner.weights()
            with self.lock:
                parent = (self.challenger_version or self.version) if self.challenger else self.version
                version = self._new_version(weights, "update", parent, bars_seen=self.bars_seen,
                                            transitions_seen=learner.transitions_seen, updates=learner.updates,
                                            figures=figures)
                if self.challenger is not None:
                    self.challenger_net.load_state_dict(weights)
                    self.challenger_version = version.name
                else:
                    self.net.load_state_dict(weights)
                    self.version = version.name
                self.last_update = result
        trades = {} if self.challenger is not None else {"trades_from_step": self.bars_seen + 1}
        self.log.write("learner", "update", {**figures, **trades}, model_version=version.name, bar=bar)
        return version

    def judge(self, bar_time: str, incumbent_value: float, challenger_value: float,
              risk_state: str, bar: int | None = None) -> ChallengerDecision | None:
        """Record both accounts after a bar (its step: ``bar``); promote the challenger when it has won (journaled)."""
        if self.challenger is None:
            return None
        decision = self.challenger.record(bar_time, incumbent_value, challenger_value, risk_state)
        if decision is None:
            return None
        self.last_challenge = decision
        detail = {**decision._asdict(), "challenger_version": self.challenger_version}
        if decision.outcome == "promote" and self.challenger_version is not None:
            with self.lock:
                weights = {k: v.detach().clone() for k, v in self.challenger_net.state_dict().items()}
                version = self._new_version(weights, "promotion", self.challenger_version,
                                            bars_seen=self.bars_seen, figures=detail)
                self.net.load_state_dict(weights)
                self.version = version.name
            self.log.write("challenger", "promote", {**detail, "trades_from_step": self.bars_seen + 1},
                           model_version=self.version, bar=bar)
        else:
            self.log.write("challenger", "refuse", detail, model_version=self.version, ok=False, bar=bar)
        return decision

    # ----------------------------------------------------------------- control
    def save(self, note: str | None = None) -> Version:
        """Save the acting weights as a new (patch) version."""
        with self.lock:
            version = self._new_version(self.net.state_dict(), "update", self.version, bars_seen=self.bars_seen,
                                        figures={"note": note or "saved by request"})
            self.version = version.name
        return version

    def load(self, name: str) -> Version:
        """Roll the acting network (and the learner, re-anchored) back to version ``name``, bit for bit.

        Holds the learner's lock too: a running update finishes first, and is then discarded at publication.
        """
        version, weights = self.versions.load(name)
        with self.learn_lock, self.lock:
            self.net.load_state_dict(weights)
            self.version = version.name
            if self.challenger_net is not None:
                self.challenger_net.load_state_dict(weights)
                self.challenger_version = None
            if self.learner is not None:
                self.learner.restart_from(weights)
        self.log.write("host", "load", {"to": version.name, "trades_from_step": self.bars_seen + 1},
                       model_version=version.name)
        return version

    def set_hparams(self, **changes: float) -> dict[str, Any]:
        """Run-time settings: ``temperature`` (acting) and the learner's ``lr``, ``clip_epsilon``, ...

        Every value is checked (:func:`~kpremia.run.live_hparams.check_hparam`) before any is applied: all or nothing.
        """
        changes = {k: check_hparam(k, v) for k, v in changes.items() if v is not None}
        if not changes:
            raise UserError("set_hparams needs at least one of temperature, " + ", ".join(RUNTIME_HPARAMS))
        temperature = changes.pop("temperature", None)
        if temperature is not None and self.trading is not None and self.trading.deterministic:
            raise UserError("temperature changes sampled actions only, and this session trades the argmax "
                            "(eval.deterministic=true), so it would not change trading; start the session with "
                            "eval.deterministic=false to trade sampled actions")
        if changes:
            self.require_learner()
        with self.learn_lock, self.lock:
            if changes:
                self.learner.set_hparams(**changes)
            if temperature is not None:
                self._set_temperature(temperature)
            return self.hparams()

    def _set_temperature(self, temperature: float) -> None:
        """The temperature of ``/act``'s sampled actions and, in a live session that samples, of trading."""
        self.temperature = float(temperature)
        if self.trading is not None and not self.trading.deterministic:
            self.trading.temperature = self.temperature

    def hparams(self) -> dict[str, Any]:
        out: dict[str, Any] = {"temperature": self.temperature, "deterministic": self.deterministic}
        if self.learner is not None:
            out.update({k: getattr(self.learner.config, k) for k in RUNTIME_HPARAMS})
        return out

    def learning_status(self) -> dict[str, Any]:
        if self.learner is None:
            return {"enabled": False}
        out: dict[str, Any] = {
            "enabled": True, "mode": "challenger" if self.challenger else "direct",
            "updates": self.learner.updates, "transitions_seen": self.learner.transitions_seen,
            "window": len(self.learner.window), "anchor_distance": self.learner.anchor_distance(),
            "max_distance": self.learner.config.max_distance, "challenger_version": self.challenger_version,
        }
        if self.last_update is not None:
            out["last_update"] = self.last_update._asdict()
        if self.last_challenge is not None:
            out["last_challenge"] = self.last_challenge._asdict()
        return out

    # ----------------------------------------------------------------- restart
    def state_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "version": self.version, "challenger_version": self.challenger_version, "issued": self.issued,
                "temperature": self.temperature, "generator": self.generator.get_state(),
                "bars_seen": self.bars_seen,
                "learner": self.learner.state_dict() if self.learner else None,
                "challenger": self.challenger.state_dict() if self.challenger else None,
            }

    def load_state_dict(self, state: dict[str, Any], *, rollback: str | None = None) -> None:
        """Restore after a restart: the acting weights come from the saved version, bit for bit.

        ``rollback``: the version this start trades instead (``live.rollback``); the snapshot's acting and
        challenger versions are then not read, so a damaged one can be rolled away from.  Writes nothing
        (the caller journals the restore once the start is accepted).
        """
        with self.learn_lock, self.lock:
            if rollback is None:
                _, weights = self.versions.load(state["version"])
                self.net.load_state_dict(weights)
            self.version = state["version"]
            issued = state.get("issued")
            if issued is None:  # a snapshot of an earlier release: its versions were numbered after the newest
                latest = self.versions.latest()
                issued = latest.number if latest else None
            self.issued = tuple(issued) if issued is not None else None
            self._set_temperature(float(state["temperature"]))
            self.generator.set_state(state["generator"])
            self.bars_seen = int(state["bars_seen"])
            if self.learner is not None and state.get("learner") is not None:
                self.learner.load_state_dict(state["learner"])
            if self.challenger is not None and state.get("challenger") is not None:
                self.challenger.load_state_dict(state["challenger"])
            self.challenger_version = state.get("challenger_version")
            if self.challenger_net is not None and rollback is None:
                source = self.challenger_version or self.version
                self.challenger_net.load_state_dict(self.versions.load(source)[1])

    def close(self) -> None:
        self.log.close()

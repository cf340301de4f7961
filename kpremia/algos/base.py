"""What PPO and DQN share: the simulator, the tick loop, validation, counters, resume.

How RL sits in Lightning here (see docs/architecture.md):

* ``automatic_optimization = False``; the module owns its simulator and collects
  experience inside ``training_step``.  The train "data" is a sized tick loader
  (``range(ticks_per_epoch)``, no distributed sampler), so every rank runs the
  same number of steps, epochs are finite and validation intervals work.
* One ``training_step`` = one optimizer step (one forward through the DDP
  wrapper, one backward), which keeps Lightning's DDP gradient sync exact.  An
  algorithm decides per tick whether to collect experience first.
* Own counters ``env_steps`` (summed over ranks) and ``updates`` drive schedules
  and the x-axis of logs; ``global_step`` stays Lightning's optimizer-step count.
* Envs are seeded ``seed + rank * n_envs`` (one generator per rank over its
  ``n_envs`` envs); every random draw goes through a dedicated ``torch.Generator``
  saved in the checkpoint, so resume is exact on CPU.
* Validation runs a separate, sequential simulator over the whole validation
  split with the deterministic policy, in eval mode (the same backtest as ``test``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from kpremia.algos.config import AlgoConfig
from kpremia.core.io import atomic_write_json
from kpremia.core.registry import ENCODERS
from kpremia.core.spec import ObsSpec
from kpremia.data.market import MarketData
from kpremia.data.tensors import MarketTensors
from kpremia.envs.batched import BatchedEnv
from kpremia.envs.config import EnvConfig
from kpremia.eval.backtest import run_policy_backtests, trace_metrics

log = logging.getLogger(__name__)


class TickDataset(Dataset):
    """``range(n)``: drives ``training_step`` ``n`` times per epoch; carries no data."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class EpisodeTally:
    """Returns of the episodes that end during one round, summed on the device (no host sync per step).

    PPO's rollout and DQN's collect round both report the mean return of the episodes
    that ended in them; this is the one place that sums them.
    """

    def __init__(self, device: torch.device):
        self.return_sum = torch.zeros((), device=device)
        self.count = torch.zeros((), device=device)

    def add(self, terminated: torch.Tensor, truncated: torch.Tensor, episode_return: torch.Tensor) -> None:
        """Count the envs whose episode ended at this step (``episode_return`` is the env's info entry)."""
        done_f = (terminated | truncated).float()
        self.return_sum += (episode_return * done_f).sum()
        self.count += done_f.sum()

    def stats(self) -> dict[str, torch.Tensor]:
        """``episode_return`` (mean over the ended episodes, 0 when none ended) and ``episodes``."""
        return {"episode_return": self.return_sum / self.count.clamp_min(1.0), "episodes": self.count}


class RLModule(L.LightningModule):
    """Base LightningModule of kpremia's algorithms (one level of inheritance only).

    Args:
        cfg: the full resolved run config (a plain dict); saved as hyperparameters so
            a checkpoint alone rebuilds the module (:func:`kpremia.run.checkpoint.load_module`).
        spec: the observation spec of the market the policy will see.
        market: train/val MarketData (not saved as a hyperparameter; ``None`` when
            the module is rebuilt only to act).
    """

    # The algorithm's typed ``algo`` part: its knobs and their checks (a plug-in brings its own).
    config_class: ClassVar[type[AlgoConfig]] = AlgoConfig

    def __init__(self, cfg: dict, spec: ObsSpec, market: MarketData | None = None):
        super().__init__()
        # Typed parts, checked once; the saved config holds them under today's key names.
        self.env_cfg = EnvConfig.of(cfg["env"])
        self.algo_cfg = self.config_class.of(cfg["algo"])
        cfg = {**cfg, "env": self.env_cfg.to_dict(), "algo": self.algo_cfg.to_dict()}
        self.save_hyperparameters({"cfg": cfg, "spec": spec.to_dict()})
        self.automatic_optimization = False
        self.cfg = cfg
        self.spec = spec
        self.market = market
        scheme = self.env_cfg.scheme()
        self.n_actions = int(scheme.n_actions)
        self.action_names = tuple(scheme.action_names)
        self.net = self.build_network(ENCODERS.build(dict(cfg["encoder"]), spec))
        self.env_steps = 0
        self.updates = 0
        self.train_env: BatchedEnv | None = None
        self.val_market: MarketTensors | None = None
        self.val_markets: list[MarketTensors] = []
        self.generator: torch.Generator | None = None
        self.current_obs: dict[str, torch.Tensor] | None = None
        self._pending_state: dict | None = None

    def update_backend(self) -> contextlib.AbstractContextManager:
        """Context for the gradient update: oneDNN off when ``trainer.onednn_update`` is false.

        On CPUs torch runs RNN layers through oneDNN; for the small batched
        forward + backward of an update the native kernels were measured faster
        (``benchmarks/onednn_update.py``), while acting (rollouts, validation,
        live) stays faster with oneDNN, so only the update is switched.
        """
        if (self.cfg.get("trainer") or {}).get("onednn_update", True):
            return contextlib.nullcontext()
        return torch.backends.mkldnn.flags(enabled=False)

    # ----------------------------------------------------------------- hooks for subclasses
    def build_network(self, encoder: nn.Module) -> nn.Module:
        raise NotImplementedError  # pragma: no cover - abstract

    def act(self, obs: dict[str, torch.Tensor], deterministic: bool = True, temperature: float = 1.0,
            generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions for one bar of ``B`` envs, in eval mode and without gradients."""
        was_training = self.net.training
        self.net.eval()
        with torch.inference_mode():
            a = self.net.act(obs, deterministic=deterministic, temperature=temperature, generator=generator)
        self.net.train(was_training)
        return a

    def ticks_per_epoch(self) -> int:
        raise NotImplementedError  # pragma: no cover - abstract

    def env_steps_per_epoch(self, world_size: int | None = None) -> int:
        raise NotImplementedError  # pragma: no cover - abstract

    # ----------------------------------------------------------------- the budget in rounds and epochs
    # A round is one collection (PPO: a rollout, DQN: a collect round) and its updates: the unit a
    # budget is counted in.  An epoch is ``algo.rollouts_per_epoch`` rounds, then a validation; the
    # last epoch holds only the rounds the budget has left, so ``algo.total_env_steps`` is run as
    # asked (rounded up to a whole round), not rounded up to whole epochs.
    def env_steps_per_round(self, world_size: int | None = None) -> int:
        """Env steps of one round over all ranks."""
        return self.env_steps_per_epoch(world_size) // self.algo_cfg.rollouts_per_epoch

    def total_rounds(self, world_size: int | None = None) -> int:
        """Rounds that ``algo.total_env_steps`` asks for (rounded up to a whole round; at least one)."""
        return max(1, math.ceil(self.algo_cfg.total_env_steps / self.env_steps_per_round(world_size)))

    def max_epochs(self, world_size: int | None = None) -> int:
        """Epochs needed to run :meth:`total_rounds` (the last one may be shorter)."""
        return math.ceil(self.total_rounds(world_size) / self.algo_cfg.rollouts_per_epoch)

    def rounds_in_epoch(self, epoch: int, world_size: int | None = None) -> int:
        """Rounds of epoch ``epoch`` (0-based): ``algo.rollouts_per_epoch``, or what is left of the budget."""
        per_epoch = self.algo_cfg.rollouts_per_epoch
        left = self.total_rounds(world_size) - epoch * per_epoch
        return per_epoch if left <= 0 else min(per_epoch, left)  # past the budget (trainer.max_epochs): whole epochs

    # ----------------------------------------------------------------- setup
    @property
    def world_size(self) -> int:
        return self.trainer.world_size if self._trainer is not None else 1

    @property
    def rank(self) -> int:
        return self.trainer.global_rank if self._trainer is not None else 0

    def setup(self, stage: str) -> None:
        if self.market is None:
            raise RuntimeError("this module was built without market data; it can act but not train")
        device = self.trainer.strategy.root_device
        seed = int(self.cfg["seed"])
        n_envs = self.env_cfg.n_envs
        if stage == "fit":
            self.train_env = BatchedEnv.from_config(self.market.tensors["train"].to(device), self.env_cfg,
                                                    n_envs=n_envs, seed=seed + self.rank * n_envs)
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(seed + 7919 * (self.rank + 1))
        if "val" in self.market.tensors:
            self.val_market = self.market.tensors["val"].to(device)
            self.val_markets = [self.val_market, *(m.to(device) for m in self.market.val_draws)]
        self._val_band_returns: list[float] | None = None  # computed at the first validation that needs them

    def val_band_returns(self) -> list[float] | None:
        """Return of the band rule (``premium_threshold``, fit on train) on each validation market, with the run's fills.

        The bar a policy must clear: ``val/excess_return = val/return - val/band_return``
        (the default ``algo.monitor``).  Its backtests run over the whole validation
        markets bar by bar (about as long as one validation), so they run once, at the
        first validation, not in ``setup``: a fit without validation never pays for them.
        ``None`` without a train split.
        """
        if self._val_band_returns is None and "train" in self.market.tensors:
            from kpremia.eval.backtest import run_baseline_backtests_on_markets
            from kpremia.eval.baselines import make_baselines

            log.info("the band rule on the validation split: fitting premium_threshold on train, then "
                     "backtesting %d validation market(s) (once, at the first validation) ...", len(self.val_markets))
            rule = make_baselines(["premium_threshold"], self.env_cfg)["premium_threshold"]
            rule.fit(self.market.tensors["train"])
            self._val_band_returns = [
                float(trace_metrics(traces["band"])["return"])
                for traces in run_baseline_backtests_on_markets({"band": rule}, self.val_markets, self.env_cfg)]
        return self._val_band_returns

    def train_dataloader(self) -> DataLoader:
        """This epoch's ticks: the same count on every rank (it depends on the config and the epoch only).

        Lightning asks again at every epoch (``reload_dataloaders_every_n_epochs=1``), so the
        last epoch can be shorter than the others.
        """
        epoch = self.trainer.current_epoch if self._trainer is not None else 0
        ticks_per_round = self.ticks_per_epoch() // self.algo_cfg.rollouts_per_epoch
        return DataLoader(TickDataset(self.rounds_in_epoch(epoch) * ticks_per_round), batch_size=None, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TickDataset(1), batch_size=None, shuffle=False)

    # ----------------------------------------------------------------- validation
    def validation_step(self, batch: int, batch_idx: int) -> None:
        """The deterministic policy over every validation market; metrics are means over the markets.

        With ``eval.val_draws > 1`` the markets are the run's val split and further draws of
        the generated market; ``val/draws_above_band`` counts the markets on which the policy's
        return beat the band rule's.
        """
        per_market = [trace_metrics(trace) for trace in
                      run_policy_backtests(lambda obs: self.act(obs, deterministic=True), self.val_markets, self.env_cfg)]
        metrics = {f"val/{k}": sum(float(m[k]) for m in per_market) / len(per_market) for k in per_market[0]}
        bands = self.val_band_returns()
        if bands is not None:
            metrics["val/band_return"] = sum(bands) / len(bands)
            metrics["val/excess_return"] = metrics["val/return"] - metrics["val/band_return"]
            if len(bands) > 1:
                metrics["val/draws_above_band"] = float(sum(float(m["return"]) > b
                                                            for m, b in zip(per_market, bands, strict=True)))
        # Through self.log for checkpoint monitoring (synced across ranks, never rank-zero-only;
        # batch_size=1: the tick "batch" is an int, from which Lightning cannot infer a size),
        # and to the loggers directly so every curve shares the env-steps x-axis.
        self.log_dict({k: v for k, v in metrics.items() if k != "val/return"}, sync_dist=True, logger=False,
                      batch_size=1)
        self.log("val/return", metrics["val/return"], sync_dist=True, prog_bar=True, logger=False, batch_size=1)
        self.log_to_loggers(metrics)

    # ----------------------------------------------------------------- one update, one round's log
    def gradient_step(self, loss: torch.Tensor, max_grad_norm: float) -> None:
        """One optimizer step on ``loss`` (through Lightning, so DDP syncs the gradients); counts ``updates``."""
        opt = self.optimizers()
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self.clip_gradients(opt, gradient_clip_val=max_grad_norm, gradient_clip_algorithm="norm")
        opt.step()
        self.updates += 1

    def log_round(self, round_stats: dict[str, torch.Tensor], max_action_share: torch.Tensor,
                  metrics: dict[str, Any]) -> None:
        """Log one round (a rollout or a collect round): its ``rollout/*`` statistics, then the algorithm's ``metrics``.

        ``round_stats`` holds :meth:`EpisodeTally.stats` and ``reward_mean``; the episode return
        also goes to the progress bar.
        """
        self.log_to_loggers({
            "rollout/episode_return": round_stats["episode_return"],
            "rollout/episodes": round_stats["episodes"],
            "rollout/reward_mean": round_stats["reward_mean"],
            "rollout/max_action_share": max_action_share,
            **metrics,
        })
        self.log("rollout/ep_ret", round_stats["episode_return"], on_step=True, prog_bar=True, logger=False)

    def log_to_loggers(self, metrics: dict[str, Any]) -> None:
        """Write metrics to every logger at x = ``env_steps`` (one host sync for all tensors)."""
        if not self.loggers:
            return
        names = list(metrics)
        tensors = [torch.as_tensor(metrics[k], dtype=torch.float64).reshape(()).cpu() for k in names]
        values = dict(zip(names, torch.stack(tensors).tolist(), strict=True))
        values["env_steps"] = float(self.env_steps)
        values["updates"] = float(self.updates)
        for logger in self.loggers:
            logger.log_metrics(values, step=self.env_steps)
            logger.save()  # flush once per rollout: metrics.csv is current while training runs

    # ----------------------------------------------------------------- exact resume
    def _local_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        if self.train_env is not None:
            state["train_env"] = self.train_env.state_dict()
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        if self.current_obs is not None:
            state["current_obs"] = self.current_obs
        state.update(self.extra_state())
        return state

    def extra_state(self) -> dict[str, Any]:
        """Algorithm-specific per-rank state (e.g. DQN's replay buffer)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what ``extra_state`` returned."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        local = self._local_state()
        if self.world_size > 1:
            gathered: list[Any] = [None] * self.world_size
            torch.distributed.all_gather_object(gathered, _to_cpu(local))
            per_rank = gathered
        else:
            per_rank = [_to_cpu(local)]
        checkpoint["kpremia"] = {
            "env_steps": self.env_steps,
            "updates": self.updates,
            "per_rank": per_rank,
            "normalizer": self.market.normalizer.state_dict() if self.market is not None else None,
            # test / live refuse other bar sizes (kpremia.run.checkpoint.check_bar_size)
            "bar_minutes": self.market.bar_minutes if self.market is not None else None,
            # where a plug-in encoder / algorithm came from, so loading elsewhere can say what to install
            "plugins": self._plugin_origins(),
        }

    def _plugin_origins(self) -> list[dict[str, Any]]:
        """The run's plug-in origins (:mod:`kpremia.core.plugin_origins`), looked up once per module."""
        if getattr(self, "_origins", None) is None:
            from kpremia.core.plugin_origins import plugin_origins

            self._origins = plugin_origins(self.cfg)
        return self._origins

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("kpremia")
        if state is None:
            return
        self.env_steps = int(state["env_steps"])
        self.updates = int(state["updates"])
        self._pending_state = state

    def on_fit_start(self) -> None:
        # The envs start (or, on resume, continue) here, after setup() built them on
        # the right device; ``current_obs`` is the observation the next step acts on.
        if self.train_env is not None:
            self.current_obs = self.train_env.reset()
        self._record_rank_envs()
        if self._pending_state is None:
            return
        per_rank = self._pending_state["per_rank"]
        if len(per_rank) != self.world_size:
            log.warning("checkpoint was written by %d ranks, resuming on %d: envs restart from fresh seeds",
                        len(per_rank), self.world_size)
        else:
            local = per_rank[self.rank]
            if self.train_env is not None and "train_env" in local:
                self.train_env.load_state_dict(local["train_env"])
            if self.generator is not None and "generator" in local:
                self.generator.set_state(local["generator"])
            if "current_obs" in local:
                device = self.trainer.strategy.root_device
                self.current_obs = {k: v.to(device) for k, v in local["current_obs"].items()}
            self.load_extra_state(local)
        self._pending_state = None


    def _record_rank_envs(self) -> None:
        """Write each rank's env seed and first episode starts into meta.json (rank 0 writes).

        Evidence that ranks simulate different episodes; collective, so every rank calls it.
        """
        if self.train_env is None:
            return
        mine = {"rank": self.rank, "env_seed": int(self.train_env.seed),
                "first_starts": self.train_env.t[:8].tolist()}
        ranks = [mine]
        if self.world_size > 1:
            ranks = [None] * self.world_size
            torch.distributed.all_gather_object(ranks, mine)
        run_dir = getattr(self.trainer, "default_root_dir", None)
        meta_path = Path(run_dir) / "meta.json" if run_dir else None
        if self.trainer.is_global_zero and meta_path is not None and meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            meta["ranks"] = ranks
            atomic_write_json(meta_path, meta)


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj

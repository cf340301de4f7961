"""The training entry: data -> module -> Lightning Trainer -> run directory (`fit`).

Kept free of Hydra so tests and notebooks can call it with a plain config dict
(the CLI composes the config with Hydra, resolves it, and calls these).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from kpremia.algos.base import RLModule
from kpremia.core.config import checkpoint_of
from kpremia.core.console import progress_bars_wanted, tame_lightning_logging
from kpremia.core.errors import UserError
from kpremia.core.io import load_torch_file
from kpremia.core.threads import apply_threads
from kpremia.data.market import MarketData
from kpremia.envs.experiment import TRAIN_SPLITS, load_market
from kpremia.run.checkpoint import (BEST_NAME, CHECKPOINTS, LAST_NAME, build_module, check_bar_size, checked_checkpoint,
                                    last_checkpoint, saved_bar_minutes, saved_env_steps)
from kpremia.run.epoch_lines import EpochLines
from kpremia.run.resume import csv_history
from kpremia.run.run_config import RunConfig, resolve_bar_settings
from kpremia.run.run_files import FAILED, write_run_files

log = logging.getLogger(__name__)

VAL_DRAW_SEED_OFFSET = 500


def val_draw_seeds(cfg: dict[str, Any]) -> list[int]:
    """Data seeds of the extra validation draws of ``eval.val_draws`` (none for a single market)."""
    draws = int((cfg.get("eval") or {}).get("val_draws", 1))
    if draws <= 1:
        return []
    if cfg["data"].get("name") != "synthetic":
        raise UserError(f"eval.val_draws={draws} needs a generated market (data=synthetic); a data file is one "
                        "market: set eval.val_draws=1 and lengthen the validation split (data.split.*) instead")
    base = int(cfg["data"].get("seed", cfg["seed"]))
    return [base * 1000 + VAL_DRAW_SEED_OFFSET + j for j in range(1, draws)]


def load_val_draws(cfg: dict[str, Any], market: MarketData) -> list[Any]:
    """The val splits of other draws of the run's generated market, scaled by the run's normaliser.

    Only their validation split is built: nothing of them is trained on, and the band rule
    the policy is scored against stays the one fit on the run's own train split.
    """
    out = []
    for seed in val_draw_seeds(cfg):
        draw = load_market({**cfg, "data": {**cfg["data"], "seed": seed}}, ("val",), normalizer=market.normalizer)
        out.append(draw.tensors["val"])
    return out


def _loggers(cfg: dict[str, Any], run_dir: Path) -> list[Any]:
    from kpremia.run.loggers import build_logger

    return [build_logger(cfg, run_dir)]


# The run directory holds config.yaml / meta.json before the CSV logger starts; its
# "directory exists and is not empty" warning would only alarm users.
warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
# A resumed run writes into its own checkpoints/ folder on purpose (kpremia.run.resume).
warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")


# trainer-group keys read by the module, not by lightning.Trainer
_MODULE_KEYS = ("max_epochs", "onednn_update")


def prime_csv_loggers(loggers: list[Any], rows: list[dict[str, float]]) -> None:
    """Hand a CSV logger the rows logged before a resume, so its fresh ``metrics.csv`` starts with them."""
    from lightning.pytorch.loggers import CSVLogger

    for logger in loggers:
        if isinstance(logger, CSVLogger) and rows:
            writer = logger.experiment  # creating it removes the old file; the rows are written back first
            for row in rows:
                step = int(row.get("step", 0))
                writer.log_metrics({k: v for k, v in row.items() if k != "step"}, step=step)


def build_trainer(cfg: dict[str, Any], run_dir: Path, module: RLModule, *, extra_callbacks: list | None = None,
                  max_epochs: int | None = None) -> tuple[L.Trainer, ModelCheckpoint]:
    algo, tcfg = cfg["algo"], dict(cfg["trainer"])
    tame_lightning_logging()
    extra_callbacks = list(extra_callbacks or [])
    # A redrawn bar floods a log file: off a terminal, one line per epoch instead (kpremia.core.console); and
    # whenever there is no bar (debug=fast switches it off), so a run always shows how it is going.
    if not (tcfg.get("enable_progress_bar", True) and progress_bars_wanted()):
        tcfg["enable_progress_bar"] = False
        extra_callbacks.append(EpochLines())
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / CHECKPOINTS, filename=BEST_NAME, auto_insert_metric_name=False,
        monitor=algo.get("monitor", "val/excess_return"), mode=algo.get("monitor_mode", "max"), save_top_k=1,
    )
    # The newest state, always (ModelCheckpoint's save_last only writes when a top-k file was
    # saved in the same step, so "last" could lag behind an epoch that was not the best).
    latest = ModelCheckpoint(dirpath=run_dir / CHECKPOINTS, filename=LAST_NAME, monitor=None, save_top_k=1,
                             enable_version_counter=False)
    trainer = L.Trainer(
        accelerator=tcfg.pop("accelerator", "cpu"), devices=tcfg.pop("devices", 1),
        strategy=tcfg.pop("strategy", "auto"), num_nodes=tcfg.pop("num_nodes", 1),
        precision=tcfg.pop("precision", "32-true"), max_epochs=max_epochs or tcfg.pop("max_epochs", None) or 1,
        callbacks=[checkpoint, latest, *extra_callbacks], logger=_loggers(cfg, run_dir),
        default_root_dir=str(run_dir), use_distributed_sampler=False, num_sanity_val_steps=0,
        enable_model_summary=False, reload_dataloaders_every_n_epochs=1,  # the last epoch may be shorter
        **{k: v for k, v in tcfg.items() if k not in _MODULE_KEYS},
    )
    return trainer, checkpoint


def saved_best_score(checkpoint: ModelCheckpoint) -> float | None:
    """The best score stored in the best checkpoint file.

    Under ``ddp_spawn`` Lightning hands only the best checkpoint's path back to the
    launching process, not its score; without this, ``fit`` would return None to a
    sweeper (an Optuna multirun with ddp_spawn would fail on every trial).
    """
    state = load_torch_file(checkpoint.best_model_path).get("callbacks", {})
    score = state.get(checkpoint.state_key, {}).get("best_model_score")
    return float(score) if score is not None else None


def _log_budget(cfg: dict[str, Any], module: RLModule, world_size: int) -> None:
    """Say what the budget runs: rounds (rollouts), env steps and epochs, and any rounding up."""
    asked = int(cfg["algo"]["total_env_steps"])
    per_round = module.env_steps_per_round(world_size)
    rounds = module.total_rounds(world_size)
    epochs = module.max_epochs(world_size)
    last = module.rounds_in_epoch(epochs - 1, world_size)
    rounded = "" if rounds * per_round == asked else f" (algo.total_env_steps={asked:,} rounded up to whole rounds)"
    shape = (f"{epochs} epoch(s) of {cfg['algo']['rollouts_per_epoch']} round(s)" if epochs == 1 or
             last == cfg["algo"]["rollouts_per_epoch"] else
             f"{epochs} epochs of {cfg['algo']['rollouts_per_epoch']} round(s), the last of {last}")
    stop = cfg["trainer"].get("max_epochs")
    log.info("budget: %s env steps = %d round(s) of %s env steps%s, in %s, a validation after each epoch%s",
             f"{rounds * per_round:,}", rounds, f"{per_round:,}", rounded, shape,
             f"; stopping after epoch {stop} (trainer.max_epochs)" if stop else "")


def fit(cfg: RunConfig | dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Train per ``cfg`` (parsed once: the entry passes its :class:`RunConfig`); write the run directory;
    return the best validation score and paths."""
    run = RunConfig.of(cfg)
    L.seed_everything(int(run["seed"]), workers=True, verbose=False)
    apply_threads(run)
    market = load_market(run, TRAIN_SPLITS)
    cfg = resolve_bar_settings(run, market).raw
    ckpt = checkpoint_of(cfg)
    resumed_at, history = None, []
    if ckpt:
        saved = checked_checkpoint(ckpt)
        check_bar_size(saved_bar_minutes(saved, ckpt), market, "resume")
        resumed_at = saved_env_steps(saved)
        history = csv_history(run_dir, resumed_at)  # the CSV logger starts a fresh file: keep what came before
        (run_dir / FAILED).unlink(missing_ok=True)  # an earlier failure of this run is what the resume mends
    market.val_draws = load_val_draws(cfg, market)
    module = build_module(cfg, market.spec, market)
    trainer, checkpoint = build_trainer(cfg, run_dir, module)
    # trainer.max_epochs stops a run early without changing its schedules (e.g. to
    # resume it later); by default the budget algo.total_env_steps decides.
    trainer.fit_loop.max_epochs = cfg["trainer"].get("max_epochs") or module.max_epochs(trainer.world_size)
    _log_budget(cfg, module, trainer.world_size)
    if trainer.is_global_zero:
        write_run_files(run_dir, module.cfg, market.manifest,  # env and algo under today's key names
                        resumed_from=str(Path(ckpt).resolve()) if ckpt else None, resumed_at_env_steps=resumed_at)
        if ckpt:
            log.info("resuming %s at %s env steps", ckpt, f"{resumed_at:,}")
            prime_csv_loggers(trainer.loggers, history)
    trainer.fit(module, ckpt_path=ckpt)
    if module._trainer is None:  # ddp_spawn: the launching process gets the weights back, detached
        module.trainer = trainer
    best = checkpoint.best_model_score
    if best is None and checkpoint.best_model_path:
        best = saved_best_score(checkpoint)
    return {
        "best_score": float(best) if best is not None else None,
        "best_model_path": checkpoint.best_model_path,
        "last_model_path": str(last_checkpoint(run_dir)),
        "env_steps": module.env_steps,
        "module": module,
    }

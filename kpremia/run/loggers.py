"""Lightning loggers from the ``logger`` config group: csv (default), tensorboard, wandb.

The csv logger needs nothing and works everywhere, so it stays the default.
``logger=tensorboard`` writes event files under ``<run dir>/tensorboard``.
``logger=wandb`` uses Lightning's ``WandbLogger`` with a few kpremia-specific
choices (see :class:`KPremiaWandbLogger` and :func:`wandb_mode`): it never
needs a network to run, it records the number a sweep optimises, and it plays
well with Hydra multiruns where many fits share one process.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from kpremia.core.errors import UserError
from kpremia.core.io import atomic_write_json

log = logging.getLogger(__name__)

# Written into the run directory by a wandb-logged fit: the run's id, so `test` can add its report.
WANDB_RUN_FILE = "wandb_run.json"
# Values of WANDB_MODE that wandb itself accepts, mapped onto online / offline / disabled.
_WANDB_MODE_ALIASES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline",
                       "disabled": "disabled"}


def wandb_api_key_available() -> bool:
    """Whether wandb would find an API key without prompting: ``WANDB_API_KEY`` or a ``.netrc`` entry.

    Checked without wandb's private auth modules (they move between releases) and
    without any network call, so choosing the mode is instant and offline-safe.
    """
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    try:
        auth = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(auth and auth[2])


def wandb_mode(logger_cfg: dict[str, Any]) -> str:
    """``online``, ``offline`` or ``disabled`` for this run.

    Order: ``WANDB_MODE=disabled`` always wins (the switch CI and users reach for
    to turn wandb off without editing configs); then an explicit
    ``logger.offline=true|false``; then ``WANDB_MODE``; and with none of these,
    online only when an API key is available — so a fresh checkout never hangs
    on a login prompt or fails for want of a server.
    """
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env and env not in _WANDB_MODE_ALIASES:
        raise UserError(f"WANDB_MODE={env!r} is not a wandb mode; use one of: online, offline, disabled")
    env_mode = _WANDB_MODE_ALIASES.get(env)
    if env_mode == "disabled":
        return "disabled"
    offline = logger_cfg.get("offline")
    if offline is not None:
        return "offline" if offline else "online"
    if env_mode is not None:
        return env_mode
    return "online" if wandb_api_key_available() else "offline"


def _multirun_group(run_dir: Path) -> str | None:
    """The multirun directory name for a job under ``.../multirun/<stamp>/<job>``, else None.

    Jobs of one Hydra multirun then share a wandb group and sit together in the UI.
    """
    from kpremia.core.run_dirs import MULTIRUN

    parent = run_dir.resolve().parent
    return parent.name if parent.parent.name == MULTIRUN else None


class KPremiaWandbLogger(WandbLogger):
    """Lightning's ``WandbLogger`` with kpremia's run semantics.

    * The run summary's value of the monitored metric (``algo.monitor``) is the
      *best* score, the one ``ModelCheckpoint`` keeps and ``fit`` returns to a
      sweeper, not the last validation — so a wandb sweep and an Optuna search
      optimise the same number.
    * The resolved config is given to ``wandb.init`` once; Lightning's own
      hyperparameters (``{"cfg", "spec"}``) would log it a second time under
      ``cfg``, so only ``spec`` is added from them.
    * ``finalize`` finishes the run (after Lightning uploads checkpoints when
      ``log_model`` is on), so the next job of a Hydra multirun, which runs in
      the same process, starts its own run instead of silently reusing this one.
    * Under ``ddp_spawn`` the run is started by rank 0 in its worker, not in the
      launching process: Lightning would start it in the launcher and attach the
      worker to it, and the launcher's copy is never finished, so the next fit in
      that process (a multirun's next job) would hang on the finished run.

    A module-level class so ``ddp_spawn`` can pickle it; Lightning's ``WandbLogger``
    imports wandb only when a run starts.
    """

    def __init__(self, *, run_dir: Path | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._run_dir = run_dir
        # Lightning always passes anonymous=None, which wandb warns about on every run.
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
        self._finished = False
        self._best: tuple[str, float] | None = None  # (monitor, best score) seen by the checkpoint callback

    def __getstate__(self) -> dict[str, Any]:
        if self._experiment is not None:  # a run exists already: let the worker attach to it
            return super().__getstate__()
        return self.__dict__.copy()

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        params = dict(params if isinstance(params, dict) else vars(params))
        params.pop("cfg", None)
        if params:
            super().log_hyperparams(params)

    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        super().after_save_checkpoint(checkpoint_callback)
        score, key = checkpoint_callback.best_model_score, checkpoint_callback.monitor
        if score is not None and key and self._experiment is not None and not self._finished:
            self._best = (key, float(score))
            self._experiment.summary[key] = float(score)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)
        if self._experiment is not None and not self._finished:
            self._finished = True
            run = self._experiment
            if self._best is not None:  # validations after the best one logged their own (last) value
                run.summary[self._best[0]] = self._best[1]
            if (self._run_dir is not None and self._run_dir.is_dir() and getattr(run, "id", None)
                    and self._wandb_init.get("mode") != "disabled"):
                # lets `test` add its report to this run later (log_test_report)
                atomic_write_json(self._run_dir / WANDB_RUN_FILE, {
                    "id": run.id, "project": getattr(run, "project", None), "entity": getattr(run, "entity", None),
                    "dir": self._wandb_init.get("dir")})
            run.finish(exit_code=0 if status == "success" else 1)


def build_logger(cfg: dict[str, Any], run_dir: Path) -> Any:
    """The Lightning logger configured by ``cfg["logger"]``, writing into ``run_dir``."""
    lcfg = cfg["logger"]
    name = lcfg["name"]
    if name == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(run_dir), name="", version="")
    if name == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="",
                                 default_hp_metric=bool(lcfg.get("default_hp_metric", False)))
    if name == "wandb":
        return build_wandb_logger(cfg, run_dir)
    raise UserError(f"unknown logger {name!r}; use logger=csv, logger=tensorboard or logger=wandb")


def build_wandb_logger(cfg: dict[str, Any], run_dir: Path) -> Any:
    """A :class:`KPremiaWandbLogger` for this run; see :func:`wandb_mode` for online/offline/disabled.

    Files go under ``<run dir>/wandb`` (everything about a run in one directory)
    unless ``WANDB_DIR`` says otherwise.  The mode is passed to ``wandb.init``
    directly rather than through Lightning's ``offline`` flag, which would both
    set ``WANDB_MODE`` for the rest of the process and refuse ``log_model``
    offline — wandb stores offline artifacts and ``wandb sync`` uploads them.
    """
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise UserError("logger=wandb needs the wandb package: pip install wandb") from None
    lcfg = cfg["logger"]
    log_model = lcfg.get("log_model", False)
    if log_model not in (True, False, "all"):
        raise UserError(f"logger.log_model={log_model!r} is invalid: use false, true (best checkpoint at the end) "
                        "or all (every checkpoint)")
    mode = wandb_mode(lcfg)
    return KPremiaWandbLogger(
        project=lcfg.get("project") or "kpremia", entity=lcfg.get("entity"),
        save_dir=os.environ.get("WANDB_DIR") or str(run_dir), name=lcfg.get("run_name") or run_dir.name,
        group=lcfg.get("group") or _multirun_group(run_dir), job_type=lcfg.get("job_type") or "fit",
        tags=[str(t) for t in (cfg.get("tags") or [])], config=cfg, mode=mode, run_dir=run_dir,
        log_model=log_model if mode != "disabled" else False,
    )


def log_test_report(run_cfg: dict[str, Any], run_dir: Path, summary: dict[str, Any], report_dir: Path) -> bool:
    """Add a ``test`` report to the wandb run of the fit that made the checkpoint; True if logged.

    Only for runs trained with ``logger=wandb`` (the checkpoint's config says so) and
    not disabled now.  The fit's run is resumed by the id it left in
    ``wandb_run.json`` (a fresh run with ``job_type=test`` when there is none); the
    policy's test metrics go into its summary as ``test/<metric>`` and the report's
    PNG plots are logged as images.  Best effort: the report is already on disk, so
    any wandb failure is a warning, never a failed ``test``.
    """
    lcfg = run_cfg.get("logger") or {}
    if lcfg.get("name") != "wandb":
        return False
    try:
        mode = wandb_mode(lcfg)
        if mode == "disabled":
            return False
        import json

        import wandb

        info_path = run_dir / WANDB_RUN_FILE
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        run = wandb.init(
            project=info.get("project") or lcfg.get("project") or "kpremia", entity=info.get("entity") or lcfg.get("entity"),
            id=info.get("id"), resume="allow" if info.get("id") else None, name=run_dir.name,
            dir=os.environ.get("WANDB_DIR") or info.get("dir") or str(run_dir), mode=mode, job_type=None if info.get("id") else "test",
            reinit="create_new",  # leave any other active run alone
        )
        metrics = {f"test/{k}": v for k, v in (summary.get("policy") or {}).items() if isinstance(v, (int, float))}
        if isinstance(summary.get("oracle_capture"), (int, float)):
            metrics["test/oracle_capture"] = summary["oracle_capture"]
        run.summary.update(metrics)
        images = {f"test/{p.stem}": wandb.Image(str(p)) for p in sorted(report_dir.glob("*.png"))}
        if images:
            run.log(images)
        run.finish()
        return True
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.warning("test report not added to wandb (%s: %s); it is in %s", type(exc).__name__, exc, report_dir)
        return False

"""Lightning loggers from the ``logger`` config group: csv (default), tensorboard, wandb."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kpremia.errors import UserError


def wandb_offline(logger_cfg: dict[str, Any]) -> bool:
    """Offline unless asked otherwise: no API key and no ``WANDB_MODE`` means offline."""
    if logger_cfg.get("offline") is not None:
        return bool(logger_cfg["offline"])
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode in ("offline", "dryrun", "disabled")
    return not os.environ.get("WANDB_API_KEY")


def build_logger(cfg: dict[str, Any], run_dir: Path) -> Any:
    lcfg = cfg["logger"]
    name = lcfg["name"]
    if name == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(run_dir), name="", version="")
    if name == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="")
    if name == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        logger = WandbLogger(
            project=lcfg.get("project", "kpremia"), entity=lcfg.get("entity"), save_dir=str(run_dir),
            name=run_dir.name, offline=wandb_offline(lcfg), log_model=bool(lcfg.get("log_model", False)),
            tags=list(cfg.get("tags") or []), config=cfg,
        )
        return logger
    raise UserError(f"unknown logger {name!r}; use logger=csv, logger=tensorboard or logger=wandb")

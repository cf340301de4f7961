"""What each CLI command does with a resolved config (Hydra-free, testable)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kpremia.errors import UserError

log = logging.getLogger(__name__)


def run(command: str, cfg: dict[str, Any], run_dir: Path, overrides: list[str] | None = None) -> Any:
    """Run ``command``; return the value a sweeper optimises (fit: the best validation score)."""
    from kpremia.config_checks import validate_config

    if command == "fit":
        validate_config(cfg)
        from kpremia import training

        result = training.fit(cfg, run_dir)
        module = result["module"]
        if module.trainer.is_global_zero:
            log.info("best %s = %s (%s)", cfg["algo"].get("monitor"), result["best_score"], result["best_model_path"])
            print(run_dir, flush=True)
        return result["best_score"]
    if command in ("validate", "test"):
        from kpremia.config import checkpoint_of
        from kpremia.evaluate import evaluate_checkpoint

        ckpt = checkpoint_of(cfg)
        if not ckpt:
            raise UserError(f"`{command}` needs a checkpoint: add ckpt=<run dir>/checkpoints/last.ckpt")
        return evaluate_checkpoint(ckpt, split="val" if command == "validate" else "test",
                                   cli_cfg=cfg, overrides=overrides or [])
    if command == "backtest":
        validate_config(cfg)
        from kpremia.rules_backtest import run_rules_backtest

        return run_rules_backtest(cfg, run_dir)
    if command == "live":
        from kpremia.live.build import run_live
        from kpremia.live.preflight import storage_errors

        with storage_errors((cfg.get("live") or {}).get("state_dir")):
            summary = run_live(cfg, overrides or [])
        if summary["risk_state"] == "HALTED":  # exit code 3: a supervisor must not restart it blindly
            from kpremia.errors import SessionHalted
            from kpremia.live.halt import halt_line

            raise SessionHalted(halt_line(summary["state_dir"]))
        return summary
    if command == "serve":
        from kpremia.live.serve import serve

        return serve(cfg)
    raise UserError(f"unknown command {command!r}")


def list_plugins() -> str:
    """A text listing of every registry; encoders with their parameter count for the default spec.

    Only the encoders are imported (to count their parameters); every other
    plug-in is described from its source, so ``list`` does not import Lightning,
    the web server or ccxt.
    """
    from kpremia.registry import REGISTRIES

    lines: list[str] = []
    for title, registry in REGISTRIES.items():
        lines.append(f"{title}:")
        for name in registry.names():
            extra = ""
            if title == "encoders":
                try:
                    from kpremia.encoders import param_count

                    extra = f"  ({param_count(name):,} parameters)"
                except Exception as exc:  # a broken third-party encoder must not break `list`
                    extra = f"  (cannot build with the default spec: {type(exc).__name__})"
            summary = registry.summary(name)
            lines.append(f"  {name:<20}{extra}  {summary}".rstrip())
        lines.append("")
    return "\n".join(lines)

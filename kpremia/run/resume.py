"""``fit ckpt=<run>/checkpoints/last.ckpt``: continue a run from its checkpoint alone.

Why: a checkpoint already holds the run's resolved config (the market, the env, the
algorithm, the encoder, the seed); asking the user to repeat every original override, and
failing with a state-dict traceback when one is forgotten, makes resuming the riskiest
command of all.  So the resumed run's config *is* the checkpoint's, and the command line
may change only how the run runs:

* taken from the command line: ``trainer.*`` (devices, a new ``trainer.max_epochs`` stop,
  the progress bar), ``logger.*``, ``paths.*``, ``torch_threads``, ``tags``, and
  ``algo.total_env_steps`` (to extend the budget; the learning-rate schedule follows it);
* everything else comes from the checkpoint; an override that would change it (another
  encoder, fee, seed, data file, ...) is refused in one line naming the key and both values.
  Repeating an original override with its original value is fine.

The run continues in its own directory (the CLI sets Hydra's run dir to it): its
``metrics.csv`` keeps the rows logged up to the checkpoint, ``meta.json`` records the resume.
"""

from __future__ import annotations

import copy
import csv
from pathlib import Path
from typing import Any

from kpremia.core.errors import UserError
from kpremia.run.checkpoint import (checked_checkpoint, run_dir_of, saved_bar_minutes, saved_env_steps,
                                    saved_run_config)
from kpremia.run.run_config import RunConfig

# How a run runs, not what it learns: taken from the command line on resume.
HOW_KEYS = ("trainer", "logger", "paths", "torch_threads", "tags", "ckpt", "hydra")
EXTENDABLE = ("algo.total_env_steps",)


def _comparable(cfg: dict[str, Any], bar_minutes: float) -> dict[str, Any]:
    """``cfg`` with the typed parts' defaults filled in and durations as bars (so "4h" equals 16 at 15m)."""
    out = copy.deepcopy(dict(cfg))
    try:
        run = RunConfig.from_dict(cfg)
    except (UserError, KeyError):
        return out  # compared as given; the bad value is reported by the config check
    out["env"] = run.env.in_bars(bar_minutes).to_dict()
    if run.algo is not None:
        out["algo"] = run.algo.to_dict()
    return out


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): node}


def _override_key(raw: str) -> str:
    return raw.split("=", 1)[0].lstrip("+~").replace("/", ".")


def conflicts(saved_cfg: dict[str, Any], cli_cfg: dict[str, Any], overrides: list[str],
              bar_minutes: float) -> list[tuple[str, str, Any, Any]]:
    """``(override, key, saved value, asked value)`` for every override that would change the run."""
    saved = _flat(_comparable(saved_cfg, bar_minutes))
    asked = _flat(_comparable(cli_cfg, bar_minutes))
    found = []
    for raw in overrides:
        key = _override_key(raw)
        top = key.split(".")[0]
        if not key or top in HOW_KEYS or key in EXTENDABLE:
            continue
        # A leaf names itself; a group (encoder=lstm) or a preset (experiment=..., debug=fast) everything under
        # what it selects (a preset: every part that is not a how-key).
        prefixes = [key] if "." in key or top in saved_cfg else \
            [k for k in saved_cfg if k not in HOW_KEYS and k != "experiment_name"]
        for name in sorted(set(saved) | set(asked)):
            if not any(name == p or name.startswith(p + ".") for p in prefixes):
                continue
            if name in EXTENDABLE or name.split(".")[0] in HOW_KEYS:
                continue
            if saved.get(name, "<absent>") != asked.get(name, "<absent>"):
                found.append((raw, name, saved.get(name, "<absent>"), asked.get(name, "<absent>")))
                break
    return found


def resume_config(cli_cfg: dict[str, Any], ckpt: str | Path, overrides: list[str]) -> dict[str, Any]:
    """The resumed run's config: the checkpoint's, with the command line's how-keys (see the module docstring)."""
    saved = checked_checkpoint(ckpt)
    saved_cfg = saved_run_config(saved)
    bar_minutes = saved_bar_minutes(saved, ckpt)
    bad = conflicts(saved_cfg, cli_cfg, overrides, bar_minutes)
    if bad:
        raw, key, was, now = bad[0]
        raise UserError(f"fit ckpt={ckpt} continues the run as it was trained; `{raw}` would change {key} "
                        f"({was!r} in the checkpoint, {now!r} asked): drop it to resume, or train a new run "
                        "without ckpt= (only trainer.*, logger.*, paths.*, torch_threads, tags and "
                        "algo.total_env_steps may change on resume)")
    cfg = copy.deepcopy(saved_cfg)
    for key in HOW_KEYS:
        if key in cli_cfg:
            cfg[key] = copy.deepcopy(cli_cfg[key])
    if any(_override_key(o) == "algo.total_env_steps" for o in overrides):
        cfg["algo"] = {**cfg["algo"], "total_env_steps": cli_cfg["algo"]["total_env_steps"]}
    cfg["ckpt"] = str(ckpt)
    return cfg


def finished_line(cfg: dict[str, Any], ckpt: str | Path) -> str | None:
    """One line when the checkpoint already trained its whole budget (a resume would do nothing), else None.

    Why: resuming a finished run used to rebuild the markets, say "resuming at 2,048" and stop, as if
    it had done something.  The line says so and how to train on: a larger ``algo.total_env_steps``.
    """
    done = saved_env_steps(checked_checkpoint(ckpt))
    budget = int(cfg["algo"]["total_env_steps"])
    if done < budget:
        return None
    run = run_dir_of(ckpt) or ckpt
    return (f"run {run} already finished: {done:,} env steps trained of algo.total_env_steps={budget:,}; nothing "
            f"to resume. To train it further, raise the budget: python -m kpremia fit ckpt={run} "
            f"algo.total_env_steps={2 * budget}")


def csv_history(run_dir: Path, up_to_env_steps: int) -> list[dict[str, float]]:
    """Rows of the run's ``metrics.csv`` logged at or before ``up_to_env_steps`` (the resume point).

    Lightning's CSV logger starts a fresh file; these rows are written back first, so the
    resumed run's file holds its whole history (rows logged after the checkpoint, by a run
    that was then interrupted, are dropped: the resumed run logs them again).
    """
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            values = {k: float(v) for k, v in row.items() if k and v not in (None, "")}
            if values.get("step", 0.0) <= up_to_env_steps:
                rows.append(values)
    return rows

"""Where a test report goes and what it says it is: one report per (checkpoint, data, split).

Why a layout: ``test ckpt=last`` after ``test ckpt=best``, a transfer test on a file, an unseen
market draw or a test at another fee must each leave their own report, never overwrite another
one, and ``compare`` must be able to tell them apart.  A report lives in
``<run>/report/<checkpoint>/<data>/<split>/``:

* ``<checkpoint>``: the checkpoint file's name without ``.ckpt`` (``best-epoch003``, ``last``);
* ``<data>``: ``synthetic-seed<S>`` for a generated market (plus a digest when its other settings
  are not the run's own), ``<file stem>-<sha256 start>`` for a file, else source and digest;
* ``<split>``: ``test``, ``all`` or ``walk<k>of<N>``, plus ``-<digest>`` when the env (fee, ...) or the
  evaluation mode (deterministic, temperature, forced action, given rule levels) is not the run's own.

:func:`report_stamp` is the one line that says what a report is (titles of its pictures).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from kpremia.eval.config import EvalConfig


def checkpoint_label(ckpt: str | Path) -> str:
    """The checkpoint's file name without ``.ckpt`` (``best-epoch003``, ``last``): a report directory's name."""
    return _safe(Path(ckpt).stem) or "checkpoint"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", text).strip("-")


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:8]


def data_dir_name(manifest: dict[str, Any], trained_data: dict[str, Any], tested_data: dict[str, Any]) -> str:
    """A report directory's name for the data tested on: ``synthetic-seed7``, ``prices-1a2b3c4d``, ...

    A generated market is named by its seed (plus a digest of its other settings when they are not the
    training data's); a file by its name and the start of its sha256; anything else by source and digest.
    """
    source = str(manifest.get("source") or tested_data.get("name") or "data")
    if manifest.get("synthetic") or tested_data.get("name") == "synthetic":
        rest = {k: v for k, v in tested_data.items() if k not in ("seed", "split")}
        trained_rest = {k: v for k, v in trained_data.items() if k not in ("seed", "split")}
        suffix = "" if rest == trained_rest else f"-{_digest(rest)}"
        return _safe(f"synthetic-seed{tested_data.get('seed')}{suffix}")
    if manifest.get("sha256"):
        stem = Path(str(manifest.get("path") or source)).stem
        return _safe(f"{stem}-{str(manifest['sha256'])[:8]}")
    return _safe(f"{source}-{_digest({k: v for k, v in tested_data.items() if k != 'split'})}")


# Options of a test that change its numbers besides the checkpoint and the data.
_RESULT_EVAL_KEYS = ("deterministic", "temperature", "n_seeds", "force_action", "rule_levels")


def split_dir_name(split: str, trained_cfg: dict[str, Any], tested_cfg: dict[str, Any]) -> str:
    """``test`` (or ``all``), plus a digest when the env (fee, ...) or the evaluation mode is not the run's own."""
    eval_opts = {k: (tested_cfg.get("eval") or {}).get(k) for k in _RESULT_EVAL_KEYS}
    default_opts = {k: EvalConfig().to_dict().get(k) for k in _RESULT_EVAL_KEYS}
    changed = {"env": tested_cfg.get("env")} if tested_cfg.get("env") != trained_cfg.get("env") else {}
    if eval_opts != default_opts:
        changed["eval"] = eval_opts
    return split if not changed else f"{split}-{_digest(changed)}"


def report_dir_for(run_dir: Path, ckpt: str | Path, trained_cfg: dict[str, Any], tested_cfg: dict[str, Any],
                   manifest: dict[str, Any], split: str) -> Path:
    """``<run>/report/<checkpoint>/<data>/<split>``: one report per (checkpoint, data, split), never overwritten
    by a test of another checkpoint, market, fee or evaluation mode."""
    return (run_dir / "report" / checkpoint_label(ckpt)
            / data_dir_name(manifest, trained_cfg["data"], tested_cfg["data"])
            / split_dir_name(split, trained_cfg, tested_cfg))


def report_stamp(extra: dict[str, Any]) -> str:
    """What a report is, in one line (plot titles): checkpoint, data, split, bar size, fee."""
    fee = extra.get("fee_rate")
    fee_text = f"fee {100 * float(fee):g} %" if isinstance(fee, (int, float)) else "fee ?"
    seed = f" (data seed {extra['data_seed']})" if extra.get("data_seed") is not None else ""
    return (f"{extra.get('experiment') or 'run'} seed {extra.get('seed')}, {extra.get('checkpoint_name')} | "
            f"{extra.get('data')}{seed} | {extra.get('split')} split, {extra.get('timeframe')} bars, {fee_text}")

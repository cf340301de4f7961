"""A run's validation curve: the policy's validation return beside the band rule's, per env step.

Why in the report: a test number says where training ended, not whether it was still improving,
had collapsed to holding cash, or peaked early (and which checkpoint ``best`` picked).  ``fit``
logs ``val/return`` and ``val/band_return`` (the band rule fit on the train split, over the same
validation markets) to ``metrics.csv`` at every validation; this reads them back.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

CURVE_COLUMNS = {"val/return": "policy", "val/band_return": "band_rule"}


def validation_curve(run_dir: str | Path) -> pd.DataFrame | None:
    """``env_steps``, ``policy`` and ``band_rule`` validation returns (fractions); None when none were logged."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    if "val/return" not in frame or "env_steps" not in frame:
        return None
    rows = frame.dropna(subset=["val/return"])
    if rows.empty:
        return None
    out = pd.DataFrame({"env_steps": rows["env_steps"].astype(float).to_numpy()})
    for column, name in CURVE_COLUMNS.items():
        out[name] = rows[column].astype(float).to_numpy() if column in rows else float("nan")
    return out.drop_duplicates(subset="env_steps", keep="last").reset_index(drop=True)

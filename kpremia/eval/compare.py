"""``python -m kpremia compare <run dirs or a multirun dir>``: one table across runs.

Why: a single seed of an RL agent says little; a sweep or a multi-seed multirun
only means something as mean ± std over seeds, beside the baselines evaluated on
the same split.  ``compare`` reads what ``test`` wrote (``report/summary.json``
under each run directory, searched recursively under a multirun directory),
groups runs by experiment, and writes ``compare.csv`` (numbers) and
``compare.md`` (the Markdown table it also prints) into ``--out`` (default: the
common parent of the given paths).

A run's name and seed come from its resolved config (``config.yaml``, else
``.hydra/config.yaml``; keys ``experiment_name`` or ``experiment``, and ``seed``),
then from ``summary.json``, then from the directory name.

Runs are averaged only when they ran the same thing: the resolved config with the seed and
the keys that say how a run ran rather than what it learned (trainer, logger, paths, test-time
``eval`` options; see :data:`NOT_WHAT_RAN`) left out.  Two groups that share a name (an
``experiment=gru_attn_ppo encoder=my_tcn`` run from before run names said so, two learning
rates of one experiment) are labelled with the keys that tell them apart
(``gru_attn_ppo [encoder.name=my_tcn]``), never averaged together.

Numbers are only comparable on the same test bars, fee and data.  Each run's
*setting* (test period from ``summary.json``; fee from the summary or the run's
config; data from the summary or ``data_manifest.json``, the synthetic seed
excepted, since seeds are what the mean is over) is compared across the runs: when
they differ, the table gets a ``setting`` column, rows are grouped per setting and
never averaged across settings, and a legend under the table says what each one
is.  A run whose ``fit`` failed (``failed.json``) is its own setting, flagged.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from kpremia.errors import UserError
from kpremia.eval.metrics import METRIC_KEYS
from kpremia.io import atomic_write_bytes, atomic_write_text
from kpremia.runs import failure_of

log = logging.getLogger(__name__)

SUMMARY = Path("report") / "summary.json"
COLUMNS = (*METRIC_KEYS, "oracle_capture")
_PERCENT = {"return", "max_drawdown", "hit_rate", "oracle_capture"}


@dataclass(frozen=True)
class Run:
    """One evaluated run: where it is, what it was, and its summary."""

    run_dir: Path
    experiment: str
    seed: int | str | None
    summary: dict[str, Any]
    facts: tuple[tuple[str, str | None], ...] = ()
    """What the numbers depend on besides the agent: (name, value or None if unknown)."""
    setting: str = ""
    """The setting's label in the table ("" when every run shares one)."""
    what_ran: tuple[tuple[str, str], ...] | None = None
    """The resolved config's leaves that define what was trained (:func:`what_ran`), None without a config."""


def find_summaries(path: Path) -> list[Path]:
    """``report/summary.json`` of a run dir, or of every run below a multirun dir."""
    if not path.exists():
        raise UserError(f"compare: {path} does not exist; pass run directories or a multirun directory")
    if (path / SUMMARY).is_file():
        return [path / SUMMARY]
    found = sorted(p for p in path.rglob("summary.json") if p.parent.name == "report")
    if not found:
        raise UserError(f"compare: no runs under {path} (no report/summary.json); "
                        "run `python -m kpremia test ckpt=<checkpoint>` for each run first")
    return found


def _read_config(run_dir: Path) -> dict[str, Any]:
    for candidate in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        if candidate.is_file():
            try:
                cfg = yaml.safe_load(candidate.read_text())
            except yaml.YAMLError as exc:
                log.warning("compare: cannot parse %s (%s); using the directory name", candidate, exc)
                return {}
            return cfg if isinstance(cfg, dict) else {}
    return {}


def identify(run_dir: Path, summary: dict[str, Any]) -> tuple[str, int | str | None]:
    """(experiment name, seed) of a run; see the module docstring for the order of sources."""
    cfg = _read_config(run_dir)
    experiment = next((v for v in (cfg.get("experiment_name"), cfg.get("experiment"),
                                   summary.get("experiment_name"), summary.get("experiment"))
                       if isinstance(v, str) and v), None)
    seed = next((v for v in (cfg.get("seed"), summary.get("seed")) if v is not None), None)
    name = run_dir.name
    if seed is None:
        match = re.search(r"seed[_=-]?(\d+)", name)
        seed = int(match.group(1)) if match else None
    if experiment is None:
        # runs/<date>_<time>_<experiment> or multirun/<...>/<num>_<experiment>_seed<seed>
        experiment = re.sub(r"^(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_|\d+_)", "", name)
        experiment = re.sub(r"_seed\d+$", "", experiment) or name
    return experiment, seed


# Top-level config keys that say how a run ran (or how it is named or tested), not what it learned.
NOT_WHAT_RAN = ("seed", "experiment_name", "experiment", "ckpt", "paths", "trainer", "logger", "tags", "torch_threads",
                "hydra", "live", "eval")
# ... except these, which change what is trained or which checkpoint is kept.
WHAT_RAN_EXCEPTIONS = ("eval.val_draws",)


def what_ran(cfg: dict[str, Any]) -> tuple[tuple[str, str], ...] | None:
    """The leaves of a run's resolved config that define what was trained (the seed excluded), sorted.

    ``data.seed`` is left out with ``seed``: runs over seeds are meant to average over markets
    (the data's identity is also a fact of the run's setting, see :func:`run_facts`).
    """
    if not cfg:
        return None
    leaves: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            leaves[prefix.rstrip(".")] = json.dumps(node, sort_keys=True, default=str)

    walk(cfg, "")
    return tuple(sorted((k, v) for k, v in leaves.items()
                        if k in WHAT_RAN_EXCEPTIONS or (k.split(".")[0] not in NOT_WHAT_RAN and k != "data.seed")))


_LABEL_FIRST = ("encoder.name", "algo.name", "data.name", "data.path")


def label_groups(runs: Sequence[Run]) -> list[Run]:
    """Runs whose name is shared by configs that differ get the differing keys in their label.

    A run without a config (unknown) does not split the others, as for :func:`assign_settings`.
    """
    by_name: dict[str, set[tuple[tuple[str, str], ...]]] = {}
    for run in runs:
        if run.what_ran is not None:
            by_name.setdefault(run.experiment, set()).add(run.what_ran)
    out = []
    for run in runs:
        variants = by_name.get(run.experiment, set())
        if len(variants) < 2 or run.what_ran is None:
            out.append(run)
            continue
        mine = dict(run.what_ran or ())
        others = [dict(v or ()) for v in variants if v != run.what_ran]
        differing = sorted({k for other in others for k in set(mine) | set(other) if mine.get(k) != other.get(k)},
                           key=lambda k: (_LABEL_FIRST.index(k) if k in _LABEL_FIRST else len(_LABEL_FIRST), k))
        shown = [f"{k}={json.loads(mine[k]) if k in mine else '(unset)'}" for k in differing[:2]]
        more = f", +{len(differing) - 2} more" if len(differing) > 2 else ""
        label = f"{run.experiment} [{', '.join(shown)}{more}]"
        out.append(dataclasses.replace(run, experiment=label))
    return out


def inserted_bars(manifest: dict[str, Any]) -> int:
    """Bars the data source inserted as no-trade bars (a file's or a fetch's repair report), for reports."""
    return int(manifest.get("inserted_bars", (manifest.get("repair") or {}).get("gap_bars_inserted", 0)) or 0)


def data_identity(manifest: dict[str, Any] | None) -> str | None:
    """A short name for the data a run saw, from a data manifest (None if unknown).

    The synthetic seed is left out on purpose: runs over seeds are meant to average
    over markets.  Files are named by their sha256, so a changed file is another data set.
    A bar size other than 15m is part of the name: the same market at 1h is another data set.
    """
    if not manifest:
        return None
    source = manifest.get("source")
    basis = manifest.get("premium_basis") or "usdt"
    suffix = "" if basis == "usdt" else f", premium {basis}"
    timeframe = manifest.get("timeframe")
    if timeframe and timeframe != "15m":
        suffix += f", {timeframe} bars"
    if manifest.get("synthetic") and source == "synthetic":
        params = json.dumps(manifest.get("params") or {}, sort_keys=True)
        digest = hashlib.sha256(params.encode()).hexdigest()[:8]
        return f"synthetic {manifest.get('preset', 'default')} (params {digest}){suffix}"
    if manifest.get("sha256"):
        fx = f" + fx {str(manifest['fx_sha256'])[:8]}" if manifest.get("fx_sha256") else ""
        return f"{Path(str(manifest.get('path', source))).name} ({str(manifest['sha256'])[:12]}{fx}){suffix}"
    if source == "ccxt":
        return (f"{manifest.get('exchange')} {manifest.get('symbol')} {str(manifest.get('first_bar'))[:10]}.."
                f"{str(manifest.get('last_bar'))[:10]}{suffix}")
    return f"{source}{suffix}" if source else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def run_facts(run_dir: Path, summary: dict[str, Any]) -> tuple[tuple[str, str | None], ...]:
    """(test period, fee, data, failed) of a run; None where the run does not say."""
    period = summary.get("period")
    period_text = f"{str(period[0])[:16]}..{str(period[1])[:16]}" if isinstance(period, list) and \
        len(period) == 2 else None
    env = _read_config(run_dir).get("env") or {}
    fee = summary.get("fee_rate", env.get("fee_rate", env.get("fee")))
    fee_text = f"{float(fee) * 100:g} %" if isinstance(fee, (int, float)) else None
    data = summary.get("data") or data_identity(_read_json(run_dir / "data_manifest.json"))
    failed = failure_of(run_dir)
    return (("test", period_text), ("fee", fee_text), ("data", data),
            ("fit", f"FAILED ({failed})" if failed else "ok"))


def assign_settings(runs: Sequence[Run]) -> tuple[list[Run], list[str]]:
    """Label each run's setting by the facts that differ across ``runs``; return runs and a legend.

    A fact unknown for a run (an older run without it) does not split it from the others.
    """
    if not runs:
        return list(runs), []
    names = [name for name, _ in runs[0].facts]
    differing = [n for n in names if len({dict(r.facts).get(n) for r in runs} - {None}) > 1]
    if not differing:
        return list(runs), []
    keys = [tuple(dict(r.facts).get(n) or "unknown" for n in differing) for r in runs]
    labels: dict[tuple[str, ...], str] = {}
    for key in keys:
        labels.setdefault(key, _label(len(labels)))
    legend = [f"{label}: " + ", ".join(f"{n} {v}" for n, v in zip(differing, key, strict=True))
              for key, label in labels.items()]
    out = [dataclasses.replace(run, setting=labels[key]) for run, key in zip(runs, keys, strict=True)]
    return out, legend


def _label(i: int) -> str:
    letters = ""
    i += 1
    while i:
        i, rem = divmod(i - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


def load_runs(paths: Sequence[Path]) -> list[Run]:
    runs, seen = [], set()
    for path in paths:
        for summary_path in find_summaries(path):
            resolved = summary_path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            try:
                summary = json.loads(summary_path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise UserError(f"compare: cannot read {summary_path} ({exc}); rerun `test` for that run "
                                "or leave it out") from None
            run_dir = summary_path.parent.parent
            experiment, seed = identify(run_dir, summary)
            runs.append(Run(run_dir, experiment, seed, summary, run_facts(run_dir, summary),
                            what_ran=what_ran(_read_config(run_dir))))
    return label_groups(runs)


def compare_table(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per (experiment, trader): ``n`` runs, ``<metric>_mean`` and ``<metric>_std`` (ddof 1)."""
    records = []
    for run in runs:
        policy = dict(run.summary.get("policy", {}))
        policy["oracle_capture"] = run.summary.get("oracle_capture")
        base = {"setting": run.setting, "experiment": run.experiment, "seed": run.seed}
        records.append({**base, "trader": "policy", **policy})
        for name, metrics in run.summary.get("baselines", {}).items():
            records.append({**base, "trader": name, **metrics})
    frame = pd.DataFrame.from_records(records)
    for column in COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce") if column in frame else math.nan
    order = {"policy": 0}
    rows = []
    mixed = bool(frame["setting"].astype(bool).any())
    for (setting, experiment, trader), group in frame.groupby(["setting", "experiment", "trader"], sort=False):
        row: dict[str, Any] = {**({"setting": setting} if mixed else {}), "experiment": experiment,
                               "trader": trader, "n": len(group),
                               "seeds": " ".join(str(s) for s in group["seed"].tolist())}
        for column in COLUMNS:
            values = group[column].dropna()
            row[f"{column}_mean"] = float(values.mean()) if len(values) else math.nan
            row[f"{column}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    table["_order"] = table["trader"].map(lambda t: order.get(t, 1))
    keys = ["setting", "experiment", "_order"] if mixed else ["experiment", "_order"]
    return table.sort_values(keys, kind="stable").drop(columns="_order").reset_index(drop=True)


def chart_records(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per (run, trader) for :func:`kpremia.eval.plots.compare_figure`: group, trader, return, max drawdown."""
    records = []
    for run in runs:
        group = f"{run.setting}: {run.experiment}" if run.setting else run.experiment
        for trader, metrics in [("policy", run.summary.get("policy") or {}),
                                *(run.summary.get("baselines") or {}).items()]:
            records.append({"group": group, "trader": trader, "return": metrics.get("return"),
                            "max_drawdown": metrics.get("max_drawdown")})
    frame = pd.DataFrame.from_records(records, columns=["group", "trader", "return", "max_drawdown"])
    for column in ("return", "max_drawdown"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def _cell(mean: float, std: float, column: str) -> str:
    if math.isnan(mean):
        return "-"
    scale, unit, digits = (100.0, "%", 2) if column in _PERCENT else (1.0, "", 3)
    if column in ("n_trades", "fees_krw"):  # counts and KRW: whole numbers unless a mean over seeds is not
        digits = 0 if float(mean).is_integer() or abs(mean) >= 100 else 1
    text = f"{mean * scale:,.{digits}f}{unit}"
    return text if math.isnan(std) else f"{text} ± {std * scale:,.{digits}f}{unit}"


def to_markdown(table: pd.DataFrame) -> str:
    """The comparison as a Markdown table of ``mean ± std`` cells (``n`` = runs averaged)."""
    lead = ["setting"] if "setting" in table else []
    header = [*lead, "experiment", "trader", "n", *COLUMNS]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * (3 + len(lead)) + ["---:"] * len(COLUMNS)) + "|"]
    for _, row in table.iterrows():
        cells = [*(str(row[c]) for c in lead), str(row["experiment"]), str(row["trader"]), str(row["n"]),
                 *(_cell(row[f"{c}_mean"], row[f"{c}_std"], c) for c in COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _default_out(paths: Sequence[Path]) -> Path:
    common = Path(os.path.commonpath([str(p.resolve()) for p in paths]))
    return common if common.is_dir() else common.parent


def compare_main(argv: list[str]) -> int:
    """Entry point of ``python -m kpremia compare``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m kpremia compare",
                                     description="Mean ± std of test metrics over seeds, per experiment.")
    parser.add_argument("paths", nargs="+", type=Path, help="run directories and/or multirun directories")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write compare.csv, compare.md and compare.png (default: the common parent)")
    parser.add_argument("--no-plot", dest="plot", action="store_false",
                        help="do not draw compare.png (test return and max drawdown, mean ± std per group)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its usage line
        return 0 if exc.code in (0, None) else UserError.exit_code
    runs, legend = assign_settings(load_runs(args.paths))
    table = compare_table(runs)
    out = args.out or _default_out(args.paths)
    out.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(table)
    if legend:
        markdown += ("\nThese runs do not share one test period, fee, data and outcome: rows are grouped by "
                     "setting and never averaged across settings.\n\n" + "\n".join(f"* {line}" for line in legend)
                     + "\n")
    atomic_write_text(out / "compare.csv", table.to_csv(index=False))
    atomic_write_text(out / "compare.md", markdown)
    written = [out / "compare.md", out / "compare.csv"]
    if args.plot:
        from kpremia.eval.plots import compare_figure, png_bytes

        atomic_write_bytes(out / "compare.png", png_bytes(compare_figure(chart_records(runs))))
        written.append(out / "compare.png")
    sys.stdout.write(markdown)
    sys.stdout.write(f"\n{len(runs)} run(s); written {', '.join(str(w) for w in written)}\n")
    return 0

"""``python -m kpremia compare <run dirs or a multirun dir>``: which variant is better, with its uncertainty.

Why: a single seed on a single market says little -- one test split varies by several points
from one draw of the market to the next.  ``compare`` reads every report ``test`` (and ``backtest``)
wrote under the given paths -- ``report/<checkpoint>/<data>/<split>/summary.json``, one per
(checkpoint, data, split or market draw), transfer tests on other data included -- groups them
by what ran, and leads with one row per group: the policy's return, its paired excess over the
band rule on the same markets with a 95 % bootstrap interval and a verdict
(:mod:`kpremia.eval.paired`), the win rate, trades, max drawdown and n (seeds × markets).  It
writes ``compare.md`` (that table, then every metric as mean ± std), ``compare.csv`` (every metric
per group and trader), ``compare_lead.csv`` (the lead table with median, IQM and the same
statistics against buy-and-hold, ``bh_*``), ``compare_markets.csv`` (one row per run and market:
the paired differences), ``compare.png`` and ``compare_learning.png`` (every run's validation
curve beside the band rule's, one panel per group) into ``--out`` (default: the common parent of the given paths).

Groups: runs are averaged only when they ran the same thing (:mod:`kpremia.core.identity`: the
resolved config minus the seed and the how-keys) and share a name (``experiment_name`` of
``config.yaml``, else ``.hydra/config.yaml``, else ``summary.json``, else the directory name).
Two groups that share a name are labelled with the few keys that tell them apart
(``gru_attn_ppo [encoder.name=my_tcn]``).  A rules-only ``backtest`` is its own kind of row
(``rules only``), never a policy's.

Settings: numbers are only comparable on the same data, fee, checkpoint kind and split.  Each
report's *setting* (data from ``summary.json`` or ``data_manifest.json``, the synthetic seed
excepted since draws are what the mean is over; fee; checkpoint kind ``best``/``last``; split; test
period; whether ``fit`` failed) is compared across reports: where they differ, the table gets a
``setting`` column, rows are grouped per setting and never averaged across settings, and a
legend under the table says what each one is.
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

from kpremia.core.bars import DEFAULT_BAR, timeframe_label
from kpremia.core.errors import UserError
from kpremia.core.identity import Identity, differing_keys, show_value, what_ran
from kpremia.core.io import atomic_write_bytes, atomic_write_text
from kpremia.eval.metrics import METRIC_KEYS
from kpremia.eval.paired import paired_stats
from kpremia.run.run_files import failure_of

log = logging.getLogger(__name__)

SUMMARY = Path("report") / "summary.json"  # the layout before one report per checkpoint, data and split
BAND_RULE = "premium_threshold"
BUY_AND_HOLD = "buy_and_hold"
COLUMNS = (*METRIC_KEYS, "oracle_capture")
_PERCENT = {"return", "max_drawdown", "hit_rate", "oracle_capture"}


@dataclass(frozen=True)
class Run:
    """One report of one run (a checkpoint on one market): where it is, what ran, and its summary."""

    run_dir: Path
    experiment: str
    seed: int | str | None
    summary: dict[str, Any]
    facts: tuple[tuple[str, str | None], ...] = ()
    """What the numbers depend on besides the agent: (name, value or None if unknown)."""
    setting: str = ""
    """The setting's label in the table ("" when every run shares one)."""
    what_ran: tuple[tuple[str, str], ...] | None = None
    """The resolved config's leaves that define what was trained (:func:`kpremia.core.identity.what_ran`)."""
    kind: str = "policy"
    """``policy`` (a checkpoint's test) or ``rules`` (a rules-only ``backtest``: no policy)."""
    market: str | None = None
    """Which market of the setting (the synthetic data seed), for pairing; None when unknown."""
    report: str = ""
    """The report's directory (where its ``summary.json`` is)."""


def _is_report_dir(name: str) -> bool:
    return name == "report" or name.startswith("report_")


def find_summaries(path: Path) -> list[Path]:
    """Every report's ``summary.json`` of a run dir, or of every run below a multirun dir."""
    if not path.exists():
        raise UserError(f"compare: {path} does not exist; pass run directories or a multirun directory")
    found = sorted(p for p in path.rglob("summary.json")
                   if any(_is_report_dir(part) for part in p.relative_to(path).parts[:-1])
                   or _is_report_dir(path.name))
    if not found:
        raise UserError(f"compare: no runs under {path} (no report/.../summary.json); "
                        "run `python -m kpremia test ckpt=<checkpoint>` for each run first")
    return found


def run_dir_of(summary_path: Path) -> Path:
    """The run directory of a report: the parent of the outermost ``report`` directory above it."""
    for parent in reversed(summary_path.parents):
        if _is_report_dir(parent.name):
            return parent.parent
    return summary_path.parent.parent


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


def label_groups(runs: Sequence[Run]) -> list[Run]:
    """Runs whose name is shared by configs that differ get the few differing keys in their label.

    A run without a config (unknown) does not split the others, as for :func:`assign_settings`.
    """
    by_name: dict[str, set[Identity]] = {}
    for run in runs:
        if run.what_ran is not None and run.kind == "policy":
            by_name.setdefault(run.experiment, set()).add(run.what_ran)
    out = []
    for run in runs:
        variants = by_name.get(run.experiment, set())
        if len(variants) < 2 or run.what_ran is None or run.kind != "policy":
            out.append(run)
            continue
        differing = [k for k in differing_keys(variants) if k != "experiment_name"]
        shown = [show_value(run.what_ran, k) for k in differing[:SHOWN_KEYS]]
        more = f", +{len(differing) - SHOWN_KEYS} more" if len(differing) > SHOWN_KEYS else ""
        out.append(dataclasses.replace(run, experiment=f"{run.experiment} [{', '.join(shown)}{more}]"))
    return out


SHOWN_KEYS = 3


def inserted_bars(manifest: dict[str, Any]) -> int:
    """Bars the data source inserted as no-trade bars (a file's or a fetch's repair report), for reports."""
    return int(manifest.get("inserted_bars", (manifest.get("repair") or {}).get("gap_bars_inserted", 0)) or 0)


def data_identity(manifest: dict[str, Any] | None) -> str | None:
    """A short name for the data a run saw, from a data manifest (None if unknown).

    The synthetic seed is left out on purpose: runs over seeds are meant to average
    over markets.  Files are named by their sha256, so a changed file is another data set.
    A bar size other than the default (15m) is part of the name: the same market at 1h is another data set.
    """
    if not manifest:
        return None
    source = manifest.get("source")
    basis = manifest.get("premium_basis") or "usdt"
    suffix = "" if basis == "usdt" else f", premium {basis}"
    timeframe = manifest.get("timeframe")
    if timeframe and timeframe != timeframe_label(DEFAULT_BAR):
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
    """(data, checkpoint kind, split, fee, test period, failed) of a report; None where it does not say."""
    period = summary.get("setting_period") or summary.get("period")  # walk-forward windows: their whole region
    period_text = f"{str(period[0])[:16]}..{str(period[1])[:16]}" if isinstance(period, list) and \
        len(period) == 2 else None
    env = _read_config(run_dir).get("env") or {}
    fee = summary.get("fee_rate", env.get("fee_rate", env.get("fee")))
    fee_text = f"{float(fee) * 100:g} %" if isinstance(fee, (int, float)) else None
    data = summary.get("data") or data_identity(_read_json(run_dir / "data_manifest.json"))
    failed = failure_of(run_dir)
    split = summary.get("split")
    return (("data", data), ("checkpoint", checkpoint_kind(summary)), ("split", str(split) if split else None),
            ("fee", fee_text), ("test", period_text), ("fit", f"FAILED ({failed})" if failed else "ok"))


def checkpoint_kind(summary: dict[str, Any]) -> str | None:
    """``best`` / ``last`` / the file name of the checkpoint a report tested (None for a rules-only backtest)."""
    name = summary.get("checkpoint_name") or (Path(str(summary["checkpoint"])).stem if summary.get("checkpoint")
                                              else None)
    if not name:
        return None
    return "best" if str(name).startswith("best") else str(name)


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
    """Every report under ``paths`` (each once), named and labelled (:func:`label_groups`)."""
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
            run_dir = run_dir_of(summary_path)
            experiment, seed = identify(run_dir, summary)
            rules_only = "policy" not in summary
            market = summary.get("data_seed") if summary.get("window") is None else f"window {summary['window']}"
            runs.append(Run(run_dir, RULES_ONLY if rules_only else experiment, seed, summary,
                            run_facts(run_dir, summary),
                            what_ran=None if rules_only else what_ran(_read_config(run_dir)),
                            kind="rules" if rules_only else "policy",
                            market=None if market is None else str(market), report=str(summary_path.parent)))
    return label_groups(runs)


RULES_ONLY = "rules only (backtest)"


def compare_table(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per (group, trader): ``n`` reports (seeds × markets), ``<metric>_mean``, ``<metric>_std`` (ddof 1)."""
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
                               "seeds": " ".join(dict.fromkeys(str(s) for s in group["seed"].tolist()))}
        for column in COLUMNS:
            values = group[column].dropna()
            row[f"{column}_mean"] = float(values.mean()) if len(values) else math.nan
            row[f"{column}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    table["_order"] = table["trader"].map(lambda t: order.get(t, 1))
    keys = ["setting", "experiment", "_order"] if mixed else ["experiment", "_order"]
    return table.sort_values(keys, kind="stable").drop(columns="_order").reset_index(drop=True)


def _group_name(run: Run) -> str:
    return f"{run.setting}: {run.experiment}" if run.setting else run.experiment


def _return(metrics: Any) -> float:
    value = (metrics or {}).get("return") if isinstance(metrics, dict) else None
    return float(value) if isinstance(value, (int, float)) else math.nan


def market_records(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per report (a run on one market): the returns and the paired differences on that market.

    ``excess`` = policy return - band rule return, ``excess_bh`` = policy return - buy-and-hold return
    (fractions, NaN where one is missing); a rules-only backtest has the band rule's numbers only.
    """
    records = []
    for run in runs:
        policy = run.summary.get("policy")
        baselines = run.summary.get("baselines") or {}
        band, hold = _return(baselines.get(BAND_RULE)), _return(baselines.get(BUY_AND_HOLD))
        ret = _return(policy)
        records.append({"group": _group_name(run), "setting": run.setting, "kind": run.kind, "run": str(run.run_dir),
                        "seed": run.seed, "data": dict(run.facts).get("data"),
                        "market": run.market, "checkpoint": dict(run.facts).get("checkpoint"),
                        "policy_return": ret, "band_rule_return": band, "buy_and_hold_return": hold,
                        "excess": ret - band, "excess_bh": ret - hold,
                        "max_drawdown": float((policy or {}).get("max_drawdown", math.nan) or 0.0)
                        if policy else math.nan,
                        "n_trades": float((policy or {}).get("n_trades", math.nan)) if policy else math.nan,
                        "report": run.report})
    return pd.DataFrame.from_records(records, columns=["group", "setting", "kind", "run", "seed", "data", "market",
                                                       "checkpoint",
                                                       "policy_return", "band_rule_return", "buy_and_hold_return",
                                                       "excess", "excess_bh", "max_drawdown", "n_trades", "report"])


def lead_table(markets: pd.DataFrame) -> pd.DataFrame:
    """One row per group: returns, the paired excess over the band rule with its interval and verdict, n."""
    rows = []
    for group, frame in markets.groupby("group", sort=False):
        runs = frame["run"].nunique()
        per_run = frame.groupby("run").size()
        n_text = f"{runs} × {int(per_run.iloc[0])}" if per_run.nunique() == 1 else f"{len(frame)} ({runs} runs)"
        row: dict[str, Any] = {"group": group, "kind": frame["kind"].iloc[0],
                               "checkpoint": " ".join(dict.fromkeys(str(c) for c in frame["checkpoint"].dropna())),
                               "data": " / ".join(dict.fromkeys(str(d) for d in frame["data"].dropna())),
                               "n": len(frame), "n_text": n_text,
                               "policy_return": frame["policy_return"].mean(),
                               "band_rule_return": frame["band_rule_return"].mean(),
                               "n_trades": frame["n_trades"].mean(), "max_drawdown": frame["max_drawdown"].mean()}
        for column, reference, prefix in (("excess", "the band rule", ""), ("excess_bh", "buy-and-hold", "bh_")):
            valid = frame[frame[column].notna()]
            stats = paired_stats(valid[column].to_numpy(), strata=valid["run"].tolist(), reference=reference)
            row.update({f"{prefix}{k}": v for k, v in stats.as_dict().items() if k not in ("reference",)})
        rows.append(row)
    return pd.DataFrame(rows)


def _pct(value: float, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:+.2f}%" if signed else f"{100 * value:.2f}%"


def lead_markdown(lead: pd.DataFrame) -> str:
    """The lead table: one row per group, the verdict against the band rule first."""
    header = ["group", "verdict", "policy − band rule [95 % CI]", "win rate", "policy return", "band rule return",
              "trades", "max drawdown", "n (runs × markets)"]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in lead.itertuples(index=False):
        if row.kind == "rules":
            cells = [row.group, "rules only", "-", "-", "-", _pct(row.band_rule_return, True), "-", "-", row.n_text]
        else:
            interval = (f"{_pct(row.mean, True)} [{_pct(row.ci_low, True)} .. {_pct(row.ci_high, True)}]"
                        if not math.isnan(row.ci_low) else _pct(row.mean, True))
            trades = "-" if math.isnan(row.n_trades) else f"{row.n_trades:,.1f}"
            cells = [row.group, row.verdict, interval,
                     "-" if math.isnan(row.win_rate) else f"{100 * row.win_rate:.0f}%",
                     _pct(row.policy_return, True), _pct(row.band_rule_return, True), trades,
                     _pct(row.max_drawdown), row.n_text]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def learning_curves(runs: Sequence[Run]) -> dict[str, dict[str, pd.DataFrame]]:
    """group -> {``seed <s>`` -> the run's validation curve} for the runs that logged one (each run once)."""
    from kpremia.eval.curves import validation_curve

    out: dict[str, dict[str, pd.DataFrame]] = {}
    seen: set[tuple[str, Path]] = set()
    for run in runs:
        if run.kind != "policy" or (_group_name(run), run.run_dir) in seen:
            continue
        seen.add((_group_name(run), run.run_dir))
        label = f"seed {run.seed}"
        group = out.setdefault(_group_name(run), {})
        curve = validation_curve(run.run_dir)
        if curve is not None:
            group[label if label not in group else f"{label} ({run.run_dir.name})"] = curve
    return {g: c for g, c in out.items() if c}


MAX_PAIRS = 6


def between_groups(markets: pd.DataFrame) -> list[str]:
    """Paired differences between two groups on the markets both were tested on (same setting, seed, market).

    Where two variants were trained with the same seeds and tested on the same draws, comparing them
    market by market removes the market's luck, as against the band rule.  At most :data:`MAX_PAIRS`
    pairs (the first groups shown); none where no market is shared.
    """
    policy = markets[(markets["kind"] == "policy") & markets["market"].notna() & markets["seed"].notna()]
    groups = list(dict.fromkeys(policy["group"]))
    lines = []
    for i, first in enumerate(groups):
        for second in groups[i + 1:]:
            if len(lines) >= MAX_PAIRS:
                return lines
            a, b = (policy[policy["group"] == g] for g in (first, second))
            if a["setting"].iloc[0] != b["setting"].iloc[0]:
                continue
            keyed = [frame.assign(key=frame["seed"].astype(str) + "|" + frame["market"].astype(str))
                     .drop_duplicates("key").set_index("key")["policy_return"] for frame in (a, b)]
            common = keyed[0].index.intersection(keyed[1].index)
            if len(common) < 2:
                continue
            diffs = (keyed[0][common] - keyed[1][common]).to_numpy()
            strata = [k.split("|")[0] for k in common]
            stats = paired_stats(diffs, strata=strata, reference=second)
            interval = f"[{_pct(stats.ci_low, True)} .. {_pct(stats.ci_high, True)}]"
            lines.append(f"{first} − {second} on the same {stats.n} markets: mean {_pct(stats.mean, True)} "
                         f"{interval}, win rate {100 * stats.win_rate:.0f}% -> {first} is {stats.verdict}")
    return lines


def group_differences(runs: Sequence[Run]) -> list[str]:
    """For the groups shown, the few config keys that differ between them (one line each, for the legend)."""
    identities: dict[str, Identity] = {}
    for run in runs:
        if run.kind == "policy" and run.what_ran is not None:
            identities.setdefault(_group_name(run), run.what_ran)
    keys = [k for k in differing_keys(identities.values()) if k != "experiment_name"]
    if not keys:
        return []
    shown, more = keys[:6], len(keys) - 6
    lines = [f"{group}: " + ", ".join(show_value(identity, k) for k in shown) for group, identity in identities.items()]
    if more > 0:
        lines.append(f"(+{more} more differing keys; every key is in each run's config.yaml)")
    return lines


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
                                     description="Which variant is better: the policy against the band rule on "
                                                 "the same markets, "
                                                 "per group of runs that ran the same thing.")
    parser.add_argument("paths", nargs="+", type=Path, help="run directories and/or multirun directories")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write compare.csv, compare.md and compare.png (default: the common parent)")
    parser.add_argument("--no-plot", dest="plot", action="store_false",
                        help="do not draw compare.png (per-market paired differences to the band rule, per group)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its usage line
        return 0 if exc.code in (0, None) else UserError.exit_code
    runs, legend = assign_settings(load_runs(args.paths))
    table = compare_table(runs)
    markets = market_records(runs)
    lead = lead_table(markets)
    out = args.out or _default_out(args.paths)
    out.mkdir(parents=True, exist_ok=True)
    lead_md = lead_markdown(lead)
    notes = ("\nThe policy's return minus the band rule's, paired on the same markets (each run's own test "
             "split and its unseen draws), over runs × markets: mean and a stratified bootstrap 95 % interval; "
             "\"ahead\" or \"behind\" only when the interval excludes 0.\n")
    pairs = between_groups(markets)
    if pairs:
        notes += "\nBetween groups, paired on the markets both were tested on (same seed and market):\n\n" + \
            "\n".join(f"* {line}" for line in pairs) + "\n"
    differences = group_differences(runs)
    if differences:
        notes += "\nWhat differs between the groups:\n\n" + "\n".join(f"* {line}" for line in differences) + "\n"
    if legend:
        notes += ("\nThese reports do not share one data, checkpoint, split, fee, test period and outcome: rows are "
                  "grouped by setting and never averaged across settings.\n\n"
                  + "\n".join(f"* {line}" for line in legend) + "\n")
    markdown = lead_md + notes + "\n## All metrics (mean ± std over runs × markets)\n\n" + to_markdown(table)
    atomic_write_text(out / "compare.csv", table.to_csv(index=False))
    atomic_write_text(out / "compare_markets.csv", markets.to_csv(index=False))
    atomic_write_text(out / "compare_lead.csv", lead.to_csv(index=False))
    atomic_write_text(out / "compare.md", markdown)
    written = [out / "compare.md", out / "compare.csv", out / "compare_lead.csv", out / "compare_markets.csv"]
    if args.plot:
        from kpremia.eval.plots import compare_figure, png_bytes

        policy_groups = lead[lead["kind"] == "policy"]
        if not policy_groups.empty:
            atomic_write_bytes(out / "compare.png", png_bytes(compare_figure(markets[markets["kind"] == "policy"],
                                                                             policy_groups)))
            written.append(out / "compare.png")
        curves = learning_curves(runs)
        if curves:
            from kpremia.eval.plots import learning_curves_figure

            atomic_write_bytes(out / "compare_learning.png", png_bytes(learning_curves_figure(curves)))
            written.append(out / "compare_learning.png")
    sys.stdout.write(lead_md + notes)
    sys.stdout.write(f"\n{len(runs)} report(s) of {len({r.run_dir for r in runs})} run(s); all metrics in "
                     f"{out / 'compare.md'}; written {', '.join(str(w) for w in written)}\n")
    return 0

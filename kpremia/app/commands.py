"""What each Hydra command does with a composed config (Hydra-free, testable).

The CLI and the Python API dispatch here by the command's name in
:data:`kpremia.app.command_table.COMMANDS`; each runner takes ``(cfg, run_dir, overrides)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kpremia.app.command_table import command as command_of
from kpremia.core.config import checkpoint_of, runs_root
from kpremia.core.errors import UserError
from kpremia.run.checkpoint import resolve_checkpoints

log = logging.getLogger(__name__)


def dispatch(command: str, cfg: dict[str, Any], run_dir: Path | None, overrides: list[str] | None = None) -> Any:
    """Run the Hydra command ``command`` (:data:`kpremia.app.command_table.COMMANDS`) on a composed config.

    The CLI and the Python API both come here; what each returns is the runner's whole result
    (fit: the training result with the module, backtest: the summary, test: the report's summary).
    """
    spec = command_of(command)
    if not spec.hydra:
        raise UserError(f"`{command}` takes command-line arguments, not a composed config")
    return RUNNERS[spec.runner](cfg, run_dir, list(overrides or []))


def run(command: str, cfg: dict[str, Any], run_dir: Path, overrides: list[str] | None = None) -> Any:
    """As the CLI runs ``command``; return the value a sweeper optimises (fit: the best validation score)."""
    result = dispatch(command, cfg, run_dir, overrides)
    objective = command_of(command).objective
    if objective is None:
        return result
    if result["module"].trainer.is_global_zero:
        print(run_dir, flush=True)
    return result[objective]


def fit(cfg: dict[str, Any], run_dir: Path | None, overrides: list[str]) -> dict[str, Any]:
    """Train into ``run_dir``; ``ckpt=`` resumes that run with its own config (:mod:`kpremia.run.resume`)."""
    from kpremia.app.config_checks import validate_config

    if run_dir is None:
        raise UserError("fit needs a run directory")
    if checkpoint_of(cfg):  # resume: the checkpoint's config, the command line's how-keys (kpremia.run.resume)
        from kpremia.run.resume import resume_config

        cfg = resume_config(cfg, one_checkpoint(cfg, which="last"), overrides)
    run_cfg = validate_config(cfg)  # parsed once, passed whole
    from kpremia.run import training

    result = training.fit(run_cfg, run_dir)
    if result["module"].trainer.is_global_zero:
        log.info("best %s = %s (%s)", cfg["algo"].get("monitor"), result["best_score"], result["best_model_path"])
    return result


def validate(cfg: dict[str, Any], run_dir: Path | None, overrides: list[str]) -> Any:
    """The checkpoint(s) on the validation split (nothing written)."""
    return evaluate("validate", cfg, overrides)


def test(cfg: dict[str, Any], run_dir: Path | None, overrides: list[str]) -> Any:
    """The checkpoint(s) on the test split; a report per checkpoint, beside it."""
    return evaluate("test", cfg, overrides)


def backtest(cfg: dict[str, Any], run_dir: Path | None, overrides: list[str]) -> dict[str, Any]:
    """The rules alone on the test split, the report in ``run_dir``."""
    from kpremia.app.config_checks import validate_config

    if run_dir is None:
        raise UserError("backtest needs a run directory")
    run_cfg = validate_config(cfg)
    from kpremia.run.rules_backtest import run_rules_backtest

    return run_rules_backtest(run_cfg, run_dir)


def live(cfg: dict[str, Any], run_dir: Path | None, overrides: list[str]) -> dict[str, Any]:
    """A live session; exit code 3 (SessionHalted) when it ended HALTED."""
    from kpremia.app.config_checks import validate_config
    from kpremia.live.loop.build import run_live
    from kpremia.live.ops.preflight import storage_errors

    if checkpoint_of(cfg):
        cfg = {**cfg, "ckpt": str(one_checkpoint(cfg))}
    run_cfg = validate_config(cfg)
    with storage_errors(run_cfg.live.state_dir):
        summary = run_live(run_cfg, overrides)
    from kpremia.live.loop.types import RiskState

    if RiskState(summary["risk_state"]) is RiskState.HALTED:  # exit code 3: a supervisor must not restart it blindly
        from kpremia.core.errors import SessionHalted
        from kpremia.live.ops.halt import halt_line

        raise SessionHalted(halt_line(summary["state_dir"]))
    return summary


def serve(cfg: dict[str, Any], run_dir: Path | None, overrides: list[str]) -> Any:
    """The control API and status page over a checkpoint."""
    from kpremia.app.config_checks import validate_config
    from kpremia.live.http.serve import serve as serve_http

    if checkpoint_of(cfg):
        cfg = {**cfg, "ckpt": str(one_checkpoint(cfg))}
    return serve_http(validate_config(cfg))


RUNNERS: dict[str, Callable[[dict[str, Any], Path | None, list[str]], Any]] = {
    f.__name__: f for f in (fit, validate, test, backtest, live, serve)}  # the table's runner names


def one_checkpoint(cfg: dict[str, Any], which: str = "best") -> Path:
    """The one checkpoint file ``cfg["ckpt"]`` names (a file, a glob, a run directory, best / last)."""
    return resolve_checkpoints(str(checkpoint_of(cfg)), runs_dir=runs_root(cfg), which=which)[0]


def evaluate(command: str, cfg: dict[str, Any], overrides: list[str]) -> Any:
    """``validate`` / ``test`` of one checkpoint, or of every run below a directory (a sweep)."""
    from kpremia.run.evaluate import evaluate_checkpoint

    ckpt = checkpoint_of(cfg)
    if not ckpt:
        from kpremia.run.input_checks import needs_checkpoint

        raise needs_checkpoint(command)
    split = "val" if command == "validate" else "test"
    paths = resolve_checkpoints(ckpt, runs_dir=runs_root(cfg), which="best", many=True)
    if len(paths) == 1:
        return evaluate_checkpoint(str(paths[0]), split=split, cli_cfg=cfg, overrides=overrides)
    return evaluate_runs(Path(ckpt), paths, split=split, cfg=cfg, overrides=overrides)


def evaluate_runs(root: Path, paths: list[Path], *, split: str, cfg: dict[str, Any],
                  overrides: list[str]) -> list[dict[str, Any]]:
    """Every run of a sweep in turn, one line each; the failures are listed at the end (exit code 2)."""
    from kpremia.run.checkpoint import runs_below
    from kpremia.run.evaluate import evaluate_checkpoint

    runs = runs_below(root)
    with_ckpt = {p.parent.parent for p in paths}
    skipped = [r for r in runs if r not in with_ckpt]
    print(f"{'testing' if split == 'test' else 'validating'} {len(paths)} run(s) under {root}"
          + (f" ({len(skipped)} without a checkpoint skipped: {', '.join(r.name for r in skipped)})" if skipped
             else ""), flush=True)
    summaries, failed = [], []
    package_log = logging.getLogger("kpremia")
    level = package_log.level
    for i, path in enumerate(paths, start=1):
        run = path.parent.parent
        print(f"[{i}/{len(paths)}] {run.name}: {path.name} ...", flush=True)
        package_log.setLevel(logging.WARNING)  # one run's details (market, fits) would bury the per-run lines
        try:
            summary = evaluate_checkpoint(str(path), split=split, cli_cfg=cfg, overrides=overrides, echo=False)
        except UserError as exc:
            failed.append(f"{run.name}: {exc}")
            print(f"[{i}/{len(paths)}] {run.name}: error: {exc}", flush=True)
            continue
        finally:
            package_log.setLevel(level)
        summaries.append(summary)
        print(f"[{i}/{len(paths)}] {run.name}: {brief(summary)}", flush=True)
    if split == "test" and summaries:
        print(f"compare them: python -m kpremia compare {root}", flush=True)
    if failed:
        raise UserError(f"{len(failed)} of {len(paths)} run(s) could not be evaluated (first: {failed[0]})")
    return summaries


def brief(summary: dict[str, Any]) -> str:
    """The policy's return and trades beside the band rule's and buy-and-hold's, for one line."""
    def ret(metrics: dict[str, Any] | None) -> str:
        return "-" if not metrics else f"{100 * float(metrics['return']):+.2f} %"

    policy = summary.get("policy") or {}
    baselines = summary.get("baselines") or {}
    parts = [f"policy {ret(policy)} ({int(round(float(policy.get('n_trades', 0)))):,} trades)"]
    parts += [f"{label} {ret(baselines.get(name))}" for name, label in
              (("premium_threshold", "band rule"), ("buy_and_hold", "buy-and-hold")) if name in baselines]
    paired = (summary.get("paired") or {}).get("premium_threshold")
    if paired:  # the own split and the unseen draws of eval.test_markets
        parts.append(f"over {paired['n']} markets policy - band rule {100 * paired['mean']:+.2f} % "
                     f"-> {paired['verdict']}")
    where = summary.get("report_dir")
    return ", ".join(parts) + (f" -> {where}" if where else "")

"""The Python API: train, test and act from a notebook or a script, as the CLI does.

    import kpremia

    run = kpremia.fit(["experiment=mlp_ppo", "algo.total_env_steps=65536"])   # -> FitResult
    summary = kpremia.test(run.run_dir)                                        # -> the report's summary
    policy = kpremia.load_policy(run.best_checkpoint)                          # -> Policy
    env = policy.make_env(split="test")                                        # a gymnasium env of its market
    obs, info = env.reset(seed=0)
    action = policy.act(obs)                                                   # an int (one observation)

Why thin: every function here is the CLI command of the same name with the overrides the
command line would take, composed by the same Hydra tree and run by the same code
(:mod:`kpremia.app.commands`), so a notebook and a shell give the same runs, run directories,
reports and one-line errors (:class:`kpremia.core.errors.UserError`, raised here instead of
printed).  ``import kpremia`` stays light: this module (and Lightning) is imported on the
first use of ``kpremia.fit`` and friends.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kpremia.app import commands
from kpremia.app.command_table import command as command_of
from kpremia.core.compose import compose_config
from kpremia.core.config import checkpoint_of, runs_root
from kpremia.core.errors import UserError
from kpremia.core.run_dirs import new_run_dir
from kpremia.run.checkpoint import resolve_checkpoints

log = logging.getLogger(__name__)

__all__ = ["FitResult", "Policy", "backtest", "compare", "fit", "inspect", "load_policy", "test", "validate"]


@dataclass(frozen=True)
class FitResult:
    """What a ``fit`` left behind: its run directory, checkpoints and best validation score."""

    run_dir: Path
    best_checkpoint: Path | None  # the checkpoint kept by ``algo.monitor`` (None if no validation ran)
    last_checkpoint: Path
    best_score: float | None  # the best ``algo.monitor`` value (default val/excess_return)
    env_steps: int
    config: dict[str, Any] = field(repr=False)  # the run's resolved config (as in config.yaml)

    @property
    def identity(self) -> str | None:
        """What ran, as ``compare`` groups it (:func:`kpremia.core.identity.identity_digest`; the seed left out)."""
        from kpremia.core.identity import identity_digest

        return identity_digest(self.config)


def _compose(overrides: Sequence[str]) -> dict[str, Any]:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return compose_config(list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise UserError(" ".join(str(exc).split()).split(" Config search path:")[0]) from None


def fit(overrides: Sequence[str] = (), *, run_dir: str | Path | None = None) -> FitResult:
    """Train as ``python -m kpremia fit <overrides>`` does; return where everything went.

    ``overrides`` are Hydra overrides (``["experiment=mlp_ppo", "seed=1"]``).  ``ckpt=<run dir or
    last.ckpt>`` resumes that run in its own directory with its own config (only how-keys such as
    ``trainer.*`` and ``algo.total_env_steps`` may change; see ``kpremia.run.resume``).  ``run_dir``
    replaces the generated ``runs/<date>_<time>_<experiment>`` directory of a new run.
    """
    overrides = list(overrides)
    cfg = _compose(overrides)
    named = cfg
    if checkpoint_of(cfg):  # as `fit ckpt=` does: the run's own directory, nothing to do if it is finished
        from kpremia.run.checkpoint import run_dir_of
        from kpremia.run.resume import finished_line, resume_config

        ckpt = commands.one_checkpoint(cfg, which="last").resolve()
        named = resume_config(cfg, ckpt, overrides)
        done = finished_line(named, ckpt)
        if done is not None:
            raise UserError(done)
        cfg = {**cfg, "ckpt": str(ckpt)}
        run_dir = run_dir or run_dir_of(ckpt)
    target = _run_dir("fit", named, run_dir)
    result = commands.dispatch("fit", cfg, target, overrides)
    return FitResult(run_dir=target, best_checkpoint=Path(result["best_model_path"]) if result["best_model_path"]
                     else None, last_checkpoint=Path(result["last_model_path"]), best_score=result["best_score"],
                     env_steps=int(result["env_steps"]), config=result["module"].cfg)


def _run_dir(command: str, cfg: Mapping[str, Any], given: str | Path | None) -> Path | None:
    """``given``, or the new run directory the command table says ``command`` makes (None: it makes none)."""
    if given is not None:
        return Path(given)
    spec = command_of(command)
    return new_run_dir(cfg, spec.label) if spec.run_dir == "new" else None


def _evaluate(command: str, ckpt: str | Path, overrides: Sequence[str]) -> Any:
    overrides = [o for o in overrides if not o.startswith("ckpt=")]
    cfg = _compose(overrides)
    cfg["ckpt"] = str(ckpt)
    return commands.dispatch(command, cfg, None, overrides)


def test(ckpt: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any] | list[dict[str, Any]]:
    """``python -m kpremia test``: the policy and the baselines on the test split (and ``eval.test_markets``
    unseen draws of a generated market); writes ``report/<checkpoint>/<data>/test/`` per market.

    ``ckpt`` is what ``ckpt=`` takes: a ``.ckpt`` file, a run directory (its best checkpoint),
    ``"best"`` / ``"last"`` (the newest run) or a sweep directory (every run: a list).
    ``overrides``: evaluation options (``eval.plots=false``) or another market (``data.seed=7``).
    Returns the own split's summary (``summary.json`` plus ``report_dir``, and on a generated market
    ``markets`` and ``paired``: the policy minus the band rule over them, see docs/compare.md).
    """
    return _evaluate("test", ckpt, overrides)


def validate(ckpt: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any] | list[dict[str, Any]]:
    """``python -m kpremia validate``: as :func:`test` on the validation split (no report written)."""
    return _evaluate("validate", ckpt, overrides)


def backtest(policy: Any = None, overrides: Sequence[str] = (), *, run_dir: str | Path | None = None
             ) -> dict[str, Any]:
    """``python -m kpremia backtest <overrides>``: the rules, or ``policy`` beside them, on the test split.

    Without ``policy``: the rules alone (band rule, z-score band, buy-and-hold, cash, random, oracle),
    as the command does.  With one — a Stable-Baselines3 model, a :class:`Policy`, or a function
    ``obs -> actions`` over a batch of observation dicts — the policy plays the test split of the
    market ``overrides`` describe (``["experiment=mlp_ppo"]``: the market and rules its gym env
    trains on) and the report holds the same files as ``test``'s (see :mod:`kpremia.run.policy_backtest`).
    Writes ``runs/<date>_<time>_backtest/`` (or ``run_dir``); returns the summary with ``report_dir``.
    """
    from kpremia.run.input_checks import check_inputs

    overrides = list(overrides)
    cfg = _compose(overrides)
    check_inputs("backtest", cfg, overrides)
    target = _run_dir("backtest", cfg, run_dir)
    assert target is not None  # the table gives backtest a new run directory
    if policy is None:
        return {**commands.dispatch("backtest", cfg, target, overrides), "report_dir": str(target / "report")}
    from kpremia.app.config_checks import validate_config
    from kpremia.run.policy_backtest import run_policy_report

    return run_policy_report(policy, validate_config(cfg), target)


def compare(paths: str | Path | Sequence[str | Path], *, out: str | Path | None = None, plot: bool = True) -> Any:
    """``python -m kpremia compare <paths>``: test metrics across runs, mean ± std per experiment.

    Writes ``compare.csv``, ``compare.md`` (and ``compare.png`` with ``plot``) into ``out`` (default: the
    paths' common folder) and prints the table, as the command does; returns the table as a DataFrame.
    """
    import os

    import pandas as pd

    from kpremia.run.compare import compare_main

    given = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not given:
        raise UserError("compare needs at least one run or multirun directory")
    missing = [str(p) for p in given if not p.exists()]
    if missing:
        raise UserError(f"compare: {missing[0]} does not exist; pass run directories or a multirun directory")
    if out is None:
        common = Path(os.path.commonpath([str(p.resolve()) for p in given]))
        out = common if common.is_dir() else common.parent
    code = compare_main([*map(str, given), "--out", str(out), *([] if plot else ["--no-plot"])])
    if code != 0:
        raise UserError(f"compare {' '.join(map(str, given))} failed (exit code {code})")
    return pd.read_csv(Path(out) / "compare.csv")


def inspect(target: str | Path, overrides: Sequence[str] = (), *, fx: str | None = None,
            cache_dir: str | Path | None = None) -> dict[str, Any]:
    """``python -m kpremia data inspect <target> <data.* overrides>``: coverage and premium statistics.

    ``target`` is a .csv / .parquet file (read as ``fit data=csv|parquet data.path=<file>`` reads it, with
    the same ``data.*`` overrides) or a cached dataset id ``exchange:symbol:timeframe``.  Returns what
    ``data inspect --json`` prints: ``coverage``, ``stats`` (premium and FX), ``bar``, ``fx_source``.
    """
    from kpremia.data.cli import inspect_file, inspect_report, load_target

    path = Path(target).expanduser()
    if path.exists():
        return {"target": str(path), **inspect_file(path, list(overrides), fx)}
    if overrides:
        raise UserError(f"data options ({list(overrides)[0]}) apply to files; {str(target)!r} is not a file")
    frame, title = load_target(str(target), None if cache_dir is None else str(cache_dir))
    return {"target": title, **inspect_report(frame, fx=fx or "ecb")}


class Policy:
    """A trained agent from a checkpoint: its network (eval mode), normaliser, market model and config."""

    def __init__(self, checkpoint: str | Path) -> None:
        from kpremia.run.checkpoint import load_checkpoint

        self.checkpoint = Path(checkpoint)
        loaded = load_checkpoint(self.checkpoint)
        self.module = loaded.module
        self.normalizer = loaded.normalizer
        self.run_config = loaded.cfg  # parsed once (kpremia.run.run_config.RunConfig)
        self.config: Mapping[str, Any] = loaded.cfg.raw
        self.bar_minutes = loaded.bar_minutes
        self.env_config = loaded.cfg.env
        self.spec = self.module.spec
        self.action_names: tuple[str, ...] = tuple(self.module.action_names)

    def __repr__(self) -> str:
        return (f"Policy({str(self.checkpoint)!r}: {self.config.get('experiment_name')}, actions "
                f"{list(self.action_names)})")

    def act(self, obs: Mapping[str, Any], *, deterministic: bool = True, temperature: float = 1.0,
            generator: torch.Generator | None = None) -> int | np.ndarray:
        """The action for an observation dict (NumPy arrays or tensors, as the gym env and the simulator give).

        One observation (the shapes of ``self.spec``) gives an ``int``; a batch ``[B, ...]`` gives
        an array of ``B`` actions.  The observation must be normalised as the policy was trained
        (what :meth:`make_env`, the simulator and the live feed give).
        """
        missing = [k for k in self.spec.shapes if k not in obs]
        if missing:
            raise UserError(f"the observation has no {', '.join(missing)}; the policy reads "
                            f"{', '.join(self.spec.shapes)} (an observation of kpremia's envs)")
        single = tuple(np.shape(obs[next(iter(self.spec.shapes))])) == tuple(self.spec.shapes[next(iter(
            self.spec.shapes))])
        batch = {k: torch.as_tensor(np.asarray(obs[k]) if not isinstance(obs[k], torch.Tensor) else obs[k],
                                    dtype=torch.float32) for k in self.spec.shapes}
        if single:
            batch = {k: v.unsqueeze(0) for k, v in batch.items()}
        actions = self.module.act(batch, deterministic=deterministic, temperature=temperature, generator=generator)
        out = actions.cpu().numpy()
        return int(out[0]) if single else out

    def make_env(self, split: str = "test", *, render_mode: str | None = None, seed: int = 0) -> Any:
        """A gymnasium env over ``split`` of the checkpoint's own market, scaled by its normaliser.

        The market model (fee, spread, decision interval, reward, action scheme, episode length)
        is the checkpoint's, so ``policy.act(obs)`` sees what it was trained to see.
        """
        from kpremia.envs.experiment import ALL_SPLITS, load_market
        from kpremia.envs.gym_env import KPremiaGymEnv
        from kpremia.run.run_config import resolve_bar_settings

        if split not in ALL_SPLITS:
            raise UserError(f"split={split!r}; use one of {', '.join(ALL_SPLITS)}")
        market = load_market(self.config, ALL_SPLITS, normalizer=self.normalizer)
        env = resolve_bar_settings(self.run_config, market).raw["env"]
        return KPremiaGymEnv(market.tensors[split], render_mode=render_mode, env=env, seed=seed)


def load_policy(ckpt: str | Path = "best") -> Policy:
    """The :class:`Policy` of a checkpoint (``ckpt`` as for :func:`test`: a file, a run directory, best/last)."""
    return Policy(resolve_checkpoints(str(ckpt), runs_dir=runs_root(compose_config([])), which="best")[0])

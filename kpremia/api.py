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
(:mod:`kpremia.commands`), so a notebook and a shell give the same runs, run directories,
reports and one-line errors (:class:`kpremia.errors.UserError`, raised here instead of
printed).  ``import kpremia`` stays light: this module (and Lightning) is imported on the
first use of ``kpremia.fit`` and friends.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kpremia import commands
from kpremia.checkpoints import resolve_checkpoints
from kpremia.compose import compose_config
from kpremia.config import checkpoint_of, runs_root
from kpremia.errors import UserError

log = logging.getLogger(__name__)

__all__ = ["FitResult", "Policy", "fit", "load_policy", "test", "validate"]


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
        """What ran, as ``compare`` groups it (:func:`kpremia.identity.identity_digest`; the seed left out)."""
        from kpremia.identity import identity_digest

        return identity_digest(self.config)


def _compose(overrides: Sequence[str]) -> dict[str, Any]:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return compose_config(list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise UserError(" ".join(str(exc).split()).split(" Config search path:")[0]) from None


def _new_run_dir(cfg: Mapping[str, Any]) -> Path:
    """``<paths.runs_dir>/<date>_<time>_<experiment_name>``, as the CLI names it (unique in this process)."""
    root = Path(runs_root(cfg))
    stem = f"{datetime.now():%Y-%m-%d_%H-%M-%S}_{cfg.get('experiment_name') or 'run'}"
    candidate, n = root / stem, 1
    while candidate.exists():
        candidate, n = root / f"{stem}_{n}", n + 1
    return candidate


def fit(overrides: Sequence[str] = (), *, run_dir: str | Path | None = None) -> FitResult:
    """Train as ``python -m kpremia fit <overrides>`` does; return where everything went.

    ``overrides`` are Hydra overrides (``["experiment=mlp_ppo", "seed=1"]``).  ``ckpt=<run dir or
    last.ckpt>`` resumes that run in its own directory with its own config (only how-keys such as
    ``trainer.*`` and ``algo.total_env_steps`` may change; see ``kpremia.resume``).  ``run_dir``
    replaces the generated ``runs/<date>_<time>_<experiment>`` directory of a new run.
    """
    from kpremia import training
    from kpremia.config_checks import validate_config
    from kpremia.resume import resume_config, run_dir_of

    overrides = list(overrides)
    cfg = _compose(overrides)
    if checkpoint_of(cfg):
        ckpt = commands.one_checkpoint(cfg, which="last").resolve()
        cfg = resume_config(cfg, ckpt, overrides)
        run_dir = run_dir or run_dir_of(ckpt)
    validate_config(cfg)
    target = Path(run_dir) if run_dir is not None else _new_run_dir(cfg)
    result = training.fit(cfg, target)
    log.info("best %s = %s (%s)", cfg["algo"].get("monitor"), result["best_score"], result["best_model_path"])
    return FitResult(run_dir=target, best_checkpoint=Path(result["best_model_path"]) if result["best_model_path"]
                     else None, last_checkpoint=Path(result["last_model_path"]), best_score=result["best_score"],
                     env_steps=int(result["env_steps"]), config=result["module"].cfg)


def _evaluate(command: str, ckpt: str | Path, overrides: Sequence[str]) -> Any:
    overrides = [o for o in overrides if not o.startswith("ckpt=")]
    cfg = _compose(overrides)
    cfg["ckpt"] = str(ckpt)
    return commands.evaluate(command, cfg, overrides)


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


class Policy:
    """A trained agent from a checkpoint: its network (eval mode), normaliser, market model and config."""

    def __init__(self, checkpoint: str | Path) -> None:
        from kpremia import training
        from kpremia.envs.config import EnvConfig

        self.checkpoint = Path(checkpoint)
        loaded = training.load_checkpoint(self.checkpoint)
        self.module = loaded.module
        self.normalizer = loaded.normalizer
        self.config: dict[str, Any] = loaded.cfg
        self.bar_minutes = loaded.bar_minutes
        self.env_config = EnvConfig.of(loaded.cfg["env"])
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
        from kpremia.training import resolve_bar_settings

        if split not in ALL_SPLITS:
            raise UserError(f"split={split!r}; use one of {', '.join(ALL_SPLITS)}")
        market = load_market(self.config, ALL_SPLITS, normalizer=self.normalizer)
        env = resolve_bar_settings(self.config, market)["env"]
        return KPremiaGymEnv(market.tensors[split], render_mode=render_mode, env=env, seed=seed)


def load_policy(ckpt: str | Path = "best") -> Policy:
    """The :class:`Policy` of a checkpoint (``ckpt`` as for :func:`test`: a file, a run directory, best/last)."""
    return Policy(resolve_checkpoints(str(ckpt), runs_dir=runs_root(compose_config([])), which="best")[0])

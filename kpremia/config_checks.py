"""Semantic checks of a composed config: one clear line per mistake.

Hydra checks that keys exist and groups have the chosen option; this checks
that values make sense, so a typo like ``env.n_envs=0`` fails before any work is
done, with a message that names the key and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kpremia.errors import UserError
from kpremia.envs.factory import action_scheme_of
from kpremia.registry import ALGOS, DATA_SOURCES, ENCODERS


def _check(cond: bool, key: str, value: Any, rule: str) -> None:
    if not cond:
        raise UserError(f"{key}={value!r} is invalid: it must be {rule}; fix the override or the config file")


def validate_config(cfg: Mapping[str, Any]) -> None:
    """Raise :class:`UserError` naming the first invalid value in ``cfg`` (a resolved dict)."""
    env, algo = cfg["env"], cfg["algo"]
    ENCODERS.get(cfg["encoder"]["name"])
    ALGOS.get(algo["name"])
    action_scheme_of(env)  # builds the scheme: an unknown name or a bad option fails here
    DATA_SOURCES.get(cfg["data"]["name"])
    _check(isinstance(cfg["seed"], int) and cfg["seed"] >= 0, "seed", cfg["seed"], "an integer >= 0")
    _check(int(env["n_envs"]) >= 1, "env.n_envs", env["n_envs"], ">= 1")
    _check(env["max_steps"] is None or int(env["max_steps"]) >= 1, "env.max_steps", env["max_steps"], ">= 1")
    _check(0.0 <= float(env["fee"]) < 0.1, "env.fee", env["fee"], "a fraction in [0, 0.1), e.g. 0.001 for 0.1 %")
    _check(float(env["slippage_bps"]) >= 0, "env.slippage_bps", env["slippage_bps"], ">= 0")
    _check(float(env["initial_krw"]) > 0, "env.initial_krw", env["initial_krw"], "> 0")
    for key in ("window_15m", "window_1d", "window_premium"):
        _check(int(env[key]) >= 1, f"env.{key}", env[key], ">= 1")
    _check(int(algo["total_env_steps"]) >= 1, "algo.total_env_steps", algo["total_env_steps"], ">= 1")
    _check(float(algo["lr"]) > 0, "algo.lr", algo["lr"], "> 0")
    _check(0.0 < float(algo["gamma"]) <= 1.0, "algo.gamma", algo["gamma"], "in (0, 1]")
    if algo["name"] == "ppo":
        _check(float(algo["clip_epsilon"]) > 0, "algo.clip_epsilon", algo["clip_epsilon"], "> 0")
        _check(0.0 <= float(algo["gae_lambda"]) <= 1.0, "algo.gae_lambda", algo["gae_lambda"], "in [0, 1]")
        _check(int(algo["update_epochs"]) >= 1, "algo.update_epochs", algo["update_epochs"], ">= 1")
        _check(int(algo["n_steps"]) >= 1, "algo.n_steps", algo["n_steps"], ">= 1")
        batch = int(algo["n_steps"]) * int(env["n_envs"])
        _check(1 <= int(algo["n_minibatches"]) <= batch, "algo.n_minibatches", algo["n_minibatches"],
               f"between 1 and algo.n_steps * env.n_envs = {batch}")
    if algo["name"] == "dqn":
        _check_dqn(algo, int(env["n_envs"]))
    _check(int(algo.get("rollouts_per_epoch", 1)) >= 1, "algo.rollouts_per_epoch",
           algo.get("rollouts_per_epoch"), ">= 1")
    _check_budget(algo, int(env["n_envs"]))
    check_encoder_sizes(cfg["encoder"])
    check_accelerator(str(cfg.get("trainer", {}).get("accelerator", "cpu")))


def _check_budget(algo: Mapping[str, Any], n_envs: int) -> None:
    """A budget below one rollout (PPO) or one collect round (DQN) would train nothing."""
    per_round = {"ppo": ("algo.n_steps", algo.get("n_steps")), "dqn": ("algo.collect_steps", algo.get("collect_steps"))}
    if algo["name"] not in per_round:
        return
    key, steps = per_round[algo["name"]]
    smallest = int(steps) * n_envs
    _check(int(algo["total_env_steps"]) >= smallest, "algo.total_env_steps", algo["total_env_steps"],
           f"at least one {'rollout' if algo['name'] == 'ppo' else 'collect round'} ({key} * env.n_envs = "
           f"{smallest} env steps)")


# Encoder keys that size a layer, and how (a plug-in encoder's keys follow the same naming).
_SIZE_SUFFIXES = ("_dim", "_dims", "_size", "_sizes", "num_layers", "_layers", "channels", "heads")


def check_encoder_sizes(encoder: Mapping[str, Any]) -> None:
    """Layer sizes >= 1 and dropout in [0, 1): torch would raise a traceback deep in the module."""
    for key, value in encoder.items():
        name = f"encoder.{key}"
        if key == "dropout" or key.endswith("_dropout"):
            _check(isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value < 1.0,
                   name, value, "a probability in [0, 1)")
        elif key.endswith(_SIZE_SUFFIXES):
            values = value if isinstance(value, (list, tuple)) else [value]
            ok = bool(values) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values)
            _check(ok, name, value, "a whole number >= 1" if not isinstance(value, (list, tuple))
                   else "a non-empty list of whole numbers >= 1")


def check_accelerator(accelerator: str) -> None:
    """Refuse a GPU accelerator on a machine without one, naming the way to run on the CPU.

    Lightning would raise a ``MisconfigurationException`` traceback from inside the Trainer.
    """
    import torch

    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        build = f"a CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build"
        raise UserError(f"trainer.accelerator={accelerator} but no CUDA GPU was found (torch {torch.__version__} "
                        f"is {build}); run on the CPU with trainer.accelerator=cpu (or without trainer=gpu), or "
                        "on a machine with a GPU and a CUDA build of torch")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise UserError("trainer.accelerator=mps but no Apple GPU (MPS) was found; run on the CPU with "
                        "trainer.accelerator=cpu")


def _check_dqn(algo: Mapping[str, Any], n_envs: int) -> None:
    for key in ("collect_steps", "gradient_steps", "batch_size", "target_update_interval"):
        _check(int(algo[key]) >= 1, f"algo.{key}", algo[key], ">= 1")
    _check(int(algo["learning_starts"]) >= 0, "algo.learning_starts", algo["learning_starts"], ">= 0")
    _check(0.0 < float(algo["tau"]) <= 1.0, "algo.tau", algo["tau"], "in (0, 1] (1 = hard target copy)")
    _check(int(algo["n_step"]) >= 1, "algo.n_step", algo["n_step"], ">= 1 (1 = one-step TD)")
    steps = -(-int(algo["buffer_size"]) // n_envs)  # the buffer holds whole env steps of all envs
    _check(steps >= int(algo["n_step"]), "algo.buffer_size", algo["buffer_size"],
           f"at least algo.n_step * env.n_envs = {int(algo['n_step']) * n_envs}")
    for key in ("epsilon_start", "epsilon_end", "epsilon_decay_fraction"):
        _check(0.0 <= float(algo[key]) <= 1.0, f"algo.{key}", algo[key], "in [0, 1]")
    _check(float(algo["max_grad_norm"]) > 0, "algo.max_grad_norm", algo["max_grad_norm"], "> 0")
    _check(float(algo.get("reward_scale", 1.0)) > 0, "algo.reward_scale", algo.get("reward_scale"), "> 0")

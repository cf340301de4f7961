"""Semantic checks of a composed config: one clear line per mistake.

Hydra checks that keys exist and groups have the chosen option; this checks
that values make sense, so a typo like ``env.n_envs=0`` fails before any work is
done, with a message that names the key and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kpremia.core.errors import UserError
from kpremia.core.registry import ALGOS, DATA_SOURCES, ENCODERS, Registry
from kpremia.core.threads import check_threads_setting
from kpremia.run.run_config import RunConfig


def _check(cond: bool, key: str, value: Any, rule: str) -> None:
    if not cond:
        raise UserError(f"{key}={value!r} is invalid: it must be {rule}; fix the override or the config file")


def _known(registry: Registry[Any], name: Any) -> None:
    """An unknown plug-in name fails here, without importing the known ones."""
    if name not in registry:
        registry.get(name)  # the one-line error listing the known names


def validate_config(cfg: Mapping[str, Any]) -> RunConfig:
    """The run config parsed once (:class:`RunConfig`), or :class:`UserError` naming the first invalid value.

    Each part checks itself: ``env`` (:class:`~kpremia.envs.config.EnvConfig`), ``algo`` (the algorithm's own
    config part, so a plug-in algorithm brings its own rules), ``eval`` and ``live``.  Nothing
    here imports an algorithm or an encoder that is built in: a mistake is reported
    before Lightning is loaded.  The commands pass the result on whole.
    """
    _known(ENCODERS, cfg["encoder"]["name"])
    _known(ALGOS, cfg["algo"]["name"])
    _known(DATA_SOURCES, cfg["data"]["name"])
    _check(isinstance(cfg["seed"], int) and cfg["seed"] >= 0, "seed", cfg["seed"], "an integer >= 0")
    _check(check_threads_setting(cfg.get("torch_threads", "auto")), "torch_threads", cfg.get("torch_threads"),
           "auto, null or a whole number >= 1")
    run = RunConfig.of(cfg)  # env, algo (checked with the env), eval, live
    run.env.scheme()  # builds the scheme: an unknown name or a bad option fails here
    check_encoder_sizes(cfg["encoder"])
    check_accelerator(str(cfg.get("trainer", {}).get("accelerator", "cpu")))
    return run


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
    On the CPU (the default) nothing is asked of torch, so the checks load no torch.
    """
    if accelerator not in ("gpu", "cuda", "mps"):
        return
    import torch

    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        build = f"a CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build"
        raise UserError(f"trainer.accelerator={accelerator} but no CUDA GPU was found (torch {torch.__version__} "
                        f"is {build}); run on the CPU with trainer.accelerator=cpu (or without trainer=gpu), or "
                        "on a machine with a GPU and a CUDA build of torch")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise UserError("trainer.accelerator=mps but no Apple GPU (MPS) was found; run on the CPU with "
                        "trainer.accelerator=cpu")

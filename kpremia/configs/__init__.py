"""kpremia's Hydra config tree (package data), and the OmegaConf resolvers it uses.

``${kpremia.run_name:<experiment>,<its encoder>,<its algo>,${encoder.name},${algo.name}}`` names a
run after its experiment plus whatever replaced the experiment's encoder or algorithm
(``experiment=gru_attn_ppo encoder=my_tcn`` runs as ``gru_attn_ppo+my_tcn``), so a run's name
says what ran.  It is registered when this package is imported, which Hydra does before it
reads any file of the tree, so every way of composing the config (the CLI, ``compose_config``,
Hydra's compose API in tests and notebooks) knows it.

``${kpremia.gpus:}`` is the number of GPUs this process sees (0 without CUDA): the
``hydra/launcher=gpus`` config runs that many trials at once, one per GPU.
``${kpremia.trials_at_once:<n_jobs>}`` is joblib's ``n_jobs`` as a count (``-1``: one per core):
the Optuna search asks that many trials of its sampler at a time.
"""

from __future__ import annotations

from omegaconf import OmegaConf


def run_name(experiment: str, own_encoder: str, own_algo: str, encoder: str, algo: str) -> str:
    """``experiment``, then ``+<encoder>`` / ``+<algo>`` where they are not the experiment's own."""
    parts = [str(experiment)]
    if str(encoder) != str(own_encoder):
        parts.append(str(encoder))
    if str(algo) != str(own_algo):
        parts.append(str(algo))
    return "+".join(parts)


if not OmegaConf.has_resolver("kpremia.run_name"):
    OmegaConf.register_new_resolver("kpremia.run_name", run_name)


def gpus() -> int:
    """The CUDA devices this process sees (``CUDA_VISIBLE_DEVICES`` applies); torch is imported only when asked."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


if not OmegaConf.has_resolver("kpremia.gpus"):
    OmegaConf.register_new_resolver("kpremia.gpus", gpus)


def trials_at_once(n_jobs: int) -> int:
    """joblib's ``n_jobs`` as a number of trials on this machine (kpremia.core.job_resources has the rule)."""
    from kpremia.core.job_resources import available_cores
    from kpremia.core.job_resources import trials_at_once as rule

    return rule({"_target_": "joblib", "n_jobs": n_jobs}, available_cores())


if not OmegaConf.has_resolver("kpremia.trials_at_once"):
    OmegaConf.register_new_resolver("kpremia.trials_at_once", trials_at_once)

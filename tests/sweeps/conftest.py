"""Fixtures for the sweep / logger / scale tests: a tiny fit config and an isolated wandb."""

from __future__ import annotations

import pytest

# A fit of a few seconds (the same shape as tests/algos/test_ppo_training.py's TINY).
TINY = [
    "experiment=gru_attn_ppo", "encoder=mlp", "data.days=40", "env.n_envs=8", "env.max_steps=100",
    "algo.n_steps=16", "algo.rollouts_per_epoch=1", "algo.update_epochs=2", "algo.n_minibatches=2",
    "algo.total_env_steps=256", "trainer.enable_progress_bar=false",
]


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    """wandb pointed at tmp_path: no key, no server, nothing written to the home directory."""
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "WANDB_SWEEP_ID", "WANDB_RUN_ID", "WANDB_PROJECT",
                "WANDB_ENTITY", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "wandb_home"
    for var, sub in (("WANDB_CONFIG_DIR", "config"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data"),
                     ("WANDB_ARTIFACT_DIR", "artifacts")):
        (home / sub).mkdir(parents=True)
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.setenv("NETRC", str(home / "no-netrc"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    return home

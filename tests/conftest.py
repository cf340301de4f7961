"""Shared fixtures: real Hydra composition of the shipped config tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parent.parent
# Tests share a busy machine and run many processes side by side: one torch thread each (the default,
# torch_threads=auto, would take every core in every process); tests of the default clear it.
os.environ.setdefault("KPREMIA_TORCH_THREADS", "1")


@pytest.fixture
def compose_cfg():
    """``compose_cfg(*overrides) -> dict``: the resolved config, as the CLI builds it."""

    def _compose(*overrides: str) -> dict:
        with initialize_config_module(config_module="kpremia.configs", version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
        return OmegaConf.to_container(cfg, resolve=True)

    return _compose


@pytest.fixture
def run_cli(tmp_path):
    """Run ``python -m kpremia ...`` in a subprocess with runs under tmp_path."""

    def _run(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "KPREMIA_RUNS_DIR": str(tmp_path / "runs"), "PYTHONWARNINGS": "ignore",
                    **(env or {})}
        return subprocess.run([sys.executable, "-m", "kpremia", *args], capture_output=True, text=True,
                              timeout=timeout, env=full_env, cwd=tmp_path)

    return _run

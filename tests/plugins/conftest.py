"""Fixtures of the plug-in tests: the guide, CLI subprocesses, plug-ins installed for real."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .helpers import BROKEN_PYPROJECT, PLUGIN_PACKAGE, Guide, pip_install


@pytest.fixture(scope="session")
def guide() -> Guide:
    return Guide()


@pytest.fixture
def kpremia(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """``kpremia(*args, env=None, cwd=tmp_path)``: ``python -m kpremia`` in a subprocess, runs under tmp_path."""

    def _run(*args: str, env: dict[str, str] | None = None, cwd: Path = tmp_path,
             timeout: float = 600) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "KPREMIA_RUNS_DIR": str(tmp_path / "runs"), "PYTHONWARNINGS": "ignore",
                    **(env or {})}
        return subprocess.run([sys.executable, "-m", "kpremia", *args], capture_output=True, text=True,
                              timeout=timeout, env=full_env, cwd=cwd)

    return _run


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the installed example plug-in ``kpremia-plugin-example``."""
    return pip_install(PLUGIN_PACKAGE, tmp_path_factory.mktemp("plugin") / "site")


@pytest.fixture(scope="session")
def broken_plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding an installed plug-in whose package raises on import (both entry points)."""
    root = tmp_path_factory.mktemp("broken")
    package = root / "kpremia_broken_plugin"
    (package / "kpremia_broken_plugin" / "configs").mkdir(parents=True)
    (package / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    (package / "kpremia_broken_plugin" / "__init__.py").write_text(
        'raise RuntimeError("this plug-in is deliberately broken")\n')
    (package / "kpremia_broken_plugin" / "encoder.py").write_text("")
    (package / "kpremia_broken_plugin" / "configs" / "__init__.py").write_text("")
    return pip_install(package, root / "site")

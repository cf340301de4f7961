"""Helpers of the plug-in tests: the guide's marked blocks, a real pip install, a fit check.

The guide (``docs/write_an_encoder.md``) marks what the tests use with HTML comments:
``<!-- file: <path> -->`` before a code block that must equal that file of the repository,
``<!-- run: <label> -->`` before a shell block whose commands a test runs (with tiny
training overrides appended to ``fit``).  So the page cannot drift from what works.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "write_an_encoder.md"
PLUGIN_PACKAGE = REPO / "examples" / "kpremia_plugin_example"

# Appended to the guide's `fit` commands (which choose the experiment): one short epoch.
TINY_FIT = (
    "data.days=40", "env.n_envs=8", "env.max_steps=100", "algo.n_steps=16", "algo.rollouts_per_epoch=1",
    "algo.update_epochs=2", "algo.n_minibatches=2", "algo.total_env_steps=256",
    "trainer.enable_progress_bar=false",
)

_MARKED_BLOCK = re.compile(r"<!-- (file|run): (\S+) -->\n```[^\n]*\n(.*?)```", re.DOTALL)
_ENV_ASSIGNMENT = re.compile(r"[A-Z_][A-Z0-9_]*=")


@dataclass(frozen=True)
class GuideCommand:
    """One shell command of the guide: leading ``NAME=value`` assignments and the argv."""

    env: dict[str, str]
    argv: list[str]

    def kpremia_args(self) -> list[str]:
        """The arguments after ``python -m kpremia``."""
        assert self.argv[:3] == ["python", "-m", "kpremia"], self.argv
        return self.argv[3:]


class Guide:
    """The marked code blocks of ``docs/write_an_encoder.md``."""

    def __init__(self, path: Path = GUIDE) -> None:
        self.text = path.read_text()
        self.blocks: dict[tuple[str, str], str] = {}
        for kind, label, body in _MARKED_BLOCK.findall(self.text):
            assert (kind, label) not in self.blocks, f"{kind} {label} is marked twice in the guide"
            self.blocks[kind, label] = body

    def files(self) -> dict[str, str]:
        """``{repository path: block text}`` for every ``file:`` block."""
        return {label: body for (kind, label), body in self.blocks.items() if kind == "file"}

    def commands(self, label: str) -> list[GuideCommand]:
        """The commands of the ``run: <label>`` block (continuation lines joined, comments dropped)."""
        body = self.blocks["run", label].replace("\\\n", " ")
        commands = []
        for line in body.splitlines():
            tokens = shlex.split(line, comments=True)
            if not tokens:
                continue
            n_env = next(i for i, t in enumerate(tokens) if not _ENV_ASSIGNMENT.match(t))
            env = dict(t.split("=", 1) for t in tokens[:n_env])
            commands.append(GuideCommand(env, tokens[n_env:]))
        return commands


def check_fit(proc: subprocess.CompletedProcess, encoder: str) -> Path:
    """Assert a `fit` succeeded with ``encoder``; return its run directory (the last stdout line)."""
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    assert (run_dir / "checkpoints" / "last.ckpt").is_file(), sorted(p.name for p in run_dir.rglob("*"))
    cfg = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    assert cfg["encoder"]["name"] == encoder
    return run_dir


def pip_install(package_dir: Path, target: Path) -> Path:
    """Install ``package_dir`` for real (wheel, dist-info, entry points) into the folder ``target``.

    ``--target`` keeps the shared environment untouched: a subprocess sees the
    distribution through ``PYTHONPATH=<target>``, and importlib.metadata finds its entry
    points there like in site-packages.  No index and no build isolation: nothing is fetched.
    The package is built from a copy so the build leaves nothing in the source tree.
    """
    pytest.importorskip("setuptools", reason="building the example plug-in needs setuptools")
    source = target.parent / f"{package_dir.name}-src"
    shutil.copytree(package_dir, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-cache-dir",
         "--no-index", "--no-deps", "--no-build-isolation", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"pip could not install {package_dir.name}:\n{proc.stdout}{proc.stderr}"
    return target


BROKEN_PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "kpremia-broken-plugin"
version = "0.1.0"

[project.entry-points."kpremia.plugins"]
broken_encoder = "kpremia_broken_plugin.encoder"

[project.entry-points."kpremia.configs"]
kpremia_broken_plugin = "kpremia_broken_plugin.configs"

[tool.setuptools]
packages = ["kpremia_broken_plugin", "kpremia_broken_plugin.configs"]
"""



"""Third-party plug-ins, installed for real: entry points ``kpremia.plugins`` and ``kpremia.configs``.

The example package (examples/kpremia_plugin_example/) is built and installed into a
temporary folder with pip; the CLI subprocess sees it through ``PYTHONPATH``, so kpremia
finds it exactly as it finds a package in site-packages (its dist-info entry points).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import PLUGIN_PACKAGE, REPO, TINY_FIT, Guide, check_fit


def _encoders_section(stdout: str) -> list[str]:
    """The lines of ``list``'s encoder section, e.g. ``my_tcn  (35,552 parameters)  Causal ...``."""
    return stdout.split("encoders:\n", 1)[1].split("\n\n", 1)[0].strip().splitlines()


def test_guide_installs_the_example_package(guide: Guide) -> None:
    pip = guide.commands("plugin")[0]
    assert pip.argv[:2] == ["pip", "install"]
    assert (REPO / pip.argv[2]).resolve() == PLUGIN_PACKAGE


def test_installed_plugin_is_listed(guide: Guide, kpremia, plugin_site: Path) -> None:
    (listing,) = [c for c in guide.commands("plugin") if c.argv[3:4] == ["list"]]
    proc = kpremia(*listing.kpremia_args(), env={"PYTHONPATH": str(plugin_site)}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in _encoders_section(proc.stdout) if line.split()[0] == "my_tcn")
    assert "parameters" in line and "Causal dilated" in line, line
    assert "WARNING" not in proc.stderr, proc.stderr


def test_without_the_plugin_my_tcn_is_unknown(kpremia) -> None:
    """The control: nothing but the installed distribution brings my_tcn in."""
    proc = kpremia("list", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "my_tcn" not in proc.stdout


@pytest.mark.slow  # one short PPO fit in a subprocess: ~15-70 s depending on the machine's load
def test_installed_plugin_trains(guide: Guide, kpremia, plugin_site: Path) -> None:
    """``encoder=my_tcn`` finds the plug-in's YAML (kpremia.configs) and its class (kpremia.plugins)."""
    (fit,) = [c for c in guide.commands("plugin") if c.argv[3:4] == ["fit"]]
    assert "encoder=my_tcn" in fit.argv
    proc = kpremia(*fit.kpremia_args(), *TINY_FIT, env={"PYTHONPATH": str(plugin_site)})
    run_dir = check_fit(proc, "my_tcn")
    assert "channels" in (run_dir / ".hydra" / "config.yaml").read_text()


def test_broken_plugin_is_skipped_with_a_warning(kpremia, plugin_site: Path, broken_plugin_site: Path) -> None:
    """A plug-in that raises on import is named in a warning; kpremia and the other plug-ins still work."""
    env = {"PYTHONPATH": f"{broken_plugin_site}:{plugin_site}"}

    listing = kpremia("list", env=env, timeout=300)
    assert listing.returncode == 0, listing.stderr
    assert any(line.split()[0] == "my_tcn" for line in _encoders_section(listing.stdout))
    warnings = [line for line in listing.stderr.splitlines() if line.startswith("WARNING")]
    assert any("broken_encoder" in w and "deliberately broken" in w for w in warnings), listing.stderr

    # Composing a config reads the `kpremia.configs` entry points: the broken one is skipped.
    composed = kpremia("fit", "--cfg", "job", "experiment=gru_attn_ppo", "encoder=my_tcn", env=env, timeout=300)
    assert composed.returncode == 0, composed.stderr
    assert "name: my_tcn" in composed.stdout
    warnings = [line for line in composed.stderr.splitlines() if line.startswith("WARNING")]
    assert any("kpremia_broken_plugin.configs" in w and "deliberately broken" in w for w in warnings), \
        composed.stderr


@pytest.mark.slow  # a short PPO fit and two validations in subprocesses
def test_a_plugin_checkpoint_names_what_to_install_and_loads_with_it(guide: Guide, kpremia, plugin_site: Path) -> None:
    """The checkpoint records its encoder's distribution: without it, one line saying what to pip install
    (exit 2, before torch loads the checkpoint); with it installed, no environment variable, it loads."""
    (fit,) = [c for c in guide.commands("plugin") if c.argv[3:4] == ["fit"]]
    with_plugin = {"PYTHONPATH": f"{plugin_site}:{REPO}"}
    run_dir = check_fit(kpremia(*fit.kpremia_args(), *TINY_FIT, env=with_plugin), "my_tcn")

    without = kpremia("validate", f"ckpt={run_dir}", env={"PYTHONPATH": str(REPO), "KPREMIA_PLUGINS": ""},
                      timeout=300)
    lines = [line for line in without.stderr.splitlines() if line.strip()]
    assert without.returncode == 2 and len(lines) == 1, without.stderr[-2000:]
    assert "needs the encoder 'my_tcn'" in lines[0]
    assert "pip install 'kpremia-plugin-example==0.1.0'" in lines[0] and "Traceback" not in without.stderr

    loaded = kpremia("validate", f"ckpt={run_dir}", "eval.plots=false", env=with_plugin, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert "policy" in loaded.stdout

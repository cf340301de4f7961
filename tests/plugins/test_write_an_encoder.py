"""docs/write_an_encoder.md works as written: its files are the example's, its commands run.

The example encoder ``my_tcn`` (examples/my_encoder/) is trained through the local-file
route (``KPREMIA_PLUGINS`` + ``hydra.searchpath``) and checked by the real contract test
(tests/encoders/test_contract.py), which picks it up because it is registered.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kpremia.app.config_checks import validate_config
from kpremia.core.registry import ENCODERS
from kpremia.core.spec import ObsSpec

from .helpers import PLUGIN_PACKAGE, REPO, TINY_FIT, Guide, check_fit

EXAMPLE = REPO / "examples" / "my_encoder"


def test_guide_code_blocks_are_the_example_files(guide: Guide) -> None:
    files = guide.files()
    assert {
        "examples/my_encoder/my_tcn.py",
        "examples/my_encoder/configs/encoder/my_tcn.yaml",
        "examples/kpremia_plugin_example/pyproject.toml",
    } <= set(files)
    for path, block in files.items():
        assert block == (REPO / path).read_text(), f"the guide's copy of {path} differs from the file"


def test_plugin_package_ships_the_example_unchanged() -> None:
    """The guide says the package holds the files of steps 1 and 2 unchanged: one copy, linked into the package."""
    package = PLUGIN_PACKAGE / "kpremia_plugin_example"
    for inside, example in ((package / "my_tcn.py", EXAMPLE / "my_tcn.py"),
                            (package / "configs" / "encoder" / "my_tcn.yaml",
                             EXAMPLE / "configs" / "encoder" / "my_tcn.yaml")):
        assert inside.is_symlink(), f"{inside} should link to {example}, not copy it"
        assert inside.resolve() == example.resolve()


def test_example_passes_the_contract_test(guide: Guide) -> None:
    """The guide's check command: the shared contract test, with my_tcn registered through KPREMIA_PLUGINS."""
    (command,) = guide.commands("contract")
    assert command.argv[:3] == ["python", "-m", "pytest"]
    proc = subprocess.run(
        [sys.executable, *command.argv[1:], "-p", "no:cacheprovider"], capture_output=True, text=True,
        timeout=600, cwd=REPO, env={**os.environ, "PYTHONWARNINGS": "ignore", **command.env},
    )
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary


@pytest.mark.slow  # one short PPO fit in a subprocess: ~15-70 s depending on the machine's load
def test_local_file_route_trains(guide: Guide, kpremia, tmp_path: Path) -> None:
    """The guide's local command, from a directory laid out like the repository root."""
    shutil.copytree(EXAMPLE, tmp_path / "examples" / "my_encoder", ignore=shutil.ignore_patterns("__pycache__"))
    (command,) = guide.commands("local")
    args = command.kpremia_args()
    assert args[0] == "fit" and "encoder=my_tcn" in args
    check_fit(kpremia(*args, *TINY_FIT, env=command.env, cwd=tmp_path), "my_tcn")


@pytest.fixture
def my_tcn_registered(monkeypatch: pytest.MonkeyPatch) -> type:
    """Register the example encoder in this process only for the test (the registry is restored after)."""
    ENCODERS.names()  # load the built-ins and entry points first
    monkeypatch.setattr(ENCODERS, "_entries", dict(ENCODERS._entries))
    spec = importlib.util.spec_from_file_location("_kpremia_example_my_tcn", EXAMPLE / "my_tcn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TCNEncoder


def test_encoder_without_yaml_through_a_renamed_config(guide: Guide, compose_cfg, my_tcn_registered) -> None:
    """``encoder=lstm encoder.name=my_tcn +encoder.channels=16``: the lstm keys are TCNEncoder kwargs."""
    (command,) = guide.commands("no-yaml")
    args = command.kpremia_args()
    assert args[0] == "fit" and command.env["KPREMIA_PLUGINS"] == "my_tcn"
    cfg = compose_cfg(*args[1:])
    validate_config(cfg)
    encoder = ENCODERS.build(cfg["encoder"], ObsSpec.default())
    assert isinstance(encoder, my_tcn_registered)
    assert encoder.tcns["price_bars"].lift.out_channels == 16
    assert encoder.out_dim == cfg["encoder"]["hidden_dim"]


def test_example_config_keys_are_init_kwargs(compose_cfg, my_tcn_registered) -> None:
    """Every key of the example YAML reaches __init__, and the YAML's values are its defaults."""
    cfg = compose_cfg("encoder=my_tcn", f"hydra.searchpath=[file://{EXAMPLE / 'configs'}]")["encoder"]
    params = inspect.signature(my_tcn_registered).parameters
    assert {k: v for k, v in cfg.items() if k != "name"} == {
        k: p.default for k, p in params.items() if k != "spec"}


def test_unimportable_env_plugin_is_a_one_line_error(kpremia) -> None:
    proc = kpremia("list", env={"KPREMIA_PLUGINS": "no_such_encoder_module"}, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "KPREMIA_PLUGINS" in lines[0] and "no_such_encoder_module" in lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr

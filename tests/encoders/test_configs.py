"""Every YAML in ``configs/encoder/`` builds, and every built-in encoder has one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import kpremia
import kpremia.encoders  # noqa: F401  (registers the built-in encoders)
from kpremia.core.registry import ENCODERS
from kpremia.core.spec import ObsSpec

CONFIG_DIR = Path(kpremia.__file__).parent / "configs" / "encoder"
YAMLS = sorted(CONFIG_DIR.glob("*.yaml"))


def test_config_dir_exists() -> None:
    assert YAMLS, f"no encoder configs in {CONFIG_DIR}"


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_yaml_builds(path: Path) -> None:
    cfg = OmegaConf.load(path)
    assert cfg.name == path.stem, "an encoder config file is named after its encoder"
    spec = ObsSpec.default()
    # As Hydra code usually passes it (a plain container) and as a raw DictConfig.
    for mapping in (OmegaConf.to_container(cfg, resolve=True), cfg):
        encoder = ENCODERS.build(mapping, spec)
        out = encoder.eval()(spec.sample(3))
        assert out.shape == (3, encoder.out_dim)
        assert torch.isfinite(out).all()


def test_every_builtin_has_a_yaml() -> None:
    stems = {p.stem for p in YAMLS}
    builtins = [n for n in ENCODERS.names() if ENCODERS.get(n).__module__.startswith("kpremia.encoders.")]
    missing = [n for n in builtins if n not in stems]
    assert not missing, f"add configs/encoder/<name>.yaml for: {missing}"

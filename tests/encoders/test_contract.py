"""The encoder contract, checked for every registered encoder (built-ins and plug-ins alike).

Parametrised over ``ENCODERS.names()`` at collection time, so a new encoder is covered
by registering it.  Each check builds the encoder with its default settings.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import kpremia.encoders  # noqa: F401  (registers the built-in encoders)
from kpremia.core.registry import ENCODERS
from kpremia.core.spec import ObsSpec

NAMES = ENCODERS.names()

SPECS = {
    "default": ObsSpec.default(),
    "short": ObsSpec.default(window_bars=7, window_1d=3, window_premium=5, n_features=5),
    "daily_longest": ObsSpec.default(window_bars=4, window_1d=12, window_premium=12, n_account=2, n_features=1),
    "no_features": ObsSpec.default(n_features=0),
}


def build(name: str, spec: ObsSpec, **cfg) -> nn.Module:
    torch.manual_seed(0)
    return ENCODERS.build(name, spec, **cfg)


def sample(spec: ObsSpec, batch: int, seed: int = 1) -> dict[str, torch.Tensor]:
    return spec.sample(batch, generator=torch.Generator().manual_seed(seed))


def assert_grads_everywhere(encoder: nn.Module, obs: dict[str, torch.Tensor]) -> None:
    encoder.train()
    encoder.zero_grad()
    encoder(obs).sum().backward()
    for pname, p in encoder.named_parameters():
        assert p.grad is not None, f"no gradient reaches {pname}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient in {pname}"
        assert p.grad.abs().sum() > 0, f"gradient of {pname} is all zero"


def test_builtins_registered() -> None:
    assert {"gru_attn", "lstm", "dnn_lstm", "mlp"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("spec_name", list(SPECS))
@pytest.mark.parametrize("batch", [1, 5])
def test_output_shape_and_dtype(name: str, spec_name: str, batch: int) -> None:
    spec = SPECS[spec_name]
    encoder = build(name, spec)
    assert isinstance(encoder.out_dim, int) and encoder.out_dim > 0
    for mode in (True, False):
        encoder.train(mode)
        out = encoder(sample(spec, batch))
        assert out.shape == (batch, encoder.out_dim)
        assert out.dtype == torch.float32


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("spec_name", list(SPECS))
def test_gradients_reach_every_parameter(name: str, spec_name: str) -> None:
    spec = SPECS[spec_name]
    assert_grads_everywhere(build(name, spec), sample(spec, 16))


@pytest.mark.parametrize("name", NAMES)
def test_eval_mode_is_deterministic(name: str) -> None:
    spec = SPECS["default"]
    encoder = build(name, spec).eval()
    obs = sample(spec, 8)
    torch.testing.assert_close(encoder(obs), encoder(obs), rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("spec_name", list(SPECS))
def test_rows_independent_of_batch(name: str, spec_name: str) -> None:
    """Row i of a batch equals the forward of row i alone: no batch statistics (acting == update)."""
    spec = SPECS[spec_name]
    encoder = build(name, spec).eval()
    obs = sample(spec, 8)
    with torch.inference_mode():
        full = encoder(obs)
        for i in range(8):
            row = encoder({k: v[i : i + 1] for k, v in obs.items()})
            torch.testing.assert_close(row[0], full[i], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_no_batch_norm(name: str) -> None:
    """BatchNorm's train-mode output depends on the batch: it breaks the PPO ratio and B=1 acting."""
    encoder = build(name, SPECS["default"])
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in encoder.modules())


@pytest.mark.parametrize("name", NAMES)
def test_single_bar_under_inference_mode(name: str) -> None:
    spec = SPECS["default"]
    encoder = build(name, spec).eval()
    with torch.inference_mode():
        out = encoder(sample(spec, 1))
    assert out.shape == (1, encoder.out_dim)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("spec_name", list(SPECS))
def test_zero_input_is_finite(name: str, spec_name: str) -> None:
    spec = SPECS[spec_name]
    encoder = build(name, spec)
    obs = spec.zeros(4)
    for mode in (True, False):
        encoder.train(mode)
        assert torch.isfinite(encoder(obs)).all()
    encoder.zero_grad()
    encoder(obs).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", NAMES)
def test_param_count(name: str) -> None:
    expected = sum(p.numel() for p in build(name, SPECS["default"]).parameters())
    assert kpremia.encoders.param_count(name) == expected > 0
    assert kpremia.encoders.param_count(name, SPECS["short"]) > 0

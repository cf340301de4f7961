"""The shared blocks and the encoders' non-default options."""

from __future__ import annotations

import pytest
import torch

import kpremia.encoders  # noqa: F401  (registers the built-in encoders)
from kpremia.core.errors import UserError
from kpremia.core.registry import ENCODERS
from kpremia.core.spec import ObsSpec
from kpremia.encoders.common import AttentionPool, make_activation, right_align
from kpremia.encoders.dnn_lstm import DNNLSTMEncoder

from .test_contract import assert_grads_everywhere


def test_right_align_pads_the_old_end() -> None:
    a = torch.tensor([[1.0, 2.0, 3.0]])
    b = torch.tensor([[4.0, 5.0]])
    out = right_align([a, b], 3)
    assert out.shape == (1, 3, 2)
    torch.testing.assert_close(out[0], torch.tensor([[1.0, 0.0], [2.0, 4.0], [3.0, 5.0]]))


def test_attention_pool_of_a_constant_sequence_is_that_constant() -> None:
    pool = AttentionPool(4)
    h = torch.randn(2, 1, 4).expand(2, 6, 4)
    torch.testing.assert_close(pool(h), h[:, 0])


def test_unknown_activation_names_the_choices() -> None:
    with pytest.raises(UserError, match="relu"):
        make_activation("sigmoidish")


def test_dnn_lstm_masks_only_shorter_series() -> None:
    encoder = DNNLSTMEncoder(ObsSpec.default(window_bars=15, window_1d=10, window_premium=15))
    assert encoder.length == 15
    assert encoder.mask.shape == (15, 1)  # only price_1d is padded
    torch.testing.assert_close(encoder.mask[:, 0], (torch.arange(15) >= 5).float())
    assert DNNLSTMEncoder(ObsSpec.default(window_bars=8, window_1d=8, window_premium=8)).mask.shape == (8, 0)


def test_dnn_lstm_context_broadcast_equals_per_step_concatenation() -> None:
    """Adding ``W_c @ context`` to every step is the reference's per-step concatenation."""
    spec = ObsSpec.default(window_bars=6, window_1d=4, window_premium=6, n_features=3)
    encoder = DNNLSTMEncoder(spec, dense_sizes=[8], lstm_sizes=[4], dropout=0.0).eval()
    obs = spec.sample(2)
    x = right_align([obs["price_bars"], obs["price_1d"], obs["premium"]], 6)
    x = torch.cat([x, encoder.mask.expand(2, -1, -1)], dim=-1)
    context = torch.cat([obs["account"], obs["features"]], dim=-1).unsqueeze(1).expand(-1, 6, -1)
    weight = torch.cat([encoder.step_in.weight, encoder.context_in.weight], dim=1)
    h = torch.nn.functional.linear(torch.cat([x, context], dim=-1), weight, encoder.step_in.bias)
    h, _ = encoder.lstms[0](encoder.dense(h))
    torch.testing.assert_close(encoder(obs), h[:, -1])


@pytest.mark.parametrize(
    ("name", "cfg"),
    [
        ("gru_attn", {"attention": False}),
        ("gru_attn", {"num_layers": 2, "hidden_dim": 16}),
        ("lstm", {"num_layers": 2, "hidden_dim": 16}),
        ("dnn_lstm", {"layer_norm": False, "activation": "tanh"}),
        ("dnn_lstm", {"dense_sizes": [32], "lstm_sizes": [16, 8, 4]}),
        ("mlp", {"layer_norm": True, "activation": "relu", "hidden_sizes": [32, 16, 8]}),
    ],
)
def test_options(name: str, cfg: dict) -> None:
    spec = ObsSpec.default(window_bars=7, window_1d=3, window_premium=5, n_features=5)
    torch.manual_seed(0)
    encoder = ENCODERS.build({"name": name, **cfg}, spec)
    out = encoder(spec.sample(4))
    assert out.shape == (4, encoder.out_dim)
    assert_grads_everywhere(encoder, spec.sample(8))


@pytest.mark.parametrize(("name", "cfg"), [("mlp", {"hidden_sizes": []}), ("dnn_lstm", {"lstm_sizes": []})])
def test_empty_sizes_are_a_user_error(name: str, cfg: dict) -> None:
    with pytest.raises(UserError):
        ENCODERS.build({"name": name, **cfg}, ObsSpec.default())

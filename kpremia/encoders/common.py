"""Small blocks shared by the encoders.

* :func:`make_activation` -- an activation module from its config name.
* :func:`flat_size` / :func:`flatten_obs` -- sizes and flattening from an :class:`ObsSpec`.
* :class:`AttentionPool` -- additive attention pooling over the time axis of an RNN output.
* :func:`right_align` -- stack windows of different lengths on one time axis.
* :class:`ContextFusion` -- the "dense account + dense features + concat + fuse" tail that
  ``gru_attn`` and ``lstm`` share.

Nothing here normalises over the batch: every block computes row ``i`` of its output from
row ``i`` of its input only, so acting on one bar and updating on a minibatch see the same
function (see ``dnn_lstm`` for why that matters for PPO).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kpremia.core.errors import UserError
from kpremia.core.spec import ACCOUNT, FEATURES, SERIES_KEYS, ObsSpec

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
}


def make_activation(name: str) -> nn.Module:
    """The activation called ``name``; a :class:`UserError` naming the choices otherwise."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise UserError(
            f"unknown activation {name!r}; set encoder.activation to one of: {', '.join(sorted(ACTIVATIONS))}"
        ) from None


def flat_size(spec: ObsSpec, key: str) -> int:
    """Number of scalars per env under ``key``."""
    return math.prod(spec[key])


def flatten_obs(obs: Mapping[str, Tensor], keys: Sequence[str]) -> Tensor:
    """``[B, sum of sizes]``: the tensors under ``keys`` flattened and concatenated in that order."""
    return torch.cat([obs[k].flatten(1) for k in keys], dim=-1)


def right_align(windows: Sequence[Tensor], length: int) -> Tensor:
    """Stack ``[B, W_s]`` windows into ``[B, length, S]``, newest value at the last step.

    Windows shorter than ``length`` are zero-padded at the *old* end, so step ``length - 1``
    always holds every series' latest value and an RNN's last hidden state has just read
    real data.  Pair it with a mask channel where windows differ in length.
    """
    padded = [w if w.shape[1] == length else F.pad(w, (length - w.shape[1], 0)) for w in windows]
    return torch.stack(padded, dim=-1)


class AttentionPool(nn.Module):
    """Additive (Bahdanau-style) attention pooling over time: ``[B, T, H] -> [B, H]``.

    ``score_t = v . tanh(W h_t + b)``, ``alpha = softmax_t(score)``, ``out = sum_t alpha_t h_t``.
    The score has no output bias: softmax is shift invariant, so such a bias would never
    receive a gradient.
    """

    def __init__(self, dim: int, attn_dim: int | None = None) -> None:
        super().__init__()
        attn_dim = attn_dim or dim
        self.proj = nn.Linear(dim, attn_dim)
        self.score = nn.Linear(attn_dim, 1, bias=False)

    def forward(self, h: Tensor) -> Tensor:
        alpha = torch.softmax(self.score(torch.tanh(self.proj(h))), dim=1)  # [B, T, 1]
        return (alpha * h).sum(dim=1)


class ContextFusion(nn.Module):
    """Fuse per-series embeddings with the account state and the features.

    ``account -> Linear + act``, ``features -> Linear + act`` (each to ``context_dim``),
    concatenated after the series embedding, then ``Linear + act + Dropout`` to ``out_dim``.
    The account (3 numbers) and the features (a different scale and meaning from the
    price windows) get their own small dense layer so the fusion layer sees comparable
    learned codes rather than raw inputs -- as in the reference GRU+Attention design.

    Three options, each a measured fix for a recurrent encoder whose output barely varied
    across states at initialisation (docs/results.md):

    * ``context_activation``: the branches' activation (default: ``activation``).  With
      ReLU over the raw account inputs (cash share, USDT weight, episode return: not
      normalised) about a quarter of the account units were dead on whole batches;
      ``tanh`` has no dead units.
    * ``norm``: LayerNorm on the fused output, so the heads see features of unit scale
      whatever the recurrent layers' output scale.
    * ``skip``: the current bar's inputs -- the last value of every series window, the
      features and the account -- appended to the output unchanged, so the heads can
      read the premium level linearly from the first update (``out_dim`` grows by their
      count; :attr:`skip_dim`).
    """

    def __init__(
        self,
        spec: ObsSpec,
        series_dim: int,
        out_dim: int,
        context_dim: int,
        dropout: float = 0.0,
        activation: str = "relu",
        context_activation: str | None = None,
        norm: bool = False,
        skip: bool = False,
    ) -> None:
        super().__init__()
        # A context key with no columns (e.g. features switched off) gets no branch.
        self.context_keys = tuple(k for k in (ACCOUNT, FEATURES) if k in spec.shapes and flat_size(spec, k) > 0)
        self.context = nn.ModuleDict({
            k: nn.Sequential(nn.Linear(flat_size(spec, k), context_dim),
                             make_activation(context_activation or activation))
            for k in self.context_keys
        })
        self.fuse = nn.Sequential(
            nn.Linear(series_dim + len(self.context_keys) * context_dim, out_dim),
            make_activation(activation),
            nn.Dropout(dropout),
        )
        self.norm = nn.LayerNorm(out_dim) if norm else None
        self.series_keys = tuple(k for k in SERIES_KEYS if k in spec.shapes)
        self.skip = bool(skip)
        self.skip_dim = (len(self.series_keys) + sum(flat_size(spec, k) for k in self.context_keys)) if skip else 0
        self.out_dim = out_dim + self.skip_dim

    def forward(self, series_embedding: Tensor, obs: Mapping[str, Tensor]) -> Tensor:
        parts = [series_embedding] + [self.context[k](obs[k].flatten(1)) for k in self.context_keys]
        out = self.fuse(torch.cat(parts, dim=-1))
        if self.norm is not None:
            out = self.norm(out)
        if self.skip:
            now = [obs[k][:, -1:] for k in self.series_keys] + [obs[k].flatten(1) for k in self.context_keys]
            out = torch.cat([out, *now], dim=-1)
        return out

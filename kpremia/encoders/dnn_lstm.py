"""``dnn_lstm``: the reference hybrid DNN-LSTM -- per-step dense layers, then stacked LSTMs.

Reference layout: at every time step a dense feature extractor (256 -> 128, dropout 0.1)
reads that step's inputs; an LSTM(64) -> LSTM(32) runs over the extracted sequence; the last
hidden state of the top LSTM is the encoding (``out_dim = 32``).

**How the series share one time axis.**  The three windows have different lengths and
bar sizes (per-bar closes, completed daily closes, completed-day premiums).  They are aligned
by recency, not by wall clock: with ``L = max(window lengths)``, step ``L - 1`` holds every
series' latest value, step ``L - 1 - k`` its k-th previous value, and a shorter window is
zero-padded at the old end (:func:`~kpremia.encoders.common.right_align`) with a 0/1 mask
channel per padded series so the network can tell padding from a real zero.  Resampling
to a common clock was rejected: daily series on the bar clock would need 96 steps per
day at 15m bars (L = 960 for ten days), and the bar window on the daily clock collapses into less than
one step.  The account state and the features are per bar, not per step: they are
broadcast onto every step as extra inputs of the first dense layer, computed once per row
as ``W_c @ context`` and added to every step (the same function as concatenating them to
each step, without materialising ``L`` copies).  So the LSTM reads every step in the
context of the current position and market state, and nothing is fused after it.

**LayerNorm, not BatchNorm.**  The reference normalised the dense layers with BatchNorm.
BatchNorm's training-mode output for a row depends on the other rows of its batch, and its
eval-mode output on running statistics that lag the weights: a PPO rollout (B = n_envs)
and the update (minibatches) would then evaluate different functions, so the probability
ratio is off from the first minibatch; and single-bar acting (B = 1) has no batch to take
statistics from, so it must use running statistics the update never used.  LayerNorm normalises each step's features on their own, so a row's
output is the same whatever batch it sits in, in training and in eval.  ``layer_norm=False``
drops normalisation altogether.

Dropout (``dropout``) follows every dense layer and the output of each LSTM but the last.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from kpremia.core.errors import UserError
from kpremia.core.registry import ENCODERS
from kpremia.core.spec import ACCOUNT, FEATURES, SERIES_KEYS, ObsSpec
from kpremia.encoders.common import flat_size, make_activation, right_align


def _post_linear(size: int, layer_norm: bool, activation: str, dropout: float) -> nn.Sequential:
    """What follows each dense layer: ``[LayerNorm] -> activation -> Dropout``."""
    layers: list[nn.Module] = [nn.LayerNorm(size)] if layer_norm else []
    return nn.Sequential(*layers, make_activation(activation), nn.Dropout(dropout))


@ENCODERS.register("dnn_lstm")
class DNNLSTMEncoder(nn.Module):
    """Recency-aligned series -> per-step dense (256, 128) -> LSTM(64) -> LSTM(32) -> last hidden."""

    def __init__(
        self,
        spec: ObsSpec,
        dense_sizes: Sequence[int] = (256, 128),
        lstm_sizes: Sequence[int] = (64, 32),
        dropout: float = 0.1,
        layer_norm: bool = True,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        dense_sizes = [int(s) for s in dense_sizes]
        lstm_sizes = [int(s) for s in lstm_sizes]
        if not dense_sizes or not lstm_sizes:
            raise UserError("dnn_lstm needs at least one dense and one LSTM size; "
                            "set encoder.dense_sizes and encoder.lstm_sizes, e.g. [256, 128] and [64, 32]")
        self.series_keys = SERIES_KEYS
        windows = [flat_size(spec, k) for k in self.series_keys]
        self.length = max(windows)
        # One mask channel per series shorter than L: 1 on real steps, 0 on padding.
        padded = [w for w in windows if w < self.length]
        mask = torch.stack([(torch.arange(self.length) >= self.length - w).float() for w in padded], dim=-1) \
            if padded else torch.zeros(self.length, 0)
        self.register_buffer("mask", mask, persistent=False)  # [L, n_masks]

        # First dense layer, split: per-step inputs (series + masks) and the per-row context.
        self.step_in = nn.Linear(len(windows) + mask.shape[1], dense_sizes[0])
        self.context_in = nn.Linear(flat_size(spec, ACCOUNT) + flat_size(spec, FEATURES), dense_sizes[0], bias=False)
        dense: list[nn.Module] = [_post_linear(dense_sizes[0], layer_norm, activation, dropout)]
        for size_in, size_out in zip(dense_sizes, dense_sizes[1:]):
            dense += [nn.Linear(size_in, size_out), _post_linear(size_out, layer_norm, activation, dropout)]
        self.dense = nn.Sequential(*dense)

        in_sizes = [dense_sizes[-1], *lstm_sizes[:-1]]
        self.lstms = nn.ModuleList(nn.LSTM(i, h, batch_first=True) for i, h in zip(in_sizes, lstm_sizes))
        self.lstm_dropout = nn.Dropout(dropout)
        self.out_dim = lstm_sizes[-1]

    def forward(self, obs: Mapping[str, Tensor]) -> Tensor:
        x = right_align([obs[k] for k in self.series_keys], self.length)  # [B, L, S]
        if self.mask.shape[1]:
            x = torch.cat([x, self.mask.expand(x.shape[0], -1, -1)], dim=-1)
        context = torch.cat([obs[ACCOUNT].flatten(1), obs[FEATURES].flatten(1)], dim=-1)
        h = self.dense(self.step_in(x) + self.context_in(context).unsqueeze(1))  # [B, L, dense[-1]]
        for i, lstm in enumerate(self.lstms):
            if i:
                h = self.lstm_dropout(h)
            h, _ = lstm(h)
        return h[:, -1]

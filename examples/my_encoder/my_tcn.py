"""``my_tcn``: a small temporal convolutional network (TCN) per price series.

The worked example of ``docs/write_an_encoder.md``.  Each series window (``price_bars``,
``price_1d``, ``premium``) goes through its own stack of dilated 1D convolutions, as in
Bai, Kolter and Koltun (2018), "An Empirical Evaluation of Generic Convolutional and
Recurrent Networks for Sequence Modeling".  The three window summaries, the account
state and the features are concatenated and mixed by one dense layer to
``out_dim = hidden_dim``.

Why convolutions: every step of a window is computed in parallel, with no recurrence,
so the encoder stays cheap at the large minibatches of a PPO update.  Why causal padding
(zeros on the old side only) and dilations 1, 2, 4, ...: the newest step's receptive
field grows to ``1 + (kernel_size - 1) * (2**num_layers - 1)`` bars (15 with the
defaults, the default 15m window), so that one step summarises the window and is the one
kept.  No BatchNorm: a row's output must not depend on the rest of its batch, or acting
on one bar and updating on a minibatch would see different functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kpremia.core.errors import UserError
from kpremia.core.registry import ENCODERS
from kpremia.core.spec import ACCOUNT, FEATURES, SERIES_KEYS, ObsSpec


class CausalConvBlock(nn.Module):
    """``x + dropout(relu(conv(x)))``: a dilated convolution that reads only older steps."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.left_pad = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, T] -> [B, C, T]``; the residual keeps shallow paths open for the gradient."""
        return x + self.dropout(F.relu(self.conv(F.pad(x, (self.left_pad, 0)))))


class SeriesTCN(nn.Module):
    """One window ``[B, T]`` -> ``[B, channels]``: lift to channels, dilated blocks, newest step."""

    def __init__(self, channels: int, kernel_size: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.lift = nn.Conv1d(1, channels, kernel_size=1)
        self.blocks = nn.Sequential(
            *(CausalConvBlock(channels, kernel_size, 2**i, dropout) for i in range(num_layers))
        )

    def forward(self, window: Tensor) -> Tensor:
        return self.blocks(self.lift(window.unsqueeze(1)))[:, :, -1]


@ENCODERS.register("my_tcn")
class TCNEncoder(nn.Module):
    """Causal dilated 1D convolutions per series, fused with account and features."""

    def __init__(
        self,
        spec: ObsSpec,
        channels: int = 32,
        kernel_size: int = 3,
        num_layers: int = 3,
        hidden_dim: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if kernel_size < 1 or num_layers < 1:
            raise UserError("encoder.kernel_size and encoder.num_layers must be >= 1; fix the override")
        self.series_keys = tuple(k for k in SERIES_KEYS if k in spec.shapes)
        self.context_keys = tuple(k for k in (ACCOUNT, FEATURES) if k in spec.shapes)
        self.tcns = nn.ModuleDict(
            {k: SeriesTCN(channels, kernel_size, num_layers, dropout) for k in self.series_keys}
        )
        # Account and features enter the mixing layer as they are: features are z-scored on the
        # train split, the account is of order one by construction (KRW and USDT weights, the
        # episode's log return), and a layer for a zero-width feature vector would hold no weights.
        context_dim = sum(math.prod(spec[k]) for k in self.context_keys)
        self.mix = nn.Sequential(
            nn.Linear(len(self.series_keys) * channels + context_dim, hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.out_dim = hidden_dim

    def forward(self, obs: Mapping[str, Tensor]) -> Tensor:
        parts = [self.tcns[k](obs[k]) for k in self.series_keys]
        parts += [obs[k].flatten(1) for k in self.context_keys]
        return self.mix(torch.cat(parts, dim=-1))

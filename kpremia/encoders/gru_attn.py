"""``gru_attn``: one GRU with attention pooling per series, fused with account and features.

This is the reference design's GRU+Attention model.  Each of the three windows -- 15m
closes, completed daily closes, completed-day premiums -- is read as a sequence
``[B, W, 1]`` by its own GRU; attention pooling over the GRU's outputs (or, with
``attention=False``, its last hidden state) gives one ``hidden_dim`` vector per series.
The account state and the features get a dense encoding each; everything is concatenated
and fused by ``Linear + ReLU + Dropout`` to ``out_dim = hidden_dim``.

Why one GRU *module* per series rather than one shared GRU over a stacked ``[3B, L, 1]``
batch: the windows differ in length (15 / 10 / 10 by default), so a shared call must pad
them to a common length and add series-id and mask channels, which costs more work than
it saves once the batch is large.  Measured on 2 CPU cores (torch 2.13, hidden 64,
inference mode): three GRU calls take about 0.43 ms at B=1 vs 0.30 ms for one padded
shared call, but about 76 ms vs 150 ms at B=4096.  Training throughput is what the
research loop waits on; 0.1 ms per 15-minute bar is invisible to the live runner.  The
separate modules also keep the reference design's per-series weights (a 15m and a daily
series have different dynamics).

Dropout: ``dropout`` applies after the fusion layer (and between stacked GRU layers when
``num_layers > 1``); acting is in eval mode, see the algorithm for how rollouts treat it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from kpremia.encoders.common import AttentionPool, ContextFusion
from kpremia.envs.spec import SERIES_KEYS, ObsSpec
from kpremia.registry import ENCODERS


@ENCODERS.register("gru_attn")
class GRUAttentionEncoder(nn.Module):
    """Per-series GRU + attention pooling, dense account / features, fused to ``hidden_dim``."""

    def __init__(
        self,
        spec: ObsSpec,
        hidden_dim: int = 64,
        num_layers: int = 1,
        dropout: float = 0.1,
        attention: bool = True,
    ) -> None:
        super().__init__()
        self.series_keys = SERIES_KEYS
        self.rnns = nn.ModuleList(
            nn.GRU(1, hidden_dim, num_layers=num_layers, batch_first=True,
                   dropout=dropout if num_layers > 1 else 0.0)
            for _ in self.series_keys
        )
        self.pools = nn.ModuleList(AttentionPool(hidden_dim) for _ in self.series_keys) if attention else None
        self.fusion = ContextFusion(spec, len(self.series_keys) * hidden_dim, hidden_dim,
                                    context_dim=hidden_dim, dropout=dropout)
        self.out_dim = hidden_dim

    def forward(self, obs: Mapping[str, Tensor]) -> Tensor:
        embeddings = []
        for i, key in enumerate(self.series_keys):
            h, _ = self.rnns[i](obs[key].unsqueeze(-1))  # [B, W, hidden]
            embeddings.append(self.pools[i](h) if self.pools is not None else h[:, -1])
        return self.fusion(torch.cat(embeddings, dim=-1), obs)

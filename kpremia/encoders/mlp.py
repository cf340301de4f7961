"""``mlp``: every observation key flattened and concatenated, through an MLP.

The reference point for the recurrent encoders (SB3's ``FlattenExtractor`` + ``MlpExtractor``):
no notion of time, so it shows what the sequence models add.  Layers are
``Linear [-> LayerNorm] -> activation``; ``out_dim`` is the last hidden size.  tanh is the
default, as in CleanRL's and SB3's PPO policies.  LayerNorm (not BatchNorm) so that a row's
output never depends on the rest of its batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from kpremia.core.errors import UserError
from kpremia.core.registry import ENCODERS
from kpremia.core.spec import ObsSpec
from kpremia.encoders.common import flat_size, flatten_obs, make_activation


@ENCODERS.register("mlp")
class MLPEncoder(nn.Module):
    """Flattened observation -> ``hidden_sizes`` MLP."""

    def __init__(
        self,
        spec: ObsSpec,
        hidden_sizes: Sequence[int] = (128, 128),
        activation: str = "tanh",
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        hidden_sizes = [int(h) for h in hidden_sizes]
        if not hidden_sizes:
            raise UserError("encoder.hidden_sizes is empty; give the mlp encoder at least one layer, e.g. [128, 128]")
        self.keys = tuple(spec.keys())
        layers: list[nn.Module] = []
        in_dim = sum(flat_size(spec, k) for k in self.keys)
        for size in hidden_sizes:
            layers.append(nn.Linear(in_dim, size))
            if layer_norm:
                layers.append(nn.LayerNorm(size))
            layers.append(make_activation(activation))
            in_dim = size
        self.net = nn.Sequential(*layers)
        self.out_dim = hidden_sizes[-1]

    def forward(self, obs: Mapping[str, Tensor]) -> Tensor:
        return self.net(flatten_obs(obs, self.keys))

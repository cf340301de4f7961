"""Observation encoders (registry ``ENCODERS``), one module per plug-in.

Importing this package registers the built-in encoders ``gru_attn``, ``lstm``,
``dnn_lstm`` and ``mlp``.  Each is an ``nn.Module`` with ``__init__(spec, **cfg)``,
``out_dim`` and ``forward(obs) -> Tensor[B, out_dim]``; heads live with the algorithm.
A new encoder is one file with a decorated module (import it here) plus one YAML in
``configs/encoder/``.
"""

from __future__ import annotations

from kpremia.encoders import dnn_lstm, gru_attn, lstm, mlp  # noqa: F401  (registers the encoders)
from kpremia.spec import ObsSpec
from kpremia.registry import ENCODERS


def param_count(name: str, spec: ObsSpec | None = None) -> int:
    """Number of parameters of encoder ``name`` built with default settings for ``spec``.

    ``spec`` defaults to :meth:`ObsSpec.default`; used by the CLI's ``list`` command.
    """
    encoder = ENCODERS.build(name, spec if spec is not None else ObsSpec.default())
    return sum(p.numel() for p in encoder.parameters())


__all__ = ["param_count"]

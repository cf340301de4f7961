"""trainer.onednn_update=false runs gradient updates with oneDNN off and leaves acting on it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kpremia.run import training

from .test_dqn_training import TINY as DQN_TINY
from .test_ppo_training import TINY as PPO_TINY


@pytest.fixture
def forward_log():
    """Every LSTM / Linear forward during the test: (grad mode, inference mode, oneDNN enabled)."""
    calls: list[tuple[bool, bool, bool]] = []

    def hook(module: nn.Module, args: tuple) -> None:
        if isinstance(module, (nn.LSTM, nn.Linear)):
            calls.append((torch.is_grad_enabled(), torch.is_inference_mode_enabled(),
                          torch.backends.mkldnn.enabled))

    handle = nn.modules.module.register_module_forward_pre_hook(hook)
    yield calls
    handle.remove()


@pytest.mark.parametrize("tiny", [[*PPO_TINY, "encoder=lstm", "encoder.hidden_dim=8"], DQN_TINY],
                         ids=["ppo_lstm", "dqn_mlp"])
@pytest.mark.parametrize("onednn_update", [True, False])
def test_update_runs_with_onednn_as_configured(compose_cfg, tmp_path, forward_log, tiny, onednn_update) -> None:
    assert torch.backends.mkldnn.enabled
    training.fit(compose_cfg(*tiny, f"trainer.onednn_update={onednn_update}"), tmp_path / "run")
    updates = {on for grad, _, on in forward_log if grad}
    acting = {on for _, inference, on in forward_log if inference}
    assert updates == {onednn_update}  # every forward that builds a graph is an update
    assert acting == {True}  # rollouts and validation (inference mode) keep oneDNN
    assert torch.backends.mkldnn.enabled  # restored after the update

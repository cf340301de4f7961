"""A real PPO module and a stream of real transitions from the simulator, for the online-learning tests."""

from __future__ import annotations

import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from kpremia.envs.experiment import load_market
from kpremia.eval.backtest import make_sequential_env
from kpremia.live.learning.online_ppo import Transition, behaviour_logprob
from kpremia.run.checkpoint import build_module

TINY = ["experiment=gru_attn_ppo", "encoder=mlp", "data.days=40", "env.n_envs=1", "trainer.enable_progress_bar=false"]


def tiny_cfg(*overrides: str) -> dict:
    with initialize_config_module(config_module="kpremia.configs", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*TINY, *overrides])
    return OmegaConf.to_container(cfg, resolve=True)


def tiny_module(*overrides: str):
    """An untrained but real PPO module (seeded) and the market it was built on."""
    cfg = tiny_cfg(*overrides)
    torch.manual_seed(int(cfg["seed"]))
    market = load_market(cfg)
    module = build_module(cfg, market.spec, market)
    module.eval()
    return module, market, cfg


def transitions(module, market, cfg, n: int, sample_seed: int = 0):
    """``n`` live-like transitions: the module acts (sampled) on the validation bars in order."""
    env = make_sequential_env(market.tensors["val"], cfg["env"], n_envs=1)
    obs = env.reset()
    gen = torch.Generator().manual_seed(sample_seed)
    out = []
    for _ in range(n):
        action = module.act(obs, deterministic=False, generator=gen)
        logprob = behaviour_logprob(module.net, obs, int(action[0]))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        out.append(Transition({k: v.clone() for k, v in obs.items()}, int(action[0]), logprob,
                              float(reward[0]) * 100.0, {k: v.clone() for k, v in next_obs.items()},
                              bool(terminated[0]), bool(truncated[0])))
        obs = next_obs
    return out

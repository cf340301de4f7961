"""PPO under Lightning DDP (2 CPU processes, gloo) and learnability on a simple market."""

from __future__ import annotations

import json

import pytest
import torch

from kpremia.envs.experiment import load_market
from kpremia.run import training

from .test_ppo_training import TINY


@pytest.mark.slow
def test_ddp_two_cpu_processes(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY, "trainer.strategy=ddp_spawn", "trainer.devices=2", "algo.total_env_steps=512")
    run_dir = tmp_path / "run"
    training.fit(cfg, run_dir)
    # env steps count both ranks: 2 ranks x 8 envs x 16 steps per rollout.  (ddp_spawn trains in
    # child processes, so the parent's module is untouched: read the counter from the checkpoint.)
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["kpremia"]["env_steps"] == 512
    assert len(ckpt["kpremia"]["per_rank"]) == 2
    meta = json.loads((run_dir / "meta.json").read_text())
    ranks = meta["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert ranks[0]["env_seed"] != ranks[1]["env_seed"]
    assert ranks[0]["first_starts"] != ranks[1]["first_starts"], "both ranks saw the same episodes"
    # one run directory, written once
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert len(list(tmp_path.iterdir())) == 1


@pytest.mark.slow
def test_ppo_beats_random_on_a_mean_reverting_market(compose_cfg, tmp_path):
    from kpremia.eval.backtest import run_policy_backtest, trace_metrics

    cfg = compose_cfg(
        "experiment=gru_attn_ppo", "data.preset=mean_reverting", "data.days=60", "env.n_envs=32",
        "env.max_steps=200", "algo.n_steps=64", "algo.rollouts_per_epoch=4", "algo.total_env_steps=40960",
        "trainer.enable_progress_bar=false",
        # bar-by-bar PPO without the default experiment's levers (those have their own slow test)
        "env.action_scheme=signal", "env.decision_every=1", "env.reward=log_return",
    )
    result = training.fit(cfg, tmp_path / "run")
    module = result["module"]
    val = load_market(cfg).tensors["val"]
    kwargs = cfg["env"]  # the run's env config, as fit validates with
    agent = trace_metrics(run_policy_backtest(lambda o: module.act(o), val, kwargs)[0])
    gen = torch.Generator().manual_seed(0)
    random_traces = run_policy_backtest(lambda o: torch.randint(0, 2, (16,), generator=gen), val, kwargs, n_envs=16)
    random_return = sum(trace_metrics(t)["return"] for t in random_traces) / 16
    assert agent["return"] > random_return + 0.05, (agent, random_return)

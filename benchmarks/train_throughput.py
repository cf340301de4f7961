"""End-to-end training throughput: env steps per second of wall time, as `fit` runs them.

For every experiment in the config tree (or those named with --experiments) this
composes the real config, builds the data, the module and a real Lightning
Trainer, and times ``trainer.fit`` over a fixed budget of env steps (rollout +
GAE + update, validation off).  The reference row in the same run is the bare
simulator with random actions (the ceiling the training loop can approach).

    python benchmarks/train_throughput.py                 # all experiments, 65,536 env steps each
    python benchmarks/train_throughput.py --experiments gru_attn_ppo --steps 131072
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import torch

from kpremia.envs.experiment import load_market


def compose(overrides: list[str]) -> dict:
    from kpremia.core.compose import compose_config

    return compose_config(overrides)


def time_fit(cfg: dict, run_dir: Path) -> tuple[float, int, float]:
    """(seconds, env steps, steps/s) of trainer.fit with validation off."""
    import lightning as L

    from kpremia.run import training
    from kpremia.run.checkpoint import build_module

    L.seed_everything(int(cfg["seed"]), verbose=False)
    market = load_market(cfg)
    module = build_module(cfg, market.spec, market)
    trainer, _ = training.build_trainer(cfg, run_dir, module)
    trainer.limit_val_batches = 0
    trainer.fit_loop.max_epochs = module.max_epochs(1)
    t0 = time.perf_counter()
    trainer.fit(module)
    seconds = time.perf_counter() - t0
    return seconds, module.env_steps, module.env_steps / seconds


def env_reference(cfg: dict, steps: int) -> float:
    """Random-action env steps/s of the same simulator and n_envs (no policy)."""
    from kpremia.envs.batched import BatchedEnv

    market = load_market(cfg)
    env = BatchedEnv.from_config(market.tensors["train"], cfg["env"], seed=0)
    env.reset()
    n = env.n_envs
    actions = torch.randint(0, env.n_actions, (max(1, steps // n), n))
    t0 = time.perf_counter()
    for a in actions:
        env.step(a)
    return actions.numel() / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", nargs="*", default=None)
    parser.add_argument("--steps", type=int, default=65_536, help="env steps per experiment")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the config's torch_threads)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every experiment")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("kpremia").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    import kpremia

    exp_dir = Path(kpremia.__file__).parent / "configs" / "experiment"
    names = args.experiments or sorted(p.stem for p in exp_dir.glob("*.yaml"))
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            cfg = compose([f"experiment={name}", f"algo.total_env_steps={args.steps}",
                           "trainer.enable_progress_bar=false", f"torch_threads={args.threads}", *args.overrides])
            seconds, steps, rate = time_fit(cfg, Path(tmp) / name)
            rows.append((name, cfg["encoder"]["name"], cfg["algo"]["name"], cfg["env"]["n_envs"], steps, seconds, rate))
        ref = env_reference(cfg, args.steps)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    print(f"{'experiment':<18}{'encoder':<10}{'algo':<6}{'n_envs':>7}{'env steps':>11}{'seconds':>9}{'steps/s':>10}")
    for name, enc, algo, n_envs, steps, seconds, rate in rows:
        print(f"{name:<18}{enc:<10}{algo:<6}{n_envs:>7}{steps:>11,}{seconds:>9.1f}{rate:>10,.0f}")
    print(f"{'reference: env only, random actions':<52}{ref:>10,.0f}")


if __name__ == "__main__":
    main()

"""Live decision latency: one closed bar -> one decision, per encoder, on CPU.

What is timed is exactly the runner's decision path (``LiveRunner.observe`` +
``LiveRunner.decide``): the incremental feature update, the checkpoint's
normaliser, the account part of the observation and the policy's forward pass
in eval mode.  Journal commits and the broker call are not in it (they are I/O,
and the runner does them after the decision is made).

    python benchmarks/live_latency.py [--threads 1] [--bars 2000] [--encoders gru_attn,mlp] [--online gru_attn]

Each encoder gets a checkpoint (untrained weights, the synthetic market's train
normaliser, the default windows) in a temporary directory, a warmed-up
observation builder, then ``--bars`` consecutive bars of the synthetic market.
Prints wall-clock p50 / p99 / max in milliseconds, and the p50 / p99 of the
thread's CPU time (``time.thread_time``), which a busy machine inflates much less
than wall time (a waiting thread burns no CPU).  The target for gru_attn is
p99 <= 2.5 ms on one thread; on a shared machine read the CPU columns and rerun
before trusting a miss.

``--online`` adds rows with online learning on (the ``model`` callback: PPO
updates every 3 bars on a background thread, a version per update, the
challenger's paper account): the decision is timed as above, and separately the
whole bar as the callback sees it (join of the previous update, transition,
challenger, snapshot-free).  "back to back" feeds the next bar as soon as the
last is handled, so the decision runs while the update computes (the worst case;
live bars are 15 minutes apart); "bar gap 50 ms" leaves the update time to finish.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from kpremia.core.registry import DATA_SOURCES, ENCODERS
from kpremia.data.market import ObservationBuilder
from kpremia.envs.experiment import load_market
from kpremia.live.loop.policy import CheckpointPolicy
from kpremia.live.loop.runner import LiveRunner
from kpremia.live.loop.state import LiveState
from kpremia.live.venues.feeds import frame_bars, warmup_bars
from kpremia.run.checkpoint import build_module

TARGET_P99_MS = {"gru_attn": 2.5}


def config(encoder: str) -> dict:
    with initialize_config_module(config_module="kpremia.configs", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"encoder={encoder}", "data.days=120"])
    return OmegaConf.to_container(cfg, resolve=True)


def checkpoint(cfg: dict, directory: Path) -> Path:
    """A fit-format checkpoint of an untrained module with the train split's normaliser."""
    market = load_market(cfg, ("train",))
    module = build_module(cfg, market.spec, market=None)
    path = directory / f"{cfg['encoder']['name']}.ckpt"
    torch.save({"hyper_parameters": {"cfg": cfg, "spec": market.spec.to_dict()}, "state_dict": module.state_dict(),
                "kpremia": {"normalizer": market.normalizer.state_dict(), "bar_minutes": market.bar_minutes}}, path)
    return path


class PaperOnly:
    """No orders are sent here; to online learning it is what the default ``paper`` broker is: not real money."""

    name = "paper"
    is_paper = True


def warm_runner(encoder: str, directory: Path, config_: dict | None = None) -> tuple[LiveRunner, "pd.DataFrame", int]:
    """A runner (no feed, broker or journal) hosting an untrained ``encoder`` checkpoint, its features
    warmed up; the market frame and the index of its first bar with a full observation."""
    cfg = config(encoder)
    policy = CheckpointPolicy(checkpoint(cfg, directory))
    frame, _ = DATA_SOURCES.build({k: v for k, v in cfg["data"].items() if k != "split"}).load()
    builder = ObservationBuilder(**policy.windows, normalizer=policy.normalizer)
    start = warmup_bars(policy.windows["window_1d"], policy.windows["window_premium"])
    builder.warm_up(frame.iloc[:start])
    runner = LiveRunner(feed=None, broker=None, policy=policy, journal=None, builder=builder,
                        initial_state=LiveState(run_id="bench", symbol="USDT/KRW", initial_krw=1e6, cash_krw=1e6),
                        config=config_)
    return runner, frame, start


def measure(encoder: str, n_bars: int, directory: Path) -> tuple[np.ndarray, np.ndarray]:
    """Wall and CPU milliseconds of bar -> decision for ``n_bars`` consecutive bars."""
    runner, frame, start = warm_runner(encoder, directory)
    wall, cpu = [], []
    for bar in frame_bars(frame.iloc[start:start + n_bars]):
        t0, c0 = time.perf_counter(), time.thread_time()
        obs = runner.observe(bar)
        runner.decide(bar, obs)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        runner.state.step += 1
    return np.asarray(wall[10:]) * 1e3, np.asarray(cpu[10:]) * 1e3  # the first calls pay one-off allocations


def measure_online(encoder: str, n_bars: int, directory: Path,
                   gap_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Decision wall and CPU ms, whole-bar ms (decision + learning callback) and the updates run, learning on."""
    from kpremia.live.learning.learning import ModelCallback

    runner, frame, start = warm_runner(encoder, directory, {"state_dir": str(directory / f"online-{encoder}-{gap_s}")})
    from kpremia.run.live_config import LearnConfig

    callback = ModelCallback(LearnConfig(enabled=True))  # the reference settings: challenger on, 96-bar windows
    runner.broker = PaperOnly()  # learning checks what the broker is; this bench sends no orders
    callback.setup(runner)
    runner.callbacks = [callback]
    decide, cpu, whole = [], [], []
    for bar in frame_bars(frame.iloc[start:start + n_bars]):
        t0, c0 = time.perf_counter(), time.thread_time()
        obs = runner.observe(bar)
        runner.state.step += 1
        decision = runner.decide(bar, obs)
        t1 = time.perf_counter()
        cpu.append(time.thread_time() - c0)
        callback.on_decision(runner, decision)
        callback.state_dict()  # what the journal snapshot serialises every bar
        callback.on_bar_end(runner, decision)
        t2 = time.perf_counter()
        decide.append(t1 - t0)
        whole.append(t2 - t0)
        if gap_s:
            time.sleep(gap_s)
    callback.on_stop(runner)
    updates = callback.host.learner.updates
    callback.teardown(runner)
    return np.asarray(decide[10:]) * 1e3, np.asarray(cpu[10:]) * 1e3, np.asarray(whole[10:]) * 1e3, updates


def _row(label: str, ms: np.ndarray, cpu: np.ndarray | None, target: float | None, extra: str = "") -> str:
    verdict = ""
    if target is not None:
        verdict = f"p99 <= {target} ms: wall {'met' if np.percentile(ms, 99) <= target else 'MISSED'}"
        if cpu is not None:
            verdict += f", cpu {'met' if np.percentile(cpu, 99) <= target else 'MISSED'}"
    cpu_cols = f"{np.percentile(cpu, 50):>8.3f} {np.percentile(cpu, 99):>8.3f}" if cpu is not None else " " * 17
    return (f"{label:<40} {np.percentile(ms, 50):>8.3f} {np.percentile(ms, 99):>8.3f} {ms.max():>8.3f} {cpu_cols}  "
            f"{verdict}{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bars", type=int, default=2000)
    parser.add_argument("--encoders", default=",".join(ENCODERS.names()))
    parser.add_argument("--online", default="", help="encoders to time again with online learning on")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"bar -> decision latency, CPU, {args.threads} thread(s), {args.bars} bars, torch {torch.__version__}")
    print(f"{'encoder':<10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'cpu p50':>8} {'cpu p99':>8}  target")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.encoders.split(","):
            ms, cpu = measure(name, args.bars, Path(tmp))
            target = TARGET_P99_MS.get(name)
            verdict = "" if target is None else (
                f"p99 <= {target} ms: wall {'met' if np.percentile(ms, 99) <= target else 'MISSED'}, "
                f"cpu {'met' if np.percentile(cpu, 99) <= target else 'MISSED'}")
            print(f"{name:<10} {np.percentile(ms, 50):>8.3f} {np.percentile(ms, 99):>8.3f} {ms.max():>8.3f} "
                  f"{np.percentile(cpu, 50):>8.3f} {np.percentile(cpu, 99):>8.3f}  {verdict}")
        if args.online:
            print("\nwith online learning (PPO every 3 bars on a background thread, challenger on)")
            print(f"{'':<40} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'cpu p50':>8} {'cpu p99':>8}")
            for name in args.online.split(","):
                for gap, label in ((0.0, "back to back"), (0.05, "bar gap 50 ms")):
                    decide, cpu, whole, updates = measure_online(name, args.bars, Path(tmp), gap)
                    print(_row(f"{name} decision, {label}", decide, cpu, TARGET_P99_MS.get(name)))
                    print(_row(f"{name} whole bar, {label}", whole, None, None, f"{updates} updates"))


if __name__ == "__main__":
    main()

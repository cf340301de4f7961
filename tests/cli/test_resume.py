"""``fit ckpt=<last.ckpt>`` alone resumes a run trained with overrides, bit for bit, in its own directory.

Before: the config was not restored from the checkpoint, so a run trained with any override
ended in a state-dict traceback unless every override was repeated, and the resume left an
empty new run folder.  These are real CLI runs (Hydra, Lightning, the run directory); the
first one also checks what a normal run prints when stdout is not a terminal.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

# A run with overrides that change the model, the market and the seed: all of it must come back
# from the checkpoint.  2 epochs of 1 rollout (8 envs x 16 steps); the first run stops after one.
OVERRIDES = ["experiment=mlp_ppo", "encoder.hidden_sizes=[32,16]", "env.fee_rate=0.002", "seed=3",
             "data.days=40", "env.n_envs=8", "env.max_steps=100", "algo.n_steps=16", "algo.rollouts_per_epoch=1",
             "algo.update_epochs=2", "algo.n_minibatches=2", "algo.total_env_steps=256"]


def _state(ckpt: Path) -> tuple[dict[str, torch.Tensor], int]:
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    return saved["state_dict"], int(saved["kpremia"]["env_steps"])


def test_resume_from_last_ckpt_alone_is_bitwise_the_uninterrupted_run(run_cli, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = run_cli("fit", *OVERRIDES, "trainer.max_epochs=1", env={"PYTHONWARNINGS": "default"})
    assert first.returncode == 0, first.stderr[-3000:]
    (run,) = runs.iterdir()
    assert first.stdout.strip().splitlines()[-1] == str(run)

    # quiet, informative output off a terminal: each Lightning line once, no advert, no pytree warning,
    # one line per epoch instead of a redrawn progress bar
    printed = first.stdout + first.stderr
    assert printed.count("GPU available: False") == 1, printed
    assert "Tip:" not in printed and "litlogger" not in printed
    assert "LeafSpec" not in printed and "FutureWarning" not in printed
    assert "epoch 1/2: 128 / 256 env steps; val return" in printed
    assert "\r" not in printed

    # an override that would change the run is refused in one line, before anything is touched
    before = sorted(p.name for p in run.iterdir())
    refused = run_cli("fit", f"ckpt={run}", "env.fee_rate=0.001")
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert "`env.fee_rate=0.001` would change env.fee_rate (0.002 in the checkpoint, 0.001 asked)" in line
    assert sorted(p.name for p in run.iterdir()) == before  # no failed.json, nothing written

    resumed = run_cli("fit", f"ckpt={run}/checkpoints/last.ckpt")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(runs.iterdir()) == [run], "the resume must continue in the run's own directory"
    assert resumed.stdout.strip().splitlines()[-1] == str(run)

    straight = run_cli("fit", *OVERRIDES)
    assert straight.returncode == 0, straight.stderr[-3000:]
    (other,) = [p for p in runs.iterdir() if p != run]

    got, got_steps = _state(run / "checkpoints" / "last.ckpt")
    want, want_steps = _state(other / "checkpoints" / "last.ckpt")
    assert got_steps == want_steps == 256
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want), "resumed weights differ from the uninterrupted run"
    assert got["net.encoder.net.0.weight"].shape[0] == 32  # the override's model, restored from the checkpoint

    # the run's history: both epochs' validation rows in one metrics.csv, the resume in meta.json
    import pandas as pd

    metrics = pd.read_csv(run / "metrics.csv")
    assert sorted(metrics["val/return"].dropna().index.map(lambda i: int(metrics.loc[i, "step"]))) == [128, 256]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["seed"] == 3 and [r["env_steps"] for r in meta["resumes"]] == [128]

    # repeating an original override with its value is not a change; the budget may grow
    again = run_cli("fit", f"ckpt={run}", "seed=3", "algo.total_env_steps=384")
    assert again.returncode == 0, again.stderr[-3000:]
    assert _state(run / "checkpoints" / "last.ckpt")[1] == 384

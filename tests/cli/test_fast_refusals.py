"""Config, file and checkpoint mistakes are refused before torch (or Lightning, or the market) is loaded."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kpremia.core.errors import UserError
from kpremia.run.checkpoint import peek_checkpoint

_CODE = ("import sys\nfrom kpremia.app.cli import main\ntry:\n    rc = main(sys.argv[1:])\n"
         "except SystemExit as exc:\n    rc = exc.code\n"
         "print(rc, sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'lightning', 'ccxt', 'fastapi'}))")


@pytest.mark.parametrize("args,needle", [
    (["fit", "encoder=grux"], "grux"),
    (["fit", "experiment=gru_atn_ppo"], "gru_atn_ppo"),
    (["fit", "env.n_envs=0"], "env.n_envs"),
    (["fit", "algo.gamma=0"], "algo.gamma"),
    (["fit", "data=csv", "data.path=missing.csv"], "missing.csv"),
    (["fit", "data=csv"], "data.path is required"),
    (["backtest", "data=parquet"], "data.path is required with data=parquet"),
    (["fit", "data=csv", "data.path=prices.csv", "data.fx_path=no_fx.csv"], "data.fx_path"),
    (["test", "ckpt=not_a_checkpoint.ckpt"], "is not a kpremia checkpoint"),
    (["test", "ckpt=missing.ckpt"], "not found"),
    (["fit", "ckpt=not_a_checkpoint.ckpt"], "is not a kpremia checkpoint"),
    (["test"], "needs a checkpoint"),
    (["live", "live.risk.max_daily_loss=2"], "live.risk.max_daily_loss"),  # live settings hold no torch
    (["live", "live.learn.lr=-1"], "live.learn.lr"),
    (["live", "live.learn.challenger.window=0"], "live.learn.challenger.window"),
])
def test_refused_in_one_line_without_torch(args, needle, tmp_path: Path):
    (tmp_path / "not_a_checkpoint.ckpt").write_text("not a checkpoint\n")
    (tmp_path / "prices.csv").write_text("time,close,fx\n2024-01-01,1400,1380\n")
    proc = subprocess.run([sys.executable, "-c", _CODE, *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "KPREMIA_RUNS_DIR": str(tmp_path / "runs")})
    rc, heavy = proc.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(rc) == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and needle in errors[0], proc.stderr
    assert heavy == "[]", (args, heavy)


def test_peek_refuses_what_is_not_a_checkpoint(tmp_path: Path):
    text = tmp_path / "notes.ckpt"
    text.write_text("hello")
    with pytest.raises(UserError, match="not a torch checkpoint archive"):
        peek_checkpoint(text)
    other = tmp_path / "other.ckpt"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("archive/weights.bin", b"\0" * 8)
    with pytest.raises(UserError, match="without data.pkl"):
        peek_checkpoint(other)


def test_peek_reads_a_torch_checkpoint_as_torch_does(tmp_path: Path):
    """Against torch.load itself: the plain parts equal, tensors read as None, nothing of the file executed."""
    import torch

    saved = {"state_dict": {"w": torch.ones(3)}, "hyper_parameters": {"cfg": {"seed": 3, "encoder": {"name": "mlp"}}},
             "kpremia": {"bar_minutes": 15.0, "plugins": [{"kind": "encoder", "name": "x", "module": "m"}]}}
    path = tmp_path / "t.ckpt"
    torch.save(saved, path)
    peeked = peek_checkpoint(path)
    loaded = torch.load(path, weights_only=False)
    assert peeked["hyper_parameters"] == loaded["hyper_parameters"]
    assert peeked["kpremia"] == loaded["kpremia"]
    truncated = tmp_path / "cut.ckpt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError, match="is not a kpremia checkpoint"):
        peek_checkpoint(truncated)

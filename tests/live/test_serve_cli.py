"""`python -m kpremia serve` and `live ... live.api.enabled=true` from the command line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

from kpremia.envs.experiment import load_market

TOKEN = "cli-token-0123456789-abcdefghijklmn"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "KPREMIA_API_TOKEN"}
    return {**env, "PYTHONWARNINGS": "ignore", **extra}


def test_off_loopback_without_a_token_refuses_to_start(checkpoint, tmp_path):
    for args in (["serve", f"ckpt={checkpoint}", "live.api.host=0.0.0.0", f"live.state_dir={tmp_path / 's'}"],
                 ["live", f"ckpt={checkpoint}", "live.api.enabled=true", "live.api.host=0.0.0.0",
                  f"live.state_dir={tmp_path / 'l'}", "live.max_bars=3"]):
        proc = subprocess.run([sys.executable, "-m", "kpremia", *args], capture_output=True, text=True, timeout=300,
                              env=_env(), cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "export KPREMIA_API_TOKEN" in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s" / "versions").exists()  # refused before anything was written


def test_off_loopback_with_a_short_token_refuses_with_a_hint(checkpoint, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "kpremia", "serve", f"ckpt={checkpoint}", "live.api.host=0.0.0.0",
                           f"live.state_dir={tmp_path / 's'}"], capture_output=True, text=True, timeout=300,
                          env=_env(KPREMIA_API_TOKEN="hunter2"), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "KPREMIA_API_TOKEN has 7 characters" in proc.stderr and "secrets.token_urlsafe(32)" in proc.stderr
    assert not (tmp_path / "s").exists()


def test_serve_answers_with_a_token(checkpoint, tmp_path):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kpremia", "serve", f"ckpt={checkpoint}", f"live.api.port={port}",
                             "live.learn.enabled=true"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(KPREMIA_API_TOKEN=TOKEN), cwd=tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert httpx.get(f"{base}/status", timeout=10).status_code == 401
        status = httpx.get(f"{base}/status", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
        assert status["model_version"] == "v1_0_0" and status["learning"]["enabled"] is True
        saved = httpx.post(f"{base}/save", json={}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
        assert saved["version"] == "v1_0_1" and saved["parent"] == "v1_0_0"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert (checkpoint.parent.parent / "serve" / "versions").is_dir()  # default state_dir: <run dir>/serve


def test_dqn_checkpoints_cannot_learn_online(tmp_path):
    import torch
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from kpremia.run.checkpoint import build_module

    with initialize_config_module(config_module="kpremia.configs", version_base="1.3"):
        cfg = OmegaConf.to_container(compose(config_name="config", overrides=[
            "algo=dqn", "data.days=40", "env.window_bars=8", "env.window_1d=5", "env.window_premium=5"]), resolve=True)
    market = load_market(cfg, ("train",))
    module = build_module(cfg, market.spec, market=None)
    ckpt = tmp_path / "dqn" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"hyper_parameters": {"cfg": cfg, "spec": market.spec.to_dict()}, "state_dict": module.state_dict(),
                "kpremia": {"normalizer": market.normalizer.state_dict(), "bar_minutes": market.bar_minutes}}, ckpt)
    proc = subprocess.run([sys.executable, "-m", "kpremia", "serve", f"ckpt={ckpt}", "live.learn.enabled=true"],
                          capture_output=True, text=True, timeout=300, env=_env(), cwd=tmp_path)
    assert proc.returncode == 2 and "PPO checkpoints only" in proc.stderr and "Traceback" not in proc.stderr

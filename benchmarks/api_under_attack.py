"""Bar timing of a paper session while hostile uploads hit its control API, against the same session alone.

    python benchmarks/api_under_attack.py [--bars 300] [--requests 100] [--connections 10] [--pace-ms 50]
                                          [--scenarios alone,401,413,elsewhere,chunked] [--kpremia-path <checkout>]
    python benchmarks/api_under_attack.py --status-rows 1000,10000,50000

The acceptance run (on a quiet machine; it takes several minutes)::

    python benchmarks/api_under_attack.py --requests 3000 --connections 30 --gap-s 0.02 --bars 2000 \
        --scenarios alone,elsewhere,chunked
    python benchmarks/api_under_attack.py --status-rows 1000,50000

asks for ``chunked`` bar lateness (p50 and p99) within 1.5x of ``elsewhere`` (the same flood and CPU load,
aimed at another process), and ``/status`` time flat from 1,000 to 50,000 journal rows.

Each scenario is a real session (``python -m kpremia live ... live.api.enabled=true``: the front door process on
the API's port, uvicorn behind it on 127.0.0.1 in the session's process -- in the session's process alone, on the
API's port, for a ``--kpremia-path`` from before the front door --, bars replayed every ``--pace-ms``) started in a
fresh state_dir:

* ``alone``: nobody calls the API;
* ``401``: ``--requests`` unauthenticated 50 MB ``POST /act`` bodies over ``--connections`` connections
  (the bind has a token);
* ``413``: the same bodies on a token-less loopback bind (the size limit refuses them);
* ``chunked``: ``--requests`` unauthenticated 50 MB ``POST /act`` bodies sent chunked (no Content-Length);
* ``elsewhere``: the same chunked flood at the same time, aimed at a separate ``python -m kpremia serve``
  process on the same machine, while the session's own API (with a token) is left alone: the same CPU load
  without the flood reaching the session -- the reference the ``chunked`` figures are judged against.

``--status-rows`` times ``/status``'s reads (:class:`kpremia.live.http.status.StatusSource`) on journals of those
many decided bars (median of 20 calls each).

For the bars decided while the requests arrive it prints the time each bar took beyond the feed's pace
(commit to commit, minus the pace: features, decision, journal commit, order, callbacks, and any wait), and
the decision latency the journal records (bar -> decision).  ``--kpremia-path`` runs the sessions from
another checkout (e.g. one before the request guard) with this script's attack, for a before/after table;
give it fewer ``--requests`` there (each body used to cost seconds).
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from kpremia.run import training
from kpremia.run.checkpoint import build_module

TOKEN = "benchmark-token-0123456789-abcdefghijklmnop"
FIFTY_MB = 50_000_000


def make_checkpoint(directory: Path) -> Path:
    """A fit-format checkpoint of an untrained gru_attn PPO (seeded; policy head scaled so it trades)."""
    with initialize_config_module(config_module="kpremia.configs", version_base="1.3"):
        cfg = OmegaConf.to_container(compose(config_name="config", overrides=[
            "data.days=40", "env.window_bars=8", "env.window_1d=5", "env.window_premium=5"]), resolve=True)
    torch.manual_seed(0)
    market = training.load_market(cfg, ("train",))
    module = build_module(cfg, market.spec, market=None)
    with torch.no_grad():
        module.net.policy_head[-1].weight.mul_(300.0)
    path = directory / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"hyper_parameters": {"cfg": cfg, "spec": market.spec.to_dict()}, "state_dict": module.state_dict(),
                "kpremia": {"normalizer": market.normalizer.state_dict(), "bar_minutes": market.bar_minutes}}, path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hostile_upload(port: int, body: memoryview) -> str:
    """An unauthenticated POST /act with ``body``; the status, or ``reset`` if the server hung up first."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        head = (f"POST /act HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        try:
            sock.sendall(head)
            sock.sendall(body)
        except OSError:
            pass
        try:
            data = sock.recv(4096)
            return data.split(b" ", 2)[1].decode() if data else "reset"
        except (OSError, IndexError):
            return "reset"
    finally:
        sock.close()


def chunked_upload(port: int, chunk: bytes, total: int) -> str:
    """An unauthenticated chunked POST /act of ``total`` bytes; the status, or ``reset``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        head = (b"POST /act HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        try:
            sock.sendall(head)
            for _ in range(total // len(chunk)):
                sock.sendall(framed)
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        try:
            data = sock.recv(4096)
            return data.split(b" ", 2)[1].decode() if data else "reset"
        except (OSError, IndexError):
            return "reset"
    finally:
        sock.close()


def start_elsewhere(ckpt: Path, root: Path, args: argparse.Namespace) -> tuple[subprocess.Popen, int]:
    """A separate ``kpremia serve`` process with a token: the flood's target in the ``elsewhere`` scenario."""
    port = free_port()
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "KPREMIA_API_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "kpremia", "serve", f"ckpt={ckpt}",
                             f"live.state_dir={root / 'elsewhere-serve'}", f"live.api.port={port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=root)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the separate serve process did not start")


def decisions(journal: Path) -> pd.DataFrame:
    if not journal.exists():
        return pd.DataFrame()
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5) as conn:
            return pd.read_sql_query("SELECT created_at, latency_ms FROM decisions ORDER BY step", conn)
    except (sqlite3.Error, pd.errors.DatabaseError):
        return pd.DataFrame()


def run_scenario(name: str, ckpt: Path, root: Path, args: argparse.Namespace) -> dict:
    state_dir, port = root / name, free_port()
    other = None
    if name == "elsewhere":  # up before the session starts, so the session's bars are not spent waiting for it
        other, other_port = start_elsewhere(ckpt, root, args)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("KPREMIA_API_TOKEN", None)
    if name != "413":
        env["KPREMIA_API_TOKEN"] = TOKEN
    if args.kpremia_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.kpremia_path, env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "kpremia", "live", f"ckpt={ckpt}", f"live.state_dir={state_dir}",
         "live.api.enabled=true", f"live.api.port={port}", f"live.replay.speed={15 * 60 / (args.pace_ms / 1e3):g}",
         f"live.max_bars={args.bars}", "live.journal.synchronous=NORMAL", "live.callbacks.logging=null"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=root)
    journal = state_dir / "journal.sqlite"
    while proc.poll() is None and len(decisions(journal)) < 10:
        time.sleep(0.05)
    outcomes: list[str] = []
    target = other_port if other is not None else port
    start = pd.Timestamp.now(tz="UTC")
    if name != "alone":
        body = memoryview(b"[" + b"1," * (FIFTY_MB // 2 - 1) + b"1]")
        chunk = b"1," * (1 << 15)
        per = args.requests // args.connections

        def one_connection() -> None:
            for _ in range(per):
                try:
                    if name in ("chunked", "elsewhere"):
                        outcomes.append(chunked_upload(target, chunk, FIFTY_MB))
                    else:
                        outcomes.append(hostile_upload(target, body))
                except OSError:  # nobody listens any more: the session ran out of bars before the flood ended
                    outcomes.append("refused")
                    return
                time.sleep(args.gap_s)

        threads = [threading.Thread(target=one_connection) for _ in range(args.connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        time.sleep(args.alone_s)
    end = pd.Timestamp.now(tz="UTC")
    if other is not None:
        other.kill()
        other.wait()
    code = proc.wait()
    if code != 0:
        raise SystemExit(f"{name}: the session failed ({code}): {proc.stderr.read()[-2000:]}")
    d = decisions(journal)
    # Asked once the session has ended: while it runs, its last bar is always a moment before `end`.
    if pd.to_datetime(d["created_at"]).max() < end:
        print(f"{name}: the flood outlasted the session (its --bars, or the replay data: {len(d)} "
              "bars): only the bars decided under the flood are compared; a slower --pace-ms covers more", flush=True)
    created = pd.to_datetime(d["created_at"])
    beyond = (created.diff().dt.total_seconds().to_numpy() - args.pace_ms / 1e3) * 1e3
    inside = ((created >= start) & (created <= end)).to_numpy().copy()
    inside[0] = False
    counts = {k: outcomes.count(k) for k in sorted(set(outcomes))}
    return {"name": name, "bars": int(inside.sum()), "beyond": beyond[inside],
            "latency": d["latency_ms"].to_numpy()[inside], "seconds": (end - start).total_seconds(),
            "outcomes": ", ".join(f"{v}x {k}" for k, v in counts.items()) or "-"}


def status_times(rows_list: list[int]) -> None:
    """Median time of ``StatusSource.figures()`` on journals of each size (the reads behind ``/status``)."""
    from kpremia.live.http.status import StatusSource
    from kpremia.live.loop.journal import Journal
    from kpremia.live.loop.state import LiveState

    print(f"{'journal rows':>12} | {'/status reads, ms p50':>22} {'p90':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in rows_list:
            state_dir = Path(tmp) / str(n)
            state_dir.mkdir()
            journal = Journal(state_dir / "journal.sqlite", synchronous="OFF")
            journal.set_meta({"run_id": "r", "symbol": "USDT/KRW", "initial_krw": "1000000.0", "policy": "p"})
            journal.init_state(LiveState(run_id="r", symbol="USDT/KRW", initial_krw=1e6, cash_krw=1e6, step=n))
            times = pd.date_range("2024-01-01", periods=n, freq="15min", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S+00:00")
            with journal.transaction() as c:
                c.executemany("INSERT INTO decisions(bar_time, step, session, open, close, fx, premium, action, "
                              "action_name, target_weight, reason, risk_state, cash_krw, position_usdt, equity_krw, "
                              "latency_ms, client_order_id, created_at) VALUES (?,?,1,1400,1400,1380,0.0145,?,?,?,"
                              "'policy','ACTIVE',1e6,0,1e6,1.0,NULL,?)",
                              [(t, i + 1, 1 if i % 4 == 0 else None, "buy" if i % 4 == 0 else None,
                                1.0 if i % 4 == 0 else None, t) for i, t in enumerate(times)])
            journal.close()
            source = StatusSource(state_dir)
            took = []
            for _ in range(20):
                t0 = time.perf_counter()
                source.figures()
                took.append((time.perf_counter() - t0) * 1e3)
            print(f"{n:>12,} | {np.percentile(took, 50):>22.2f} {np.percentile(took, 90):>7.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=300)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--pace-ms", type=float, default=50.0)
    parser.add_argument("--gap-s", type=float, default=0.2, help="pause between two uploads on one connection")
    parser.add_argument("--alone-s", type=float, default=4.0, help="how long the alone scenario is measured")
    parser.add_argument("--scenarios", default="alone,401,413")
    parser.add_argument("--kpremia-path", default="", help="run the sessions from this checkout instead")
    parser.add_argument("--status-rows", default="", help="time /status on journals of these sizes, e.g. 1000,50000")
    args = parser.parse_args()
    if args.status_rows:
        status_times([int(n) for n in args.status_rows.split(",")])
        return
    print(f"load before: {os.getloadavg()[0]:.2f} (1 min); {os.cpu_count()} CPUs; torch {torch.__version__}")
    print(f"paper session, bars every {args.pace_ms:g} ms, API behind its front door process; "
          f"{args.requests} x 50 MB unauthenticated POST /act over {args.connections} connections"
          + (f"; sessions from {args.kpremia_path}" if args.kpremia_path else ""))
    print(f"{'scenario':<8} {'bars':>5} {'secs':>6} | {'ms beyond the pace: p50':>24} {'p99':>8} {'max':>8} | "
          f"{'decision ms p50':>16} {'p99':>7} | requests")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ckpt = make_checkpoint(root)
        for name in args.scenarios.split(","):
            r = results[name] = run_scenario(name, ckpt, root, args)
            b, lat = r["beyond"], r["latency"]
            if not len(b):
                raise SystemExit(f"{name}: no bar was decided while the requests arrived: give it more --bars")
            print(f"{r['name']:<8} {r['bars']:>5} {r['seconds']:>6.1f} | {np.percentile(b, 50):>24.1f} "
                  f"{np.percentile(b, 99):>8.1f} {b.max():>8.1f} | {np.percentile(lat, 50):>16.2f} "
                  f"{np.percentile(lat, 99):>7.2f} | {r['outcomes']}", flush=True)
    if "chunked" in results and "elsewhere" in results:
        for q in (50, 99):
            flood, ref = (np.percentile(results[k]["beyond"], q) for k in ("chunked", "elsewhere"))
            ratio = (max(flood, 1.0) / max(ref, 1.0))
            print(f"bar lateness p{q}: flood at the session {flood:.1f} ms vs the same flood elsewhere {ref:.1f} ms: "
                  f"{ratio:.2f}x ({'within' if ratio <= 1.5 else 'OVER'} 1.5x)")
    print(f"load after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()

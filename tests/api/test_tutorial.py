"""The tutorial notebook runs top to bottom, headless, as a reader would run it (so it cannot rot).

It is executed by nbclient in a real Jupyter kernel of this environment, in a fresh working
directory, with its runs under ``KPREMIA_RUNS_DIR``; the cells' outputs are then checked for
what each section claims to show.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "tutorial.ipynb"


def _text(cell: dict) -> str:
    out = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            out.append(output.get("text", ""))
        elif output.get("output_type") in ("execute_result", "display_data"):
            out.append(str(output.get("data", {}).get("text/plain", "")))
    return "".join(out)


def test_the_tutorial_notebook_runs_headless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    runs = tmp_path / "runs"
    monkeypatch.setenv("KPREMIA_RUNS_DIR", str(runs))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    started = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    elapsed = time.perf_counter() - started
    code = [c for c in nb.cells if c.cell_type == "code"]
    outputs = "\n".join(_text(c) for c in code)
    assert not [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]

    # 1-3: a run, its test report and the pictures the report section displays
    (run_dir,) = [p for p in runs.iterdir() if p.name.endswith("_mlp_ppo")]
    (report,) = run_dir.glob("report/best*/synthetic-seed0/test")
    for name in ("summary.json", "trace.csv", "trades.csv", "equity.png", "premium.png"):
        assert (report / name).is_file()
    assert "buy_premium_at_or_below" in outputs  # the band rule's levels, read from summary.json
    assert sum(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in code for o in c.get("outputs", [])) == 2
    # 4: the loaded policy acted through 50 decisions of its own market
    assert "Policy(" in outputs and "50 decisions: reward" in outputs
    # 5: the notebook's encoder trained, and the run is named after it
    assert "mlp_ppo+premium_conv" in outputs
    assert any(p.name.endswith("_mlp_ppo+premium_conv") for p in runs.iterdir())
    # 6: SB3 trained on the experiment's gym env
    assert "SB3 PPO acts:" in outputs
    assert elapsed < 300, f"the tutorial took {elapsed:.0f} s; keep its budgets small (CI runs it)"

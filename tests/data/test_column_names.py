"""Users' column names: a YAML mapping file (no Hydra escaping), quoting that works, required columns per kind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kpremia.core.errors import UserError
from kpremia.data.files import CsvSource

REAL_NAMES = {"usdt_krw_close": "USDT/KRW close (KRW)", "usd_krw": "usd_krw", "premium": "kimchi_premium(%)"}


@pytest.fixture
def daily_file(tmp_path: Path) -> Path:
    """A close-only daily export with a real researcher's column names (brackets, %, spaces, a slash)."""
    days = pd.date_range("2024-06-01", periods=60, freq="1D", tz="UTC")
    rng = np.random.default_rng(0)
    fx = 1380 + np.cumsum(rng.normal(0, 3, len(days)))
    close = fx * (1 + 0.014 + rng.normal(0, 0.005, len(days)))
    premium_pct = (100 * (close.round(1) / fx.round(2) - 1)).round(6)
    df = pd.DataFrame({"date_utc": days.strftime("%Y-%m-%d %H:%M:%S"), REAL_NAMES["usdt_krw_close"]: close.round(1),
                       "usd_krw": fx.round(2), REAL_NAMES["premium"]: premium_pct})
    path = tmp_path / "kimchi daily.csv"
    df.to_csv(path, index=False)
    return path


def _columns_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "columns.yaml"
    path.write_text(text)
    return path


def test_a_yaml_mapping_file_reads_names_hydra_would_need_escaped(tmp_path, daily_file):
    mapping = _columns_file(tmp_path, "USDT/KRW close (KRW): close\nusd_krw: fx\nkimchi_premium(%): premium\n")
    from_file, _ = CsvSource(str(daily_file), columns=str(mapping), time_column="date_utc",
                             premium_unit="percent").load()
    from_dict, _ = CsvSource(str(daily_file), columns={"USDT/KRW close (KRW)": "close", "usd_krw": "fx",
                                                       "kimchi_premium(%)": "premium"},
                             time_column="date_utc", premium_unit="percent").load()
    pd.testing.assert_frame_equal(from_file, from_dict)
    raw = pd.read_csv(daily_file)
    np.testing.assert_allclose(from_file["close"].to_numpy(), raw["USDT/KRW close (KRW)"].to_numpy())
    np.testing.assert_allclose(from_file["premium"].to_numpy(), raw["kimchi_premium(%)"].to_numpy() / 100, atol=1e-6)


def test_the_cli_takes_the_mapping_file_and_quoted_paths_unescaped(tmp_path, daily_file):
    _columns_file(tmp_path, "USDT/KRW close (KRW): close\nusd_krw: fx\n")
    proc = subprocess.run([sys.executable, "-m", "kpremia", "data", "inspect", daily_file.name,
                           "data.time_column=date_utc", "data.columns=columns.yaml"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "rows             60" in proc.stdout


def test_quoting_and_escaping_as_documented(compose_cfg):
    cfg = compose_cfg("data=csv", 'data.path="my export (1) 100%.csv"', r"data.columns={kimchi_premium\(%\): premium}")
    assert cfg["data"]["path"] == "my export (1) 100%.csv"
    assert cfg["data"]["columns"] == {"kimchi_premium(%)": "premium"}


def test_required_columns_are_named_for_the_file_kind(tmp_path, daily_file):
    with pytest.raises(UserError, match=r"no close column .*a close-only file needs close and fx .*data\.columns="):
        CsvSource(str(daily_file), time_column="date_utc").load()
    with pytest.raises(UserError, match=r"has no fx column .*data\.fx_path="):
        CsvSource(str(daily_file), columns={"USDT/KRW close (KRW)": "close"}, time_column="date_utc").load()
    with pytest.raises(UserError, match=r"set data\.time_column"):
        CsvSource(str(daily_file), columns={"USDT/KRW close (KRW)": "close", "usd_krw": "fx"}).load()


def test_a_bad_mapping_file_is_one_line(tmp_path, daily_file):
    with pytest.raises(UserError, match=r"data file not found: .*nope\.yaml.*set data\.columns"):
        CsvSource(str(daily_file), columns=str(tmp_path / "nope.yaml"))
    with pytest.raises(UserError, match="must map your column names"):
        CsvSource(str(daily_file), columns=str(_columns_file(tmp_path, "- close\n- fx\n")))

"""build_market: causal tables, train-only normaliser, the cut at the last split, live == batch."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch

from kpremia.core.errors import UserError
from kpremia.core.spec import ObsSpec
from kpremia.data.feature_formulas import FEATURE_NAMES
from kpremia.data.market import Normalizer, ObservationBuilder, build_market, build_obs_tables
from kpremia.data.splits import split_frame
from kpremia.data.tensors import MarketTensors

from .test_features import perturb_after, probe_rows

SPLIT = {"train_frac": 0.6, "val_frac": 0.2}


def test_tables_do_not_look_ahead(short_frame):
    base, valid_from = build_obs_tables(short_frame, 15, 10, 10)
    assert valid_from == 959  # 10 full UTC days (the frame starts at midnight); features need 673 bars
    for t in probe_rows(short_frame):
        moved, _ = build_obs_tables(perturb_after(short_frame, t, seed=t), 15, 10, 10)
        for key in base:
            np.testing.assert_array_equal(moved[key][:t + 1], base[key][:t + 1], err_msg=f"{key} row {t}")


def test_table_definitions(short_frame):
    tables, _ = build_obs_tables(short_frame, 4, 3, 2)
    close = short_frame["close"].to_numpy()
    t = 1500
    np.testing.assert_allclose(tables["price_bars"][t], np.log(close[t - 3:t + 1] / close[t]))
    assert tables["price_bars"][t, -1] == 0
    # the last completed day at row t is the one whose 23:45 bar is <= t
    last_end = max(i for i in range(t + 1) if short_frame.index[i].strftime("%H:%M") == "23:45")
    ends = [last_end - 192, last_end - 96, last_end]
    np.testing.assert_allclose(tables["price_1d"][t], np.log(close[ends] / close[t]))
    np.testing.assert_allclose(tables["premium"][t], short_frame["premium"].to_numpy()[ends[1:]])
    assert np.isnan(tables["price_bars"][2]).any()


def test_build_market_shapes_and_spec(short_frame):
    md = build_market(short_frame, split_cfg=SPLIT, window_bars=12, window_1d=5, window_premium=6,
                      source_manifest={"source": "synthetic"})
    assert set(md.tensors) == {"train", "val"}
    spec = md.spec
    assert isinstance(spec, ObsSpec) and spec.feature_names == FEATURE_NAMES
    assert spec["price_bars"] == (12,) and spec["price_1d"] == (5,) and spec["premium"] == (6,)
    assert spec["account"] == (3,) and spec["features"] == (len(FEATURE_NAMES),)
    train, val = md.tensors["train"], md.tensors["val"]
    assert isinstance(train, MarketTensors) and train.name == "train" and val.name == "val"
    assert train.valid_from > 0 and val.valid_from == 0
    for mt in (train, val):
        for key in ("price_bars", "price_1d", "premium", "features"):
            table = mt.obs[key]
            assert table.dtype == torch.float32 and table.shape == (mt.n_bars, *spec[key])
            assert torch.isfinite(table).all() and (table[: mt.valid_from] == 0).all()
        assert mt.close.dtype == torch.float64 and mt.times.dtype == np.dtype("datetime64[ns]")
        assert len(mt.times) == mt.n_bars
    b = split_frame(short_frame, **SPLIT)
    assert md.split_bounds == {"train": b["train"], "val": b["val"]}
    assert train.n_bars == b["train"][1] and val.n_bars == b["val"][1] - b["val"][0]
    np.testing.assert_array_equal(val.close.numpy(), short_frame["close"].to_numpy()[slice(*b["val"])])
    assert md.manifest["source"] == "synthetic" and md.manifest["splits"]["val"]["rows"] == val.n_bars
    assert md.manifest["market"]["windows"] == {"window_bars": 12, "window_1d": 5, "window_premium": 6}
    # the train rows after valid_from are standardised
    feats = train.obs["features"][train.valid_from:].double()
    assert feats.mean(0).abs().max() < 0.05 and ((feats.std(0) - 1).abs() < 0.2).all()


def test_val_rows_see_history_from_train(short_frame):
    md = build_market(short_frame, split_cfg=SPLIT)
    tables, _ = build_obs_tables(short_frame.iloc[: md.split_bounds["val"][1]])
    start = md.split_bounds["val"][0]
    for key in ("price_bars", "price_1d", "premium", "features"):
        expect = md.normalizer.normalize(key, tables[key][start:start + 5])
        torch.testing.assert_close(md.tensors["val"].obs[key][:5], expect)


def test_normaliser_is_fitted_on_train_only(short_frame):
    b = split_frame(short_frame, **SPLIT)
    md = build_market(short_frame, split_cfg=SPLIT, splits=("train", "val", "test"))
    changed = perturb_after(short_frame, b["train"][1] - 1, seed=5)
    md2 = build_market(changed, split_cfg=SPLIT, splits=("train", "val", "test"))
    for k, v in md.normalizer.state_dict().items():
        assert torch.equal(torch.as_tensor(v), torch.as_tensor(md2.normalizer.state_dict()[k])), k
    assert not torch.equal(md.tensors["val"].obs["price_bars"], md2.tensors["val"].obs["price_bars"])
    md3 = build_market(perturb_after(short_frame, b["train"][1] - 50, seed=5), split_cfg=SPLIT)
    assert not torch.equal(md.normalizer.state_dict()["std.features"], md3.normalizer.state_dict()["std.features"])


def test_fit_never_reads_after_val_end(short_frame):
    b = split_frame(short_frame, **SPLIT)
    poisoned = short_frame.copy()
    val_end = b["val"][1]
    poisoned.iloc[val_end:, :] = np.nan  # garbage in the test period
    poisoned.iloc[val_end + 3, poisoned.columns.get_loc("close")] = -1.0
    md = build_market(poisoned, split_cfg=SPLIT, splits=("train", "val"), validate=True)
    clean = build_market(short_frame, split_cfg=SPLIT, splits=("train", "val"))
    assert md.frame is not None and len(md.frame) == val_end
    for name in ("train", "val"):
        for key, table in clean.tensors[name].obs.items():
            assert torch.equal(md.tensors[name].obs[key], table)
    with pytest.raises(UserError):  # asking for test does read it, and the strict check refuses
        build_market(poisoned, split_cfg=SPLIT, splits=("train", "val", "test"))


def test_train_too_short_for_warm_up(short_frame):
    with pytest.raises(UserError, match="warm-up"):
        build_market(short_frame, split_cfg={"train_frac": 0.3, "val_frac": 0.2})


def test_windows_mapping_and_unknown_key(short_frame):
    md = build_market(short_frame, SPLIT, {"window_bars": 8})
    assert md.spec["price_bars"] == (8,)
    with pytest.raises(UserError, match="unknown window option"):
        build_market(short_frame, SPLIT, {"window_1h": 8})


def test_normaliser_state_dict_round_trip(short_frame):
    md = build_market(short_frame, split_cfg=SPLIT)
    sd = md.normalizer.state_dict()
    restored = Normalizer.from_state_dict(sd)
    x = np.random.default_rng(0).normal(size=(7, len(FEATURE_NAMES)))
    torch.testing.assert_close(restored.normalize("features", x), md.normalizer.normalize("features", x))
    assert restored.normalize("features", np.full((1, len(FEATURE_NAMES)), 1e9)).max() == restored.clip


@pytest.mark.parametrize("extra", [(), ("premium_ema_gap_4h", "jump_decayed_frac")])
def test_live_builder_equals_batch_rows(short_frame, extra):
    md = build_market(short_frame, split_cfg=SPLIT, extra_features=extra)
    assert md.spec.shapes["features"] == (len(FEATURE_NAMES) + len(extra),)
    builder = md.observation_builder()
    start, end = md.split_bounds["val"]
    builder.warm_up(short_frame.iloc[:start])
    assert builder.ready
    val = md.tensors["val"]
    for j, (ts, row) in enumerate(zip(short_frame.index[start:start + 200],
                                      short_frame.iloc[start:start + 200].itertuples(index=False))):
        obs = builder.observe({"time": ts, **row._asdict()})
        for key, table in obs.items():
            assert table.shape == (1, table.shape[1])
            torch.testing.assert_close(table[0], val.obs[key][j], rtol=1e-5, atol=1e-5)
    # a restart from state continues identically
    clone = ObservationBuilder(**md.windows, normalizer=md.normalizer, extra_features=extra)
    clone.load_state_dict(builder.state_dict())
    ts, row = short_frame.index[start + 200], short_frame.iloc[start + 200]
    bar = {"time": ts, **row.to_dict()}
    a, b2 = clone.update(bar), builder.update(bar)
    for key in a:
        np.testing.assert_array_equal(a[key], b2[key])


def test_build_market_two_years_is_fast(synthetic_frame):
    t0 = time.perf_counter()
    md = build_market(synthetic_frame, split_cfg={})
    elapsed = time.perf_counter() - t0
    assert md.tensors["train"].n_bars == int(len(synthetic_frame) * 0.7)
    assert elapsed < 10.0, f"build_market took {elapsed:.1f}s"


def test_device_and_times_are_utc(short_frame):
    md = build_market(short_frame, split_cfg=SPLIT, device="cpu")
    t = md.tensors["train"]
    assert t.device == torch.device("cpu")
    assert pd.Timestamp(t.times[0]) == short_frame.index[0].tz_localize(None)


def test_a_premium_of_another_basis_reaches_the_tensors(short_frame):
    """``premium_basis=btc``: the source's premium is what features, env and baselines see, not close / fx - 1."""
    frame = short_frame.copy()
    btc = frame["close"] / frame["fx"] - 1.0 + 0.02 + 0.01 * np.sin(np.arange(len(frame)) / 300.0)
    frame["premium"] = btc
    md = build_market(frame, split_cfg=SPLIT, window_bars=12, window_1d=5, window_premium=6)
    train = md.tensors["train"]
    n = train.premium.shape[0]
    np.testing.assert_allclose(train.premium.cpu().numpy(), btc.to_numpy()[:n], rtol=0, atol=1e-6)
    usdt_md = build_market(short_frame, split_cfg=SPLIT, window_bars=12, window_1d=5, window_premium=6)
    assert not torch.allclose(md.tensors["train"].obs["premium"], usdt_md.tensors["train"].obs["premium"])

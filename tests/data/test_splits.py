"""Splits: ordered, non-overlapping, dates win over fractions, empty/inverted refused."""

from __future__ import annotations

import pytest

from kpremia.core.errors import UserError
from kpremia.data.splits import bounds_to_dict, split_frame, split_from_config


@pytest.fixture
def frame(bars):
    return bars(1000)  # 2024-01-01 00:00 .. 2024-01-11 09:45


def test_fractions_ordered_and_covering(frame):
    b = split_frame(frame)
    assert b == {"train": (0, 700), "val": (700, 850), "test": (850, 1000)}
    parts = {name: frame.iloc[start:end] for name, (start, end) in b.items()}
    assert parts["train"].index[-1] < parts["val"].index[0] and parts["val"].index[-1] < parts["test"].index[0]
    assert sum(len(p) for p in parts.values()) == len(frame)


def test_embargo_leaves_gaps(frame):
    b = split_frame(frame, embargo_bars=10)
    assert b["val"][0] == b["train"][1] + 10 and b["test"][0] == b["val"][1] + 10
    assert b["val"][1] - b["val"][0] == 150


def test_dates_win_over_fractions(frame):
    b = split_frame(frame, train_end="2024-01-05", val_end="2024-01-08T12:00", train_frac=0.1)
    assert frame.index[b["train"][1] - 1] < frame.index[b["train"][1]]
    assert str(frame.index[b["train"][1]]) == "2024-01-05 00:00:00+00:00"
    assert str(frame.index[b["val"][1]]) == "2024-01-08 12:00:00+00:00"
    assert b["test"] == (b["val"][1], 1000)
    # a date with a zone is converted to UTC
    b2 = split_frame(frame, train_end="2024-01-05T09:00+09:00", val_end="2024-01-08T12:00")
    assert b2 == b


def test_train_end_date_with_val_fraction(frame):
    b = split_frame(frame, train_end="2024-01-05", val_frac=0.1)
    assert b["val"] == (b["train"][1], b["train"][1] + 100)


def test_inverted_and_empty_splits_refused(frame):
    with pytest.raises(UserError, match="not after train_end"):
        split_frame(frame, train_end="2024-01-06", val_end="2024-01-05")
    with pytest.raises(UserError, match="train split is empty"):
        split_frame(frame, train_end="2023-06-01")
    with pytest.raises(UserError, match="val split is empty"):
        split_frame(frame, train_frac=1.0, val_frac=0.0)
    with pytest.raises(UserError, match="test split is empty"):
        split_frame(frame, val_end="2030-01-01", require=("train", "val", "test"))
    b = split_frame(frame, val_end="2030-01-01")  # an empty test is fine when not required
    assert b["test"] == (1000, 1000)
    with pytest.raises(UserError, match="not a date"):
        split_frame(frame, train_end="someday")


@pytest.mark.parametrize("kw", [{"train_frac": 0.0}, {"train_frac": 0.9, "val_frac": 0.2}, {"embargo_bars": -1}])
def test_bad_options_refused(frame, kw):
    with pytest.raises(UserError):
        split_frame(frame, **kw)


def test_config_mapping_and_manifest(frame):
    b = split_from_config(frame, {"train_frac": 0.5, "val_frac": 0.25})
    assert b["val"] == (500, 750)
    with pytest.raises(UserError, match="unknown split option"):
        split_from_config(frame, {"train_fraction": 0.5})
    d = bounds_to_dict(frame, b)
    assert d["val"]["rows"] == 250 and d["val"]["first_bar"] == frame.index[500].isoformat()

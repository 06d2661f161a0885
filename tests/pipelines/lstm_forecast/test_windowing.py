"""Splits by record and by time, a training-only scaler, and windows inside segments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medlstm.pipelines.lstm_forecast.windowing import (
    assert_honest_split,
    check_series_table,
    fit_scaler,
    make_windows,
    split_series,
)

from .factories import make_series

BY_RECORD = {"test_series": ["c"], "val_series": ["b"]}
BY_TIME = {
    "test_series": [],
    "test_fraction": 0.2,
    "val_series": [],
    "val_fraction": 0.25,
}


class TestSplitSeries:
    def test_by_record_holds_out_whole_series(self):
        split, summary = split_series(
            make_series({"a": 50, "b": 40, "c": 30}), BY_RECORD
        )
        segments = split.groupby("series_id")["segment"].unique().to_dict()
        assert segments == {"a": ["train"], "b": ["val"], "c": ["test"]}
        assert summary["series"] == {"train": ["a"], "val": ["b"], "test": ["c"]}
        assert summary["n_values"] == {"train": 50, "val": 40, "test": 30}

    def test_by_time_cuts_each_series_in_time_order(self):
        split, summary = split_series(make_series({"a": 100, "b": 60}), BY_TIME)
        a = split[split["series_id"] == "a"]
        # Last 20 % test, then the last 25 % of the remaining 80 for validation.
        assert a["segment"].tolist() == ["train"] * 60 + ["val"] * 20 + ["test"] * 20
        for _, group in split.groupby("series_id"):
            for earlier, later in (("train", "val"), ("val", "test")):
                last = group.loc[group["segment"] == earlier, "time"].max()
                assert last < group.loc[group["segment"] == later, "time"].min()
        assert summary["test"].startswith("by_time")

    def test_validation_tail_of_training_records(self):
        params = {"test_series": ["c"], "val_series": [], "val_fraction": 0.2}
        split, _ = split_series(make_series({"a": 50, "b": 50, "c": 30}), params)
        a = split[split["series_id"] == "a"]["segment"].tolist()
        assert a == ["train"] * 40 + ["val"] * 10
        assert set(split.loc[split["series_id"] == "c", "segment"]) == {"test"}

    def test_unknown_series_is_an_error(self):
        with pytest.raises(
            ValueError, match=r"test_series names series not in the data: \['z'\]"
        ):
            split_series(
                make_series({"a": 50, "b": 50}),
                {"test_series": ["z"], "val_fraction": 0.2},
            )

    def test_overlapping_lists_are_an_error(self):
        params = {"test_series": ["a"], "val_series": ["a"]}
        with pytest.raises(ValueError, match="share"):
            split_series(make_series({"a": 50, "b": 50}), params)

    def test_no_training_series_left_is_an_error(self):
        params = {"test_series": ["a"], "val_series": ["b"]}
        with pytest.raises(ValueError, match="no series for training"):
            split_series(make_series({"a": 50, "b": 50}), params)

    def test_fraction_needed_without_list(self):
        with pytest.raises(ValueError, match=r"test_fraction must be in \(0, 1\)"):
            split_series(
                make_series({"a": 50}), {"test_series": [], "val_fraction": 0.2}
            )

    def test_invalid_table_is_an_error(self):
        series = make_series({"a": 10})
        series.loc[3, "value"] = np.nan
        with pytest.raises(ValueError, match="1 missing or non-finite"):
            split_series(series, BY_TIME)


class TestAssertHonestSplit:
    def _split(self) -> pd.DataFrame:
        split, _ = split_series(make_series({"a": 40, "b": 40, "c": 40}), BY_RECORD)
        return split

    def test_accepts_the_split_it_was_given(self):
        assert_honest_split(self._split(), {"test": ["c"], "val": ["b"]})

    def test_rejects_a_test_record_with_training_data(self):
        split = self._split()
        split.loc[split["series_id"] == "c", "segment"] = ["train"] * 10 + ["test"] * 30
        with pytest.raises(AssertionError, match="'c' is held out as test"):
            assert_honest_split(split, {"test": ["c"], "val": ["b"]})

    def test_rejects_segments_out_of_time_order(self):
        split = self._split()
        index = split.index[split["series_id"] == "a"]
        split.loc[index[:5], "segment"] = "test"
        with pytest.raises(AssertionError, match="not in time order"):
            assert_honest_split(split, {})

    def test_rejects_an_empty_segment(self):
        split = self._split()
        split.loc[split["segment"] == "val", "segment"] = "train"
        with pytest.raises(AssertionError, match="val segment is empty"):
            assert_honest_split(split, {})


def test_check_series_table_refuses_unordered_time():
    series = make_series({"a": 10})
    series.loc[[4, 5], "time"] = [5.0, 4.0]
    with pytest.raises(ValueError, match="'a' are not strictly increasing"):
        check_series_table(series, "forecast_series")


class TestFitScaler:
    def test_uses_the_training_segment_only(self):
        split, _ = split_series(make_series({"a": 60, "b": 40, "c": 40}), BY_RECORD)
        scaler = fit_scaler(split)
        train = split.loc[split["segment"] == "train", "value"]
        assert scaler["mean"] == pytest.approx(train.mean())
        assert scaler["std"] == pytest.approx(train.std(ddof=0))
        shifted = split.assign(
            value=split["value"].where(split["segment"] == "train", 1e6)
        )
        assert fit_scaler(shifted) == scaler

    def test_constant_training_data_is_an_error(self):
        split, _ = split_series(make_series({"a": 60, "b": 40, "c": 40}), BY_RECORD)
        split.loc[split["segment"] == "train", "value"] = 5.0
        with pytest.raises(ValueError, match="constant"):
            fit_scaler(split)


class TestMakeWindows:
    def test_shapes_and_content(self):
        split, _ = split_series(make_series({"a": 30, "b": 20, "c": 12}), BY_RECORD)
        windows = make_windows(split, {"lookback": 5, "horizon": 3, "train_stride": 1})
        assert {k: w.x.shape for k, w in windows.items()} == {
            "train": (23, 5),
            "val": (13, 5),
            "test": (5, 5),
        }
        c = split.loc[split["series_id"] == "c"]
        np.testing.assert_array_equal(windows["test"].x[1], c["value"].iloc[1:6])
        np.testing.assert_array_equal(windows["test"].y[1], c["value"].iloc[6:9])
        np.testing.assert_array_equal(
            windows["test"].target_time[1], c["time"].iloc[6:9]
        )
        assert set(windows["test"].series_id) == {"c"}

    def test_windows_never_cross_a_segment_boundary(self):
        split, _ = split_series(make_series({"a": 100}), BY_TIME)
        # Mark each segment by value so any mixed window shows up.
        marked = split.assign(
            value=split["segment"].map({"train": 1.0, "val": 2.0, "test": 3.0})
        )
        windows = make_windows(marked, {"lookback": 6, "horizon": 2})
        for segment, mark in (("train", 1.0), ("val", 2.0), ("test", 3.0)):
            assert (windows[segment].x == mark).all()
            assert (windows[segment].y == mark).all()

    def test_dates_as_times(self):
        series = make_series({"a": 30})
        series["time"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(
            series["time"], unit="s"
        )
        split, _ = split_series(series, BY_TIME)
        windows = make_windows(split, {"lookback": 4, "horizon": 2})
        assert np.issubdtype(windows["test"].target_time.dtype, np.datetime64)
        assert windows["test"].target_time[-1, -1] == series["time"].iloc[-1]

    def test_stride_thins_training_but_not_test_windows(self):
        split, _ = split_series(make_series({"a": 40, "b": 40, "c": 40}), BY_RECORD)
        dense = make_windows(split, {"lookback": 5, "horizon": 2, "train_stride": 1})
        thin = make_windows(split, {"lookback": 5, "horizon": 2, "train_stride": 4})
        assert len(thin["train"]) == -(-len(dense["train"]) // 4)
        assert len(thin["test"]) == len(dense["test"])

    def test_short_segment_is_an_error_naming_it(self):
        split, _ = split_series(make_series({"a": 40, "b": 40, "c": 7}), BY_RECORD)
        with pytest.raises(
            ValueError, match=r"'c': its test segment has 7 values.*= 8"
        ):
            make_windows(split, {"lookback": 5, "horizon": 3})

    def test_invalid_sizes(self):
        split, _ = split_series(make_series({"a": 40, "b": 40, "c": 40}), BY_RECORD)
        with pytest.raises(ValueError, match=">= 1"):
            make_windows(split, {"lookback": 0, "horizon": 3})

"""Tachograms from WFDB annotations and the CSV source: values, counted fills, clear errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medlstm.pipelines.lstm_forecast.ingestion import build_tachograms, csv_to_series

from .factories import make_record

MITDB = Path(__file__).resolve().parents[4] / "shared" / "data" / "mitdb"


@pytest.fixture
def tachogram_params(params: dict) -> dict:
    return dict(params["mitdb"]["tachogram"])


class TestBuildTachograms:
    def test_rr_intervals_between_beats_only(self, tachogram_params):
        # Beats every 288 samples (800 ms at 360 Hz); '+' and '~' are not beats.
        record = make_record(
            "100", [0, 100, 288, 576, 600, 864], ["N", "+", "N", "V", "~", "N"]
        )
        series, report = build_tachograms({"100": record}, tachogram_params)
        np.testing.assert_allclose(series["value"], [800.0, 800.0, 800.0])
        np.testing.assert_allclose(series["time"], [288 / 360, 576 / 360, 864 / 360])
        assert set(series["series_id"]) == {"100"}
        stats = report["per_series"]["100"]
        assert stats["n_beats"] == 4
        assert stats["n_non_beat_annotations"] == 2
        assert report["unit"] == "ms"

    def test_out_of_range_interval_is_interpolated_and_counted(self, tachogram_params):
        # 0, 288, 576, then a 7 s gap (> rr_max_ms), then 288-sample beats again.
        beats = [0, 288, 576, 576 + 2520, 576 + 2520 + 288, 576 + 2520 + 576]
        record = make_record("200", beats, ["N"] * len(beats))
        series, report = build_tachograms({"200": record}, tachogram_params)
        assert series["value"].max() == pytest.approx(800.0)
        assert report["per_series"]["200"]["n_out_of_range_rr_interpolated"] == 1
        assert report["totals"]["n_out_of_range_rr_interpolated"] == 1

    def test_interval_spanning_flutter_episode_is_a_gap(self, tachogram_params):
        samples = [0, 288, 576, 700, 800, 900, 1400, 1688, 1976]
        symbols = ["N", "N", "N", "[", "!", "]", "N", "N", "N"]
        series, report = build_tachograms(
            {"207": make_record("207", samples, symbols)}, tachogram_params
        )
        stats = report["per_series"]["207"]
        assert stats["n_gap_rr_interpolated"] == 1
        assert stats["n_out_of_range_rr_interpolated"] == 0
        # The 824-sample interval across the episode is replaced by its neighbours' 800 ms.
        np.testing.assert_allclose(series["value"], 800.0)

    def test_ectopic_intervals_replaced_only_when_asked(self, tachogram_params):
        # Premature V beat: short RR then a compensatory pause.
        samples = [0, 288, 576, 720, 1152, 1440, 1728]
        symbols = ["N", "N", "N", "V", "N", "N", "N"]
        record = {"119": make_record("119", samples, symbols)}
        kept, kept_report = build_tachograms(record, tachogram_params)
        assert kept["value"].min() == pytest.approx(400.0)
        assert kept_report["totals"]["n_ectopic_rr_interpolated"] == 0

        nn, nn_report = build_tachograms(
            record, {**tachogram_params, "replace_ectopic": True}
        )
        assert nn_report["totals"]["n_ectopic_rr_interpolated"] == 2
        np.testing.assert_allclose(nn["value"], 800.0)

    def test_resampled_heart_rate_on_regular_grid(self, tachogram_params):
        beats = np.arange(0, 360 * 20, 270)  # 750 ms -> 80 bpm
        record = make_record("101", beats.tolist(), ["N"] * len(beats))
        series, report = build_tachograms(
            {"101": record}, {**tachogram_params, "resample_hz": 2.0}
        )
        np.testing.assert_allclose(np.diff(series["time"]), 0.5)
        np.testing.assert_allclose(series["value"], 80.0)
        assert report["unit"] == "bpm"

    def test_too_few_beats_names_the_file(self, tachogram_params):
        record = make_record("102", [0, 300], ["N", "N"])
        with pytest.raises(ValueError, match=r"/data/102\.hea: only 2 beat"):
            build_tachograms({"102": record}, tachogram_params)

    def test_unordered_beats_name_the_file(self, tachogram_params):
        record = make_record("104", [0, 600, 300, 900], ["N"] * 4)
        with pytest.raises(ValueError, match=r"104\.hea: beat annotations are not"):
            build_tachograms({"104": record}, tachogram_params)

    def test_empty_dataset(self, tachogram_params):
        with pytest.raises(ValueError, match="empty"):
            build_tachograms({}, tachogram_params)

    @pytest.mark.skipif(not MITDB.is_dir(), reason="needs ../shared/data/mitdb")
    def test_real_record_matches_wfdb_annotations(self, tachogram_params):
        wfdb = pytest.importorskip("wfdb")
        ann = wfdb.rdann(str(MITDB / "232"), "atr")
        symbols = np.asarray(ann.symbol, dtype=str)
        record = make_record("232", ann.sample.tolist(), symbols.tolist())
        series, report = build_tachograms({"232": record}, tachogram_params)
        beats = ann.sample[np.isin(symbols, tachogram_params["beat_symbols"])]
        assert len(series) == len(beats) - 1
        # 232's long sinus pauses (up to 5.9 s) are real rhythm and are kept as they are.
        assert report["totals"]["n_out_of_range_rr_interpolated"] == 0
        assert series["value"].max() > 5000
        np.testing.assert_allclose(series["value"], np.diff(beats) / 0.36)


def _csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text))


@pytest.fixture
def csv_params() -> dict:
    return {
        "time_column": "t",
        "value_column": "hr",
        "series_column": None,
        "series_name": "patient",
        "missing": "error",
        "unit": "bpm",
    }


class TestCsvToSeries:
    def test_numeric_time_single_series(self, csv_params):
        series, report = csv_to_series(_csv("t,hr\n0,60\n1,61\n2,62\n"), csv_params)
        assert list(series.columns) == ["series_id", "time", "value"]
        assert series["series_id"].unique().tolist() == ["patient"]
        np.testing.assert_allclose(series["value"], [60, 61, 62])
        assert report["unit"] == "bpm"
        assert report["totals"]["n_missing_interpolated"] == 0

    def test_dates_and_series_column(self, csv_params):
        table = _csv(
            "id,t,hr\n"
            "a,2024-01-01 00:00:00,60\nb,2024-01-01 00:00:00,70\n"
            "a,2024-01-01 00:00:05,61\nb,2024-01-01 00:00:05,71\n"
        )
        series, report = csv_to_series(table, {**csv_params, "series_column": "id"})
        assert pd.api.types.is_datetime64_any_dtype(series["time"])
        assert series.groupby("series_id")["value"].apply(list).to_dict() == {
            "a": [60, 61],
            "b": [70, 71],
        }
        assert report["totals"]["n_series"] == 2

    def test_missing_value_is_an_error_by_default(self, csv_params):
        with pytest.raises(
            ValueError, match=r"1 missing value.*lines 3\b.*interpolate"
        ):
            csv_to_series(_csv("t,hr\n0,60\n1,\n2,62\n"), csv_params)

    def test_missing_values_interpolated_in_time_and_counted(self, csv_params):
        table = _csv("t,hr\n0,60\n1,\n3,\n4,68\n5,\n")
        series, report = csv_to_series(table, {**csv_params, "missing": "interpolate"})
        # Linear in time between 60 at t=0 and 68 at t=4; the last value takes its neighbour.
        np.testing.assert_allclose(series["value"], [60, 62, 66, 68, 68])
        assert report["per_series"]["patient"]["n_missing_interpolated"] == 3

    def test_non_numeric_value_is_an_error_with_line(self, csv_params):
        with pytest.raises(ValueError, match=r"non-numeric.*'6l'.*lines 3"):
            csv_to_series(_csv("t,hr\n0,60\n1,6l\n2,62\n"), csv_params)

    def test_infinite_value_is_an_error(self, csv_params):
        with pytest.raises(ValueError, match="infinite"):
            csv_to_series(_csv("t,hr\n0,60\n1,inf\n2,62\n"), csv_params)

    def test_time_going_back_is_an_error_with_line(self, csv_params):
        with pytest.raises(ValueError, match=r"goes back at line 4"):
            csv_to_series(_csv("t,hr\n0,60\n2,61\n1,62\n"), csv_params)

    def test_repeated_time_is_an_error(self, csv_params):
        with pytest.raises(ValueError, match=r"repeats at line 3"):
            csv_to_series(_csv("t,hr\n0,60\n0,61\n1,62\n"), csv_params)

    def test_unparseable_time_is_an_error(self, csv_params):
        with pytest.raises(ValueError, match=r"neither numbers nor dates.*'soon'"):
            csv_to_series(_csv("t,hr\n2024-01-01,60\nsoon,61\n"), csv_params)

    def test_missing_time_is_an_error(self, csv_params):
        with pytest.raises(ValueError, match=r"missing time value.*lines 3"):
            csv_to_series(_csv("t,hr\n0,60\n,61\n2,62\n"), csv_params)

    def test_absent_column_lists_the_columns(self, csv_params):
        with pytest.raises(
            ValueError, match=r"no column\(s\) \['hr'\].*\['t', 'bpm'\]"
        ):
            csv_to_series(_csv("t,bpm\n0,60\n"), csv_params)

    def test_unknown_missing_policy(self, csv_params):
        with pytest.raises(ValueError, match="'error' or 'interpolate'"):
            csv_to_series(_csv("t,hr\n0,60\n"), {**csv_params, "missing": "drop"})

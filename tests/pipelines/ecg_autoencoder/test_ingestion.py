"""Ingestion nodes: lead choice, cleaning, windows, labels, RR features, bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from medlstm.pipelines.ecg_autoencoder.ingestion import (
    segment_records,
)
from medlstm.pipelines.ecg_autoencoder.preprocessing import (
    clean_signal,
    resample,
    rr_intervals,
)
from medlstm.pipelines.ecg_autoencoder.segmentation import (
    SegmentationParams,
    record_template,
)
from tests.pipelines.ecg_autoencoder.conftest import make_record


def test_windows_are_cut_around_r_peaks_of_the_named_lead(params):
    # Leads stored "swapped" (like record 114): MLII is second, and only it is positive.
    record = make_record(leads=("V5", "MLII"))
    params["ingestion"]["subtract_template"] = False
    beats, windows, _ = segment_records({"900": record}, params["ingestion"])

    x = windows["windows"]
    before = params["ingestion"]["samples_before"]
    assert x.shape[1] == before + params["ingestion"]["samples_after"] == 288
    assert x.dtype == np.float32
    assert (x.argmax(axis=1) == before).all()  # positive peak at the R position
    assert (x[:, before] > 0.5).all()
    assert set(beats["lead"]) == {"MLII"}
    np.testing.assert_array_equal(windows["sample"], beats["sample"].to_numpy())
    np.testing.assert_array_equal(
        windows["record"], beats["record"].to_numpy(dtype=str)
    )


def test_missing_lead_is_skipped_and_reported(params):
    records = {"900": make_record("900"), "902": make_record("902", leads=("V5", "V2"))}
    beats, _, report = segment_records(records, params["ingestion"])

    assert set(beats["record"]) == {"900"}
    assert report["skipped_records"] == {"902": "no lead MLII"}


def test_missing_lead_can_fall_back_to_the_other_lead(params):
    params["ingestion"]["missing_lead"] = "other"
    beats, _, report = segment_records(
        {"902": make_record("902", leads=("V5", "V2"))}, params["ingestion"]
    )
    assert set(beats["lead"]) == {"V5"}
    assert report["records"]["902"]["lead"] == "V5"


def test_aami_labels_and_non_beat_annotations(params):
    record = make_record(
        symbols=["N", "A", "N", "V", "L", "/", "F", "j"],
        extra_annotations=[(1.0, "+"), (5.0, "~"), (7.0, "|")],
    )
    beats, _, report = segment_records({"900": record}, params["ingestion"])

    by_symbol = dict(zip(beats["symbol"], beats["label"], strict=True))
    assert by_symbol == {
        "N": "N",
        "A": "S",
        "V": "V",
        "L": "N",
        "/": "Q",
        "F": "F",
        "j": "N",
    }
    assert report["totals"]["non_beat_annotations"] == 3
    assert "+" not in set(beats["symbol"])


def test_raw_symbol_mapping(params):
    params["ingestion"]["label_mapping"] = {"N": ["N"], "A": ["A"], "V": ["V"]}
    record = make_record(symbols=["N", "A", "V"])
    beats, _, _ = segment_records({"900": record}, params["ingestion"])
    assert (beats["label"] == beats["symbol"]).all()


def test_unknown_symbol_fails_naming_the_record(params):
    record = make_record(symbols=["N", "N", "Z"])
    with pytest.raises(
        ValueError, match=r"/synthetic/900\.hea: unknown annotation symbol.*'Z'"
    ):
        segment_records({"900": record}, params["ingestion"])


def test_unknown_symbol_can_be_skipped_and_counted(params):
    params["ingestion"]["unknown_symbol"] = "skip"
    record = make_record(symbols=["N", "N", "Z"])
    beats, _, report = segment_records({"900": record}, params["ingestion"])
    n_z = int((record.ann_symbols == "Z").sum())
    assert report["totals"]["skipped_unknown_symbol"] == n_z > 0
    assert "Z" not in set(beats["symbol"])


def test_edge_beats_and_beats_without_neighbours_are_dropped_and_counted(params):
    # Beats at 0.1 s (too close to the start) and at 9.9 s (too close to the end).
    times = np.array([0.1, 1.0, 2.0, 3.0, 4.0, 9.9])
    record = make_record(seconds=10.0, beat_times=times)
    beats, _, report = segment_records({"900": record}, params["ingestion"])

    counts = report["records"]["900"]
    assert counts["labelled_beats"] == 6
    assert counts["dropped_edge"] == 2
    # 1.0 s is now the first windowable beat but still has a predecessor (0.1 s).
    assert beats["sample"].tolist() == [360, 720, 1080, 1440]
    assert counts["kept"] == 4


def test_record_shorter_than_a_window_keeps_nothing_but_others_survive(params):
    short = make_record("901", seconds=0.5, beat_times=np.array([0.2, 0.35]))
    beats, _, report = segment_records(
        {"900": make_record(), "901": short}, params["ingestion"]
    )
    assert report["records"]["901"]["kept"] == 0
    assert report["records"]["901"]["dropped_edge"] == 2
    assert set(beats["record"]) == {"900"}


def test_no_beat_at_all_is_an_error(params):
    short = make_record("901", seconds=0.5, beat_times=np.array([0.2, 0.35]))
    with pytest.raises(ValueError, match="No beat was kept"):
        segment_records({"901": short}, params["ingestion"])


def test_nan_stretch_drops_overlapping_beats(params):
    record = make_record(seconds=20.0)
    record.signals["MLII"][int(5 * 360) : int(6 * 360)] = np.nan
    beats, windows, report = segment_records({"900": record}, params["ingestion"])

    dropped = report["records"]["900"]["dropped_nan"]
    assert dropped >= 1
    assert np.isfinite(windows["windows"]).all()
    kept_s = beats["sample"].to_numpy() / 360
    assert not ((kept_s > 4.5) & (kept_s < 6.5)).any()


def test_template_subtraction_leaves_the_departure_from_the_typical_beat(params):
    record = make_record(seconds=30.0, symbols=["N", "N", "N", "V"])
    params["ingestion"]["subtract_template"] = False
    _, raw, _ = segment_records({"900": record}, params["ingestion"])
    params["ingestion"]["subtract_template"] = True
    beats, windows, _ = segment_records({"900": record}, params["ingestion"])

    x = windows["windows"]
    is_v = (beats["label"] == "V").to_numpy()
    np.testing.assert_allclose(x[~is_v], 0.0, atol=1e-6)  # N beats equal the template
    np.testing.assert_allclose(
        x[is_v], raw["windows"][is_v] - raw["windows"][~is_v][0], atol=1e-6
    )
    assert np.abs(x[is_v]).max() > 0.5


def test_template_is_the_median_beat_of_the_record():
    normal, ectopic = np.zeros(16), np.ones(16)
    windows = np.stack([ectopic] * 30 + [normal] * 70)
    np.testing.assert_array_equal(record_template(windows), normal)


def test_other_sampling_rates_are_resampled(params):
    record = make_record(fs=250.0, seconds=20.0)
    params["ingestion"]["subtract_template"] = False
    beats, windows, report = segment_records({"900": record}, params["ingestion"])

    assert report["records"]["900"]["resampled_from"] == 250.0
    assert windows["windows"].shape[1] == 288
    before = params["ingestion"]["samples_before"]
    assert (np.abs(windows["windows"].argmax(axis=1) - before) <= 1).all()
    np.testing.assert_allclose(beats["pre_rr"], 0.8, atol=0.01)


def test_resample_moves_annotations_and_nans():
    x = np.sin(np.arange(1000) / 20.0)
    x[500:520] = np.nan
    y, samples = resample(x, np.array([100, 900]), 250.0, 500.0)
    assert len(y) == 2000
    np.testing.assert_array_equal(samples, [200, 1800])
    assert np.isnan(y[1010:1030]).all()
    assert np.isfinite(y[:900]).all()


def test_baseline_wander_is_removed():
    fs = 360.0
    t = np.arange(int(20 * fs)) / fs
    spikes = sum(
        np.exp(-0.5 * ((t - bt) / 0.015) ** 2) for bt in np.arange(0.5, 20, 0.8)
    )
    wander = 0.8 * np.sin(2 * np.pi * 0.2 * t) + 1.5
    cleaned = clean_signal(spikes + wander, fs, (0.2, 0.6))
    assert abs(np.median(cleaned)) < 0.02
    assert np.abs(cleaned - spikes).max() < 0.15


def test_bandpass_option_removes_high_frequency_noise():
    fs = 360.0
    t = np.arange(int(10 * fs)) / fs
    noise = 0.3 * np.sin(2 * np.pi * 120 * t)
    plain = clean_signal(noise, fs, (0.2, 0.6))
    filtered = clean_signal(
        noise,
        fs,
        (0.2, 0.6),
        {"enabled": True, "low_hz": 0.5, "high_hz": 40.0, "order": 3},
    )
    inner = slice(360, -360)  # away from the filters' edge transients
    assert filtered[inner].std() < 0.05 * plain[inner].std()


def test_rr_features_show_prematurity():
    samples = np.array(
        [0, 360, 720, 900, 1440, 1800]
    )  # beat 3 comes early, then a pause
    rr = rr_intervals(samples, 360.0, local_beats=4)

    assert np.isnan(rr["pre_rr"][0]) and np.isnan(rr["post_rr"][-1])
    np.testing.assert_allclose(rr["pre_rr"][1:], [1.0, 1.0, 0.5, 1.5, 1.0])
    assert rr["rr_pre_norm"][3] < 0.6
    assert rr["rr_post_norm"][3] > 1.4
    assert rr["rr_pre_local"][3] < 1.0
    np.testing.assert_allclose(rr["record_rr"], 1.0)


def test_window_scaling_beat_standardises_each_window(params):
    params["ingestion"].update(window_scaling="beat", subtract_template=False)
    _, windows, _ = segment_records({"900": make_record()}, params["ingestion"])
    x = windows["windows"]
    np.testing.assert_allclose(x.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=1), 1, atol=1e-3)


def test_symbol_in_two_classes_is_an_error(params):
    params["ingestion"]["label_mapping"] = {"N": ["N", "A"], "S": ["A"]}
    with pytest.raises(ValueError, match="'A' is mapped to both 'N' and 'S'"):
        SegmentationParams.from_dict(params["ingestion"])


def test_unknown_ingestion_parameter_is_an_error(params):
    params["ingestion"]["windw"] = 3
    with pytest.raises(
        ValueError,
        match=r"Unknown parameter\(s\) ecg_autoencoder\.ingestion\.windw; known: .*spill",
    ):
        SegmentationParams.from_dict(params["ingestion"])


def test_an_ingestion_block_without_a_key_is_an_error_naming_it(params):
    del params["ingestion"]["samples_after"]
    with pytest.raises(ValueError, match=r"lacks \['samples_after'\]"):
        SegmentationParams.from_dict(params["ingestion"])


def test_bad_choice_is_an_error(params):
    params["ingestion"]["missing_lead"] = "guess"
    with pytest.raises(ValueError, match="missing_lead"):
        SegmentationParams.from_dict(params["ingestion"])


def test_an_implausible_heart_rate_warns_naming_the_record(params, caplog):
    """A 360 Hz record whose header says 90 Hz: its beats 0.8 s apart look 3.2 s
    apart (19 bpm), which the report shows and a warning names."""
    true = make_record("905", seconds=40.0)
    wrong = dataclasses.replace(true, fs=90.0)
    _, _, report = segment_records({"905": wrong}, params["ingestion"])
    assert report["records"]["905"]["mean_heart_rate_bpm"] == pytest.approx(18.75)
    assert "Record 905: mean heart rate 19 bpm is outside 25-250 bpm" in caplog.text
    assert "(90 Hz)" in caplog.text
    caplog.clear()
    _, _, report = segment_records({"905": true}, params["ingestion"])
    assert report["records"]["905"]["mean_heart_rate_bpm"] == pytest.approx(75.0)
    assert "mean heart rate" not in caplog.text

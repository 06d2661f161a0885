"""QRS detection, EC57 matching, detected-beat segmentation and scoring."""

from __future__ import annotations

import dataclasses
import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medlstm.datasets.wfdb_records import read_wfdb_record
from medlstm.pipelines.ecg_autoencoder.beat_matching import (
    detection_counts,
    match_beats,
    score_detected_beats,
)
from medlstm.pipelines.ecg_autoencoder.detection import (
    DetectionParams,
    detect,
    detect_beats,
    extra_beats,
    refine_peaks,
    segment_detected_record,
    small_beats,
    window_bounds,
    window_kurtosis,
)
from medlstm.pipelines.ecg_autoencoder.ingestion import (
    segment_databases,
)
from medlstm.pipelines.ecg_autoencoder.segmentation import (
    SegmentationParams,
)
from tests.support.ecg_models import save_tiny_models

EXCERPT = Path(__file__).parents[3] / "data" / "01_raw" / "mitdb_excerpt"
SVDB_EXCERPT = Path(__file__).parents[3] / "data" / "01_raw" / "svdb_excerpt"


def read_first_minute(path: Path):
    """A shipped excerpt record's first minute: the stretch the floors below were
    measured on, and the test's cost does not grow with the excerpt."""
    record = read_wfdb_record(path)
    n = round(60 * record.fs)
    inside = record.ann_samples < n
    return dataclasses.replace(
        record,
        signals={lead: x[:n] for lead, x in record.signals.items()},
        ann_samples=record.ann_samples[inside],
        ann_symbols=record.ann_symbols[inside],
    )


def beat_symbols(params) -> list[str]:
    return [s for group in params["ingestion"]["label_mapping"].values() for s in group]


def reference_beats(record, params) -> np.ndarray:
    return record.ann_samples[np.isin(record.ann_symbols, beat_symbols(params))]


# --- matching ---------------------------------------------------------------------


def test_match_is_one_to_one_and_closest_first():
    # Two detections near one reference beat: only the closer one matches.
    ref_of_det, det_of_ref = match_beats([95, 103], [100], fs=1000)
    assert ref_of_det.tolist() == [-1, 0]
    assert det_of_ref.tolist() == [1]
    # One detection between two reference beats: it takes the closer one only.
    ref_of_det, det_of_ref = match_beats([1140], [1000, 1200], fs=1000)
    assert ref_of_det.tolist() == [1]
    assert det_of_ref.tolist() == [-1, 0]


def test_match_tolerance_edges_are_inclusive():
    fs = 360.0  # 150 ms = 54 samples
    ref_of_det, _ = match_beats([1054, 2055, 2946], [1000, 2000, 3000], fs)
    assert ref_of_det.tolist() == [0, -1, 2]  # 54 in, 55 out, -54 in
    counts = detection_counts([1054, 2055, 2946], [1000, 2000, 3000], fs)
    assert (counts["tp"], counts["fn"], counts["fp"]) == (2, 1, 1)


def test_match_keeps_input_order_and_handles_empty():
    ref_of_det, det_of_ref = match_beats([3000, 1000], [2990, 1010], fs=360)
    assert ref_of_det.tolist() == [0, 1] and det_of_ref.tolist() == [0, 1]
    ref_of_det, det_of_ref = match_beats([], [5, 10], fs=360)
    assert len(ref_of_det) == 0 and det_of_ref.tolist() == [-1, -1]
    counts = detection_counts([], [], fs=360)
    assert counts["tp"] == 0 and np.isnan(counts["se"])


def test_match_does_not_steal_a_beat_matched_closer():
    # The chained case a greedy left-to-right pass gets wrong: detection 0 is 40
    # from ref 0, detection 1 is 10 from ref 0 and 45 from ref 1.
    ref_of_det, _ = match_beats(
        [960, 1010, 1055], [1000, 1100], fs=1000, tolerance_s=0.05
    )
    assert ref_of_det.tolist() == [-1, 0, 1]


# --- detection --------------------------------------------------------------------


@pytest.mark.parametrize("rid", ["100", "119", "208", "233"])
def test_detection_recovers_the_excerpt_reference_beats(rid, params):
    record = read_first_minute(EXCERPT / rid)
    found = detect_beats(record.signals["MLII"], record.fs, params["detection"])
    assert found.columns.tolist()[:2] == ["sample", "noise"]
    assert found["sample"].is_monotonic_increasing
    assert found["sample"].dtype == np.int64 and found["noise"].dtype == bool
    counts = detection_counts(
        found["sample"], reference_beats(record, params), record.fs
    )
    # Measured on the excerpt: at most the first or last beat is missed.
    assert counts["se"] >= 0.97 and counts["ppv"] >= 0.98, counts


def test_detection_on_all_excerpt_records_meets_the_floor(params):
    tp = fn = fp = 0
    for hea in sorted(EXCERPT.glob("*.hea")):
        record = read_first_minute(hea)
        lead = "MLII" if "MLII" in record.signals else next(iter(record.signals))
        found = detect_beats(record.signals[lead], record.fs, params["detection"])
        c = detection_counts(
            found["sample"], reference_beats(record, params), record.fs
        )
        tp, fn, fp = tp + c["tp"], fn + c["fn"], fp + c["fp"]
    assert tp / (tp + fn) >= 0.99 and tp / (tp + fp) >= 0.99, (tp, fn, fp)


def test_detection_at_128_hz_svdb_excerpt(params):
    record = read_first_minute(SVDB_EXCERPT / "800")
    found = detect_beats(record.signals["ECG1"], record.fs, params["detection"])
    counts = detection_counts(
        found["sample"], reference_beats(record, params), record.fs
    )
    assert counts["se"] >= 0.97 and counts["ppv"] >= 0.97, counts


def test_detected_positions_sit_on_the_reference_r_peaks(params):
    record = read_first_minute(EXCERPT / "100")
    ref = reference_beats(record, params)
    found = detect_beats(record.signals["MLII"], record.fs, params["detection"])
    det = found["sample"].to_numpy()
    ref_of_det, _ = match_beats(det, ref, record.fs)
    offsets = det[ref_of_det >= 0] - ref[ref_of_det[ref_of_det >= 0]]
    assert np.mean(np.abs(offsets) <= 1) >= 0.95


def test_refinement_moves_detections_onto_the_reference_peak(params):
    record = read_first_minute(EXCERPT / "100")
    ref = reference_beats(record, params)
    ref = ref[(ref > 50) & (ref < record.n_samples - 50)]
    shifted = ref + np.where(np.arange(len(ref)) % 2, 7, -7)  # ~20 ms off
    p = DetectionParams.from_dict(params["detection"])
    refined = refine_peaks(
        record.signals["MLII"], record.fs, shifted, p.refine_window_s, p.refine_band_hz
    )
    assert np.mean(np.abs(refined - ref) <= 1) >= 0.95
    assert np.abs(refined - ref).mean() < np.abs(shifted - ref).mean() / 4


def test_noise_flags_nan_stretches_without_crashing(params):
    record = read_first_minute(EXCERPT / "100")
    x = record.signals["MLII"].copy()
    x[3600:7200] = np.nan  # seconds 10-20 invalid
    found = detect_beats(x, record.fs, params["detection"])
    inside = (found["sample"] >= 3600) & (found["sample"] < 7200)
    assert found.loc[inside, "noise"].all()
    clean = found["sample"] > 7200 + 400
    assert not found.loc[clean, "noise"].any()
    assert clean.sum() >= 40  # ~74 bpm over the last 38 s


def test_a_flat_stretch_is_flagged_not_fatal(params):
    record = read_first_minute(EXCERPT / "100")
    x = record.signals["MLII"].copy()
    x[3600:7200] = 0.1  # seconds 10-20 flat (a lead off)
    found = detect(x, record.fs, params["detection"])
    assert found.unreadable[3600 + 180 : 7200 - 180].all()
    assert found.analysable_s < 52 and not found.unreadable[-3600:].any()
    clean = found.beats["sample"] > 7200 + 400
    assert clean.sum() >= 40 and not found.beats.loc[clean, "noise"].any()


SHARED = Path(__file__).parents[4] / "shared" / "data"
needs_noise = pytest.mark.skipif(
    not (SHARED / "nstdb_noise" / "em.hea").is_file()
    or not (SHARED / "mitdb" / "100.hea").is_file(),
    reason="needs ../shared/data/mitdb and nstdb_noise",
)


@pytest.mark.parametrize("seconds", [60.0, 64.5, 7.0])
def test_window_kurtosis_equals_scipy_per_window(seconds):
    from scipy import stats

    x = read_wfdb_record(EXCERPT / "203").signals["MLII"][: int(seconds * 360)]
    edges = window_bounds(len(x), 360.0, 10.0)
    expected = [
        stats.kurtosis(x[a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
    np.testing.assert_allclose(window_kurtosis(x, edges), expected, rtol=1e-12)


def test_quality_check_leaves_clean_records_readable(params):
    for rid in ("100", "103", "105"):
        record = read_first_minute(EXCERPT / rid)
        found = detect(record.signals["MLII"], record.fs, params["detection"])
        assert found.analysable_s == 60.0, rid
        assert not found.beats["noise"].any()
        assert len(found.windows) == 6 and found.windows["agreement"].min() >= 0.9


@needs_noise
def test_quality_check_flags_electrode_motion_noise(params):
    from medlstm.pipelines.ecg_autoencoder.noise_stress import noise_stress_record

    record = read_wfdb_record(SHARED / "mitdb" / "100")
    n = 120 * 360
    record = dataclasses.replace(
        record,
        signals={k: v[:n] for k, v in record.signals.items()},
        ann_samples=record.ann_samples[record.ann_samples < n],
        ann_symbols=record.ann_symbols[record.ann_samples < n],
    )
    em = read_wfdb_record(SHARED / "nstdb_noise" / "em", annotation=None)
    # Clean 0-40 s, em at -6 dB 40-80 s, clean 80-120 s.
    built = noise_stress_record(record, em, -6.0, learning_s=40, stretch_s=40)
    found = detect(built.record.signals["MLII"], record.fs, params["detection"])
    assert found.unreadable[built.noisy].mean() >= 0.75
    assert not found.unreadable[: 40 * 360].any()
    assert found.unreadable[~built.noisy].mean() <= 0.15
    inside = built.noisy[found.beats["sample"].to_numpy()]
    assert found.beats.loc[inside, "noise"].mean() >= 0.75
    # Turned off, nothing but the flat/NaN/artefact checks flags the noise.
    off = detect(
        built.record.signals["MLII"],
        record.fs,
        {**params["detection"], "quality_detector": None},
    )
    assert off.windows.empty and off.unreadable[built.noisy].mean() < 0.1


def test_an_unconfirmed_beat_splitting_one_interval_is_extra():
    fs = 100.0
    beats = np.arange(20) * 100  # 1 s apart
    premature = 960  # 0.6 s after its predecessor, then a compensatory pause
    spike = 1450  # a spike halfway between two beats
    samples = np.sort(np.r_[np.delete(beats, 10), premature, spike])
    agreed = samples != spike
    assert samples[extra_beats(samples, agreed, fs, 1.2)].tolist() == [spike]
    # Only detections the second detector missed can be extra; 0 turns it off.
    unconfirmed = np.zeros(len(samples), bool)
    assert samples[extra_beats(samples, unconfirmed, fs, 1.2)].tolist() == [spike]
    assert not extra_beats(samples, agreed, fs, 0.0).any()


def test_an_unconfirmed_beat_far_smaller_than_the_record_s_is_dropped():
    fs = 100.0
    band = np.zeros(2000)
    samples = np.arange(100, 2000, 100)
    band[samples] = 1.0  # QRS peak-to-peak 1
    band[samples[3]] = 0.2  # a spike a fifth of a beat
    band[samples[5]] = 0.5  # a small beat, half of the others
    agreed = np.ones(len(samples), bool)
    agreed[[3, 5]] = False
    small = small_beats(samples, agreed, band, fs, 0.25)
    assert samples[small].tolist() == [samples[3]]
    # Confirmed by the second detector, or with the rule off, nothing is dropped.
    assert not small_beats(samples, np.ones(len(samples), bool), band, fs, 0.25).any()
    assert not small_beats(samples, agreed, band, fs, 0.0).any()


def test_a_detection_block_without_a_key_is_an_error_naming_it(params):
    shipped = dict(params["detection"])
    assert DetectionParams.from_dict(shipped).detector_fs == 120.0
    del shipped["min_agreement"]
    with pytest.raises(ValueError, match=r"lacks \['min_agreement'\]"):
        DetectionParams.from_dict(shipped)


def test_flat_signal_gives_an_empty_result_with_a_warning(params):
    with pytest.warns(UserWarning, match="flat"):
        found = detect_beats(np.zeros(3600), 360.0, params["detection"])
    assert found.empty and list(found.columns) == ["sample", "noise"]


@pytest.mark.parametrize(
    ("signal", "fs", "match"),
    [
        (np.zeros(3000), 50.0, "min_fs"),
        (np.zeros(360), 360.0, "min_duration_s"),
        (np.full(3600, np.nan), 360.0, "NaN"),
        (np.zeros((2, 3600)), 360.0, "1-D"),
        (np.r_[np.zeros(3599), np.inf], 360.0, "infinite"),
    ],
)
def test_bad_input_raises_a_clear_error(signal, fs, match, params):
    with pytest.raises(ValueError, match=match):
        detect_beats(signal, fs, params["detection"])


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("quality_detector", "gqrs", "second, independent detector"),
        ("quality_detector", "wqrs", "quality_detector"),
        ("min_agreement", 1.5, r"min_agreement' must be in \[0, 1\]"),
        ("quality_window_s", 0, "quality_window_s' must be > 0"),
        ("extra_beat_span", 2.0, r"extra_beat_span' must be in \[0, 1.9\]"),
        ("small_beat_ratio", -0.1, r"small_beat_ratio' must be in \[0, 1\]"),
    ],
)
def test_bad_quality_parameters_are_refused(key, value, match, params):
    with pytest.raises(ValueError, match=match):
        DetectionParams.from_dict({**params["detection"], key: value})


def test_unknown_or_bad_parameters_are_refused(params):
    with pytest.raises(
        ValueError, match=r"Unknown parameter\(s\) ecg_autoencoder\.detection\.typo;"
    ):
        detect_beats(np.zeros(3600), 360.0, {**params["detection"], "typo": 1})
    with pytest.raises(ValueError, match="method"):
        DetectionParams.from_dict({**params["detection"], "method": "magic"})
    with pytest.raises(ValueError, match="beats"):
        DetectionParams.from_dict({**params["detection"], "beats": "both"})


# --- beats: detected in segmentation ------------------------------------------------


def test_detected_segmentation_labels_beats_from_the_reference(params):
    record = read_first_minute(EXCERPT / "208")  # N and many V beats
    p = SegmentationParams.from_dict(params["ingestion"])
    detection = {**params["detection"], "beats": "detected"}
    beats, windows, report = segment_detected_record(record, p, detection)
    assert len(beats) == len(windows) > 80
    assert set(beats["label"]) <= set(params["ingestion"]["label_mapping"])
    assert {"N", "V"} <= set(beats["label"])
    ref = record.ann_samples
    ref_of_det, _ = match_beats(beats["sample"], ref, record.fs)
    assert (ref_of_det >= 0).all()
    assert (record.ann_symbols[ref_of_det] == beats["symbol"].to_numpy()).all()
    assert report["detected_beats"] >= len(beats)
    assert {"detected_unmatched", "reference_missed", "noise_beats"} <= set(report)


def test_unmatched_detections_are_kept_for_scoring_when_asked(params):
    record = read_first_minute(EXCERPT / "100")
    # Drop every fifth reference beat: its detection has nothing to match.
    drop = np.zeros(len(record.ann_samples), bool)
    beats_idx = np.flatnonzero(np.isin(record.ann_symbols, beat_symbols(params)))
    drop[beats_idx[5:-5:5]] = True
    thinned = dataclasses.replace(
        record,
        ann_samples=record.ann_samples[~drop],
        ann_symbols=record.ann_symbols[~drop],
    )
    p = SegmentationParams.from_dict(params["ingestion"])
    kept, _, report = segment_detected_record(thinned, p, params["detection"], True)
    dropped, _, _ = segment_detected_record(thinned, p, params["detection"])
    unmatched = (kept["label"] == "").sum()
    assert unmatched == report["detected_unmatched"] == drop.sum()
    assert len(kept) - len(dropped) == unmatched


def test_beats_reference_stays_identical(params):
    mitdb = {rid: read_first_minute(EXCERPT / rid) for rid in ("100", "208")}
    svdb = {"800": read_first_minute(SVDB_EXCERPT / "800")}
    args = (mitdb, svdb, params["ingestion"], params["databases"])
    before, windows_before, report_before = segment_databases(*args)
    for detection in (None, {**params["detection"], "beats": "reference"}):
        after, windows_after, report_after = segment_databases(*args, detection)
        pd.testing.assert_frame_equal(before, after)
        np.testing.assert_array_equal(
            windows_before["windows"], windows_after["windows"]
        )
        assert report_before == report_after


def test_beats_detected_through_segment_databases(params):
    mitdb = {rid: read_first_minute(EXCERPT / rid) for rid in ("100", "208")}
    svdb = {"800": read_first_minute(SVDB_EXCERPT / "800")}
    args = (mitdb, svdb, params["ingestion"], params["databases"])
    ref_beats, _, _ = segment_databases(*args)
    detection = {**params["detection"], "beats": "detected"}
    beats, windows, report = segment_databases(*args, detection)
    assert len(beats) == len(windows["windows"])
    assert set(beats["database"]) == {"mitdb", "svdb"}
    assert (beats["label"] != "").all()
    # Nearly every annotated beat is found within 20 ms of its annotation (wide
    # ventricular beats, as in 208, are the ones placed further off).
    for rid, group in beats.groupby("record"):
        ref = ref_beats.loc[ref_beats["record"] == rid, "sample"].to_numpy()
        det = group["sample"].to_numpy()
        _, det_of_ref = match_beats(det, ref, 360.0, 0.02)
        assert (det_of_ref >= 0).mean() >= (0.8 if rid == "208" else 0.95), rid
    assert report["records"]["svdb_800"]["detected_beats"] > 0


# --- scoring ------------------------------------------------------------------------


def test_scoring_counts_unmatched_and_missed_beats():
    classes = ["N", "S", "V"]
    reference = pd.DataFrame(
        {
            "record": ["a"] * 4 + ["b"],
            "sample": [1000, 2000, 3000, 4000, 1000],
            "label": ["N", "S", "V", "N", "V"],
        }
    )
    detected = pd.DataFrame(
        {
            "record": ["a"] * 4 + ["b"],
            # 1000 N ok, 2010 S called N, 3000 V ok, 3500 unmatched called V;
            # 4000 (a) and 1000 (b) missed; b's detection at 1100 is 100 ms off.
            "sample": [1000, 2010, 3000, 3500, 1100],
            "predicted": ["N", "N", "V", "V", "V"],
        }
    )
    scores = score_detected_beats(detected, reference, classes, fs=1000.0)
    assert scores["n_reference"] == 5
    assert scores["unmatched_detections"] == 1 and scores["missed_reference"] == 1
    v = scores["per_class"]["V"]
    assert (v["tp"], v["fn"], v["fp"]) == (2, 0, 1)
    n = scores["per_class"]["N"]
    assert (n["tp"], n["fn"], n["fp"]) == (1, 1, 1)  # 4000 missed; the S beat called N
    s = scores["per_class"]["S"]
    assert (s["tp"], s["fn"], s["fp"]) == (0, 1, 0) and s["se"] == 0
    assert scores["accuracy"] == pytest.approx(3 / 6)  # 5 reference + 1 unmatched
    assert np.array(scores["confusion"]).sum() == 6


def test_scoring_reference_positions_is_plain_accuracy():
    reference = pd.DataFrame(
        {"record": ["a"] * 3, "sample": [100, 400, 700], "label": ["N", "V", "N"]}
    )
    detected = reference.rename(columns={"label": "predicted"}).assign(
        predicted=["N", "N", "N"]
    )
    scores = score_detected_beats(detected, reference, ["N", "V"], fs=360.0)
    assert scores["accuracy"] == pytest.approx(2 / 3)
    assert scores["unmatched_detections"] == scores["missed_reference"] == 0
    with pytest.raises(ValueError, match="not in"):
        score_detected_beats(
            detected.assign(predicted="X"), reference, ["N", "V"], 360.0
        )


# --- benchmark of the classifiers on detected beats -----------------------------------


@pytest.mark.slow
def test_bench_detected_beats_runs_on_the_excerpt_with_small_models(
    tmp_path, monkeypatch, capsys, params
):
    root = Path(__file__).parents[3]
    shutil.copytree(
        root / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("local")
    )
    (tmp_path / "conf" / "local").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "01_raw").symlink_to(root / "data" / "01_raw")
    save_tiny_models(tmp_path / "data" / "06_models", params)
    script = root / "benchmarks" / "bench_detected_beats.py"
    argv = [str(script), "--env=base", f"--root={tmp_path}", "--records=100,208"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(script), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("machine")
    rows = [
        line.split()
        for line in lines
        if line.split()[:1] in (["rhythm"], ["autoencoder"], ["cnn"])
    ]
    assert [r[:2] for r in rows] == [
        ["rhythm", "reference"],
        ["rhythm", "detected"],
        ["autoencoder", "reference"],
        ["autoencoder", "detected"],
        ["cnn", "reference"],
        ["cnn", "detected"],
    ]
    assert all(0 <= float(r[2]) <= 100 for r in rows)

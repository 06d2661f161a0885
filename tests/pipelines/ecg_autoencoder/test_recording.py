"""A new recording: readers (WFDB without annotations, EDF, CSV), checks, detected
beats cut as in training, the per-beat table, the summary and the ECG strip."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import signal as sps
from wfdb.io.convert.edf import wfdb_to_edf

from medlstm.datasets.wfdb_records import WfdbRecordError, read_wfdb_record
from medlstm.pipelines.ecg_autoencoder import recording
from medlstm.pipelines.ecg_autoencoder.beat_matching import (
    match_beats,
)
from medlstm.pipelines.ecg_autoencoder.detection import Detection
from medlstm.pipelines.ecg_autoencoder.ingestion import (
    segment_records,
)
from medlstm.pipelines.ecg_autoencoder.recording import (
    RecordingError,
    example_signal,
    load_recording,
    segment_detected,
    segment_recording,
    signal_record,
)
from medlstm.pipelines.ecg_autoencoder.recording_report import (
    STRIP_ROW_HEIGHT_IN,
    STRIP_ROWS_PER_MINUTE,
    STRIP_WIDTH_IN,
    beat_table,
    recording_summary,
    strip_figure,
    strip_minutes,
)
from medlstm.pipelines.ecg_autoencoder.segmentation import (
    SegmentationParams,
)
from tests.support.ecg_models import save_tiny_models

EXCERPT = Path(__file__).parents[3] / "data" / "01_raw" / "mitdb_excerpt"


def _copy_without_annotations(record: str, folder: Path) -> Path:
    for ext in ("hea", "dat"):
        shutil.copy2(EXCERPT / f"{record}.{ext}", folder / f"{record}.{ext}")
    return folder / record


def _write_csv(path: Path, columns: dict[str, np.ndarray]) -> Path:
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


def _reference_beats(record: str) -> np.ndarray:
    """Sample of every annotated beat (no rhythm or noise annotations) at 360 Hz."""
    ref = read_wfdb_record(EXCERPT / record)
    beat = np.isin(ref.ann_symbols, ["N", "L", "R", "A", "a", "J", "V", "E", "F", "/"])
    return ref.ann_samples[beat]


# --- readers --------------------------------------------------------------------------


def test_wfdb_record_without_annotations_is_read_for_detected_beats(tmp_path, params):
    path = _copy_without_annotations("100", tmp_path)
    (record,) = load_recording(str(path), params["inference"]).values()
    assert record.fs == 360.0 and list(record.signals) == ["MLII", "V5"]
    assert len(record.ann_samples) == 0
    assert record.n_samples == read_wfdb_record(EXCERPT / "100").n_samples

    reference = {**params["inference"], "beats": "reference"}
    with pytest.raises(WfdbRecordError, match=r"100\.atr: annotation file not found"):
        load_recording(str(path), reference)


def test_edf_file_is_read_with_its_lead_names_and_rate(tmp_path, params):
    edf = tmp_path / "r100.edf"
    wfdb_to_edf(str(EXCERPT / "100"), output_filename=str(edf))
    (record,) = load_recording(str(edf), params["inference"]).values()
    original = read_wfdb_record(EXCERPT / "100", None)
    assert record.record_id == "r100" and record.fs == 360.0
    assert set(record.signals) == {"MLII", "V5"}
    n = original.n_samples
    # EDF stores 16-bit samples: within one quantum of MIT-BIH's 200 ADC units/mV.
    np.testing.assert_allclose(
        record.signals["MLII"][:n], original.signals["MLII"], atol=0.0051
    )


def test_csv_at_250_hz_is_resampled_and_beats_land_on_the_reference(tmp_path, params):
    x = read_wfdb_record(EXCERPT / "100", None).signals["MLII"]
    x250 = sps.resample_poly(x, 25, 36)
    path = _write_csv(
        tmp_path / "strip.csv", {"time_s": np.arange(len(x250)) / 250, "MLII": x250}
    )
    inference = {**params["inference"], "sampling_rate": 250}
    records = load_recording(str(path), inference)
    assert records["strip"].fs == 250.0

    beats, windows, report = segment_detected(
        records, params["ingestion"], params["detection"]
    )
    assert report["records"]["strip"]["resampled_from"] == 250.0
    assert windows["windows"].shape == (len(beats), 288)
    # Beats at the recording's own rate match the annotated ones within 50 ms.
    times = beats["input_sample"].to_numpy() / 250
    ref_of_det, _ = match_beats(times * 360, _reference_beats("100"), 360, 0.05)
    assert (ref_of_det >= 0).mean() > 0.95


def test_csv_without_a_sampling_rate_is_refused_naming_file_and_parameter(
    tmp_path, params
):
    path = _write_csv(tmp_path / "a.csv", {"MLII": np.zeros(10)})
    with pytest.raises(RecordingError, match=r"a\.csv: .*inference\.sampling_rate"):
        load_recording(str(path), params["inference"])


# --- bad input: a clear error naming the file, never a crash half-way ----------------


def _bad_csv(tmp_path: Path, kind: str) -> tuple[Path, float]:
    x = read_wfdb_record(EXCERPT / "100", None).signals["MLII"]
    if kind == "flat":
        return _write_csv(tmp_path / "flat.csv", {"MLII": np.full(7200, 0.3)}), 360
    if kind == "all_nan":
        return _write_csv(tmp_path / "nan.csv", {"MLII": np.full(7200, np.nan)}), 360
    if kind == "short":
        return _write_csv(tmp_path / "short.csv", {"MLII": x[:720]}), 360
    if kind == "slow":
        return _write_csv(tmp_path / "slow.csv", {"MLII": x[::8]}), 45
    if kind == "other_lead":
        return _write_csv(tmp_path / "lead.csv", {"ECG": x}), 360
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("flat", "lead MLII is a flat line"),
        ("all_nan", "lead MLII has no valid sample"),
        ("short", "the recording lasts 2.0 s, shorter than 5 s"),
        ("slow", "sampling rate 45 Hz is below 100 Hz"),
        ("other_lead", r"no lead MLII \(its leads: \['ECG'\]\)"),
    ],
)
def test_bad_recordings_fail_before_detection_naming_file_and_problem(
    tmp_path, params, monkeypatch, kind, message
):
    path, fs = _bad_csv(tmp_path, kind)
    inference = {**params["inference"], "sampling_rate": fs}
    records = load_recording(str(path), inference)
    monkeypatch.setattr(recording, "detect", lambda *a: pytest.fail("detection ran"))
    with pytest.raises(RecordingError, match=f"{path.name}: {message}"):
        segment_recording(records, params["ingestion"], params["detection"], inference)


def test_a_detector_error_is_named_with_the_file(tmp_path, params):
    x = read_wfdb_record(EXCERPT / "100", None).signals["MLII"].copy()
    x[500] = np.inf
    path = _write_csv(tmp_path / "inf.csv", {"MLII": x})
    inference = {**params["inference"], "sampling_rate": 360}
    records = load_recording(str(path), inference)
    with pytest.raises(RecordingError, match="inf.csv: lead MLII: .*infinite"):
        segment_recording(records, params["ingestion"], params["detection"], inference)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.txt", "hello", r"unknown recording format '\.txt'"),
        ("fake.edf", "time,MLII\n0,1\n", "not a readable EDF file"),
        ("binary.csv", "\x00\x01\x02", "no numeric column"),
        ("missing.edf", None, "recording not found"),
    ],
)
def test_files_of_the_wrong_format_are_named(tmp_path, params, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    inference = {**params["inference"], "sampling_rate": 360}
    with pytest.raises(RecordingError, match=f"{name}: {message}"):
        load_recording(str(path), inference)


def test_a_nan_stretch_drops_or_flags_its_beats_and_the_rest_are_classified(params):
    (record,) = load_recording(str(EXCERPT / "100"), params["inference"]).values()
    x = record.signals["MLII"].copy()
    x[20 * 360 : 25 * 360] = np.nan
    damaged = {"100": recording._record("100", 360.0, {"MLII": x}, record.source)}
    intact, _, _ = segment_detected(
        {"100": record}, params["ingestion"], params["detection"]
    )
    beats, windows, report = segment_detected(
        damaged, params["ingestion"], params["detection"]
    )
    assert np.isfinite(windows["windows"]).all()
    t = beats["input_sample"].to_numpy() / 360
    assert not ((t > 20) & (t < 25)).any()
    # Beats whose window reaches into the gap are dropped, those beside it flagged.
    near = (t > 19) & (t < 26)
    assert beats.loc[near, "noise"].all()
    assert len(beats) < len(intact) - 4 and len(beats) > len(intact) - 12
    rec = report["records"]["100"]
    assert (
        rec["detected_beats"]
        == rec["kept"] + rec["dropped_edge"] + rec["dropped_no_rr"] + rec["dropped_nan"]
    )


def test_reference_beats_need_annotations(tmp_path, params):
    path = _copy_without_annotations("100", tmp_path)
    records = load_recording(str(path), params["inference"])  # read without them
    inference = {**params["inference"], "beats": "reference"}
    with pytest.raises(RecordingError, match="100.hea: no reference beats"):
        segment_recording(records, params["ingestion"], params["detection"], inference)
    with pytest.raises(ValueError, match=r"inference\.beats' is 'both'"):
        segment_recording(
            records,
            params["ingestion"],
            params["detection"],
            {**inference, "beats": "both"},
        )


# --- detected beats are cut exactly as in training -------------------------------------


def test_detected_beats_are_cut_by_the_training_path(params, monkeypatch):
    """Given the annotated beats as 'detections', the windows and RR features equal
    the training ingestion's: both go through segmentation.segment_beats."""
    annotated = read_wfdb_record(EXCERPT / "208")
    p = SegmentationParams.from_dict(params["ingestion"])
    labelled = annotated.ann_samples[np.isin(annotated.ann_symbols, list(p.lookup))]
    monkeypatch.setattr(
        recording,
        "detect",
        lambda x, fs, det: Detection(
            pd.DataFrame({"sample": labelled, "noise": np.zeros(len(labelled), bool)}),
            np.zeros(len(x), bool),
            fs,
        ),
    )
    train_beats, train_windows, _ = segment_records(
        {"208": annotated}, params["ingestion"]
    )
    beats, windows, report = segment_detected(
        {"208": annotated}, params["ingestion"], params["detection"]
    )
    np.testing.assert_array_equal(windows["windows"], train_windows["windows"])
    rr = params["features"]["rr_columns"]
    pd.testing.assert_frame_equal(beats[["sample", *rr]], train_beats[["sample", *rr]])
    assert report["records"]["208"]["detected_beats"] == len(labelled)


def test_segment_recording_reference_mode_is_the_training_segmentation(params):
    records = load_recording(
        str(EXCERPT / "232"), {**params["inference"], "beats": "reference"}
    )
    inference = {**params["inference"], "beats": "reference"}
    beats, windows, report = segment_recording(
        records, params["ingestion"], params["detection"], inference
    )
    train_beats, train_windows, _ = segment_records(records, params["ingestion"])
    np.testing.assert_array_equal(windows["windows"], train_windows["windows"])
    assert beats["label"].tolist() == train_beats["label"].tolist()
    record = records["232"]
    assert report["records"]["232"]["duration_s"] == record.n_samples / record.fs


# --- the served model's input -------------------------------------------------------


def test_signal_record_takes_signal_and_one_rate(params):
    x = np.sin(np.arange(3600) / 50)
    records = signal_record(
        pd.DataFrame({"signal": x, "fs": 360.0}), params["ingestion"]
    )
    assert records["signal"].fs == 360.0
    np.testing.assert_array_equal(records["signal"].signals["MLII"], x)
    with pytest.raises(RecordingError, match=r"missing column\(s\) \['fs'\]"):
        signal_record(pd.DataFrame({"signal": x}), params["ingestion"])
    two = pd.DataFrame({"signal": x, "fs": [360.0] * 1800 + [250.0] * 1800})
    with pytest.raises(RecordingError, match="one sampling rate, found"):
        signal_record(two, params["ingestion"])


def test_example_signal_is_the_first_seconds_of_the_record(params):
    records = {"100": read_wfdb_record(EXCERPT / "100")}
    inference = {**params["inference"], "example_seconds": 3}
    frame = example_signal(records, params["ingestion"], params["detection"], inference)
    assert list(frame.columns) == ["signal", "fs"] and len(frame) == 3 * 360
    np.testing.assert_array_equal(
        frame["signal"], records["100"].signals["MLII"][: 3 * 360]
    )
    with pytest.raises(ValueError, match="example_record' is '999'"):
        example_signal(
            records,
            params["ingestion"],
            params["detection"],
            {**inference, "example_record": "999"},
        )


# --- per-beat table, summary, strip -------------------------------------------------------


def _predictions(beats: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    names = ["N", "S", "V", "F", "Q"]
    probs = np.array([[float(c == n) for n in names] for c in classes])
    out = beats[["record", "sample"]].reset_index(drop=True).copy()
    out["predicted"] = classes
    for i, n in enumerate(names):
        out[f"p_{n}"] = probs[:, i]
    out["recon_error"] = np.linspace(0.1, 0.2, len(beats))
    return out


def test_beat_table_flags_noise_beats_and_keeps_input_samples():
    beats = pd.DataFrame(
        {
            "record": "r",
            "sample": [360, 720, 1080],  # at 360 Hz
            "input_sample": [250, 500, 750],  # the recording's own 250 Hz
            "noise": [False, True, False],
        }
    )
    report = {"target_fs": 360.0, "records": {"r": {"fs": 250.0}}}
    table = beat_table(_predictions(beats, ["N", "V", "S"]), beats, report)
    assert table["class"].tolist() == ["N", "noise", "S"]
    assert table["sample"].tolist() == [250, 500, 750]
    np.testing.assert_allclose(table["time_s"], [1.0, 2.0, 3.0])
    assert table["p_V"].tolist() == [0.0, 1.0, 0.0]  # the model's output is kept
    with pytest.raises(ValueError, match="not aligned"):
        beat_table(_predictions(beats.iloc[:2], ["N", "V"]), beats, report)


def test_beat_table_of_annotated_beats_moves_samples_back_to_the_record_rate():
    # Sample 400 of a 128 Hz record, moved to 360 Hz by ingestion: 1125.
    beats = pd.DataFrame({"record": "s", "sample": [1125], "label": ["S"]})
    report = {"target_fs": 360.0, "records": {"s": {"fs": 128.0}}}
    table = beat_table(_predictions(beats, ["N"]), beats, report)
    assert table["sample"].tolist() == [400]
    assert table["label"].tolist() == ["S"] and not table["noise"].any()


def _table(classes: list[str], noise: list[bool], step_s: float = 1.0) -> pd.DataFrame:
    n = len(classes)
    return pd.DataFrame(
        {
            "record": "r",
            "time_s": np.arange(n) * step_s + 0.5,
            "sample": (np.arange(n) * step_s + 0.5) * 360,
            "class": classes,
            "noise": noise,
        }
    )


def _report(**extra) -> dict:
    rec = {
        "source": "r.csv",
        "lead": "MLII",
        "fs": 360.0,
        "duration_s": 12.0,
        "detected_beats": 12,
        "dropped_edge": 1,
        "dropped_no_rr": 1,
        "dropped_nan": 0,
        "mean_heart_rate_bpm": 61.23,
    }
    return {"target_fs": 360.0, "records": {"r": {**rec, **extra}}}


def test_summary_counts_classes_and_leaves_noise_out_of_the_burden(params):
    classes = ["N"] * 6 + ["S"] * 2 + ["V"] + ["noise"]
    table = _table(classes, [c == "noise" for c in classes])
    summary, markdown = recording_summary(
        table, _report(), params["ingestion"]["label_mapping"]
    )
    rec = summary["records"]["r"]
    assert rec["beats_per_class"] == {
        "N": 6,
        "S": 2,
        "V": 1,
        "F": 0,
        "Q": 0,
        "noise": 1,
    }
    assert rec["beats"] == {"found": 12, "classified": 9, "noise": 1, "not_windowed": 2}
    assert rec["ectopic_burden_pct"] == {"S": round(200 / 9, 2), "V": round(100 / 9, 2)}
    assert rec["mean_heart_rate_bpm"] == 61.2
    assert "## Record r" in markdown and "S 22.2 %, V 11.1 %" in markdown
    assert "| noise | 1 |" in markdown


def test_summary_gives_the_minutes_of_analysable_signal(params):
    table = _table(["N"] * 4, [False] * 4)
    mapping = params["ingestion"]["label_mapping"]
    summary, markdown = recording_summary(table, _report(analysable_s=9.0), mapping)
    assert summary["records"]["r"]["analysable_min"] == 0.15
    assert "analysable signal: 0.1 of 0.2 min" in markdown  # 9 s of 12 s
    summary, markdown = recording_summary(table, _report(), mapping)
    assert summary["records"]["r"]["analysable_min"] is None
    assert "analysable signal: n/a" in markdown


SHARED = Path(__file__).parents[4] / "shared" / "data"


@pytest.mark.skipif(
    not (SHARED / "nstdb_noise" / "ma.hea").is_file(),
    reason="needs ../shared/data/nstdb_noise",
)
def test_a_recording_of_noise_alone_has_no_classified_beat_and_no_analysable_time(
    params,
):
    noise = read_wfdb_record(SHARED / "nstdb_noise" / "ma", annotation=None)
    x = noise.signals["noise2"][: 120 * 360]  # muscle noise, 2 minutes, no ECG
    records = {"ma": recording._record("ma", 360.0, {"MLII": x}, noise.source)}
    beats, windows, report = segment_detected(
        records, params["ingestion"], params["detection"]
    )
    assert len(beats) >= 3 and beats["noise"].all()
    rec = report["records"]["ma"]
    assert rec["analysable_s"] == 0.0 and rec["duration_s"] == 120.0
    predictions = beats[["record", "sample"]].assign(predicted="V", p_V=1.0)
    table = beat_table(predictions, beats, report)
    summary, _ = recording_summary(table, report, params["ingestion"]["label_mapping"])
    out = summary["records"]["ma"]
    assert out["beats"]["classified"] == 0 and out["analysable_min"] == 0.0
    assert out["beats_per_class"]["V"] == 0 and out["ectopic_burden_pct"]["V"] is None


@pytest.mark.skipif(
    not (SHARED / "nstdb_noise" / "bw.hea").is_file(),
    reason="needs ../shared/data/nstdb_noise",
)
def test_a_recording_without_any_readable_stretch_or_beat_says_so(params):
    noise = read_wfdb_record(SHARED / "nstdb_noise" / "bw", annotation=None)
    x = noise.signals["noise2"][: 60 * 360]  # baseline wander alone: no beat found
    records = {"bw": recording._record("bw", 360.0, {"MLII": x}, noise.source)}
    with pytest.raises(RecordingError, match="bw.hea: no analysable signal in lead"):
        segment_detected(records, params["ingestion"], params["detection"])


def test_summary_of_an_all_noise_recording_has_no_burden_and_warns(params, caplog):
    table = _table(["noise"] * 4, [True] * 4)
    with caplog.at_level(logging.WARNING):
        summary, markdown = recording_summary(
            table, _report(), params["ingestion"]["label_mapping"]
        )
    assert summary["records"]["r"]["ectopic_burden_pct"] == {"S": None, "V": None}
    assert "every beat is flagged as noise" in caplog.text
    assert "S n/a, V n/a" in markdown


def test_strip_minutes_are_the_first_and_the_most_ectopic():
    times = np.array([10.0, 70.0, 130.0, 135.0, 140.0, 200.0])
    assert strip_minutes(times, np.array(["S", "V", "V", "S", "N", "V"])) == [0, 2]
    assert strip_minutes(times, np.array(["N"] * 6)) == [0]
    assert strip_minutes(times, np.array(["S", "N", "N", "N", "N", "N"])) == [0]
    # Noise is never ectopic, however many.
    assert strip_minutes(
        times, np.array(["S", "noise", "noise", "noise", "N", "N"])
    ) == [0]


@pytest.mark.parametrize(("ectopic_at_s", "panels"), [(None, 1), (150.0, 2)])
def test_strip_png_has_the_expected_size(tmp_path, ectopic_at_s, panels):
    fs = 200.0
    t = np.arange(int(200 * fs)) / fs
    x = np.sin(2 * np.pi * t) ** 15  # a spike a second
    rec = recording._record("r", fs, {"MLII": x}, "r.csv")
    beat_t = np.arange(0.25, 199, 1.0)
    classes = np.where(np.abs(beat_t - (ectopic_at_s or -99)) < 10, "V", "N")
    table = pd.DataFrame(
        {
            "record": "r",
            "time_s": beat_t,
            "sample": (beat_t * fs).astype(int),
            "class": classes,
            "noise": False,
        }
    )
    fig = strip_figure({"r": rec}, table, {"records": {"r": {"lead": "MLII"}}})
    fig.savefig(tmp_path / "strip.png", dpi=100)
    with Image.open(tmp_path / "strip.png") as png:
        assert png.size == (
            int(STRIP_WIDTH_IN * 100),
            int(round(STRIP_ROW_HEIGHT_IN * STRIP_ROWS_PER_MINUTE * panels * 100)),
        )
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]
    assert len(titles) == panels
    if panels == 2:
        assert "minute 3 (most ectopic beats), 20 S/V beats" in titles[1]


@pytest.mark.parametrize("scale", [1.0, 2000.0])  # mV, or raw ADC units in a CSV
def test_strip_rows_their_labels_and_titles_neither_overlap_nor_leave_the_figure(
    scale,
):
    fs = 200.0
    t = np.arange(int(150 * fs)) / fs
    x = scale * (np.sin(2 * np.pi * t) ** 15 - 0.2)
    rec = recording._record("r", fs, {"MLII": x}, "r.csv")
    beat_t = np.arange(0.25, 149, 1.0)
    table = pd.DataFrame(
        {
            "record": "r",
            "time_s": beat_t,
            "sample": (beat_t * fs).astype(int),
            "class": np.where(beat_t > 120, "V", "N"),
            "noise": False,
        }
    )
    fig = strip_figure({"r": rec}, table, {"records": {"r": {"lead": "MLII"}}})
    renderer = fig.canvas.get_renderer()
    figure = fig.bbox
    boxes = [ax.get_tightbbox(renderer) for ax in fig.axes]
    for box in boxes:
        assert figure.x0 <= box.x0 and box.x1 <= figure.x1 + 1
        assert figure.y0 <= box.y0 and box.y1 <= figure.y1
    for upper, lower in zip(boxes[:-1], boxes[1:], strict=True):
        assert lower.y1 < upper.y0  # rows top to bottom, apart
    legend = fig.legends[0].get_window_extent(renderer)
    assert legend.y0 > boxes[0].y1 - 1


# --- benchmark of a recording from file to report ---------------------------------


@pytest.mark.slow
def test_bench_recording_times_every_stage_and_writes_the_report(
    tmp_path, monkeypatch, capsys, params
):
    import runpy
    import sys

    root = Path(__file__).parents[3]
    models = tmp_path / "models"
    save_tiny_models(models, params, ("autoencoder", "rhythm"))
    script = root / "benchmarks" / "bench_recording.py"
    out = tmp_path / "out"
    argv = [
        str(script),
        f"--record={EXCERPT / '100'}",
        f"--models={models}",
        f"--out={out}",
        "--repeat=1",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(script), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("machine")
    first = next(i for i, line in enumerate(lines) if line.startswith("stage "))
    stages = {line[:26].strip(): line[26:].split() for line in lines[first + 1 :]}
    assert {"read the file", "of which detection", "classify", "total"} <= set(stages)
    assert float(stages["total"][0]) >= float(stages["classify"][0]) > 0
    table = pd.read_csv(out / "ecg_inference_predictions.csv")
    assert f"10.0 min, {len(table)} beats" in lines and len(table) > 500
    assert (out / "ecg_inference_strip.png").stat().st_size > 0
    assert "Record 100" in (out / "ecg_inference_summary.md").read_text()

    missing = tmp_path / "none"
    monkeypatch.setattr(sys, "argv", [str(script), f"--models={missing}"])
    with pytest.raises(
        SystemExit, match="ecg_lstm_autoencoder.pt: model file not found"
    ):
        runpy.run_path(str(script), run_name="__main__")

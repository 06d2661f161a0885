"""Noise stress records (EC57 / nst) built from MIT-BIH and the NSTDB noise records."""

from __future__ import annotations

import dataclasses
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from medlstm.datasets.wfdb_records import read_wfdb_record
from medlstm.pipelines.ecg_autoencoder.noise_stress import (
    NORMAL_SYMBOLS,
    mix,
    noise_gain,
    noise_rms,
    noise_stress_record,
    noisy_stretches,
    qrs_amplitude,
    snr_db,
)
from tests.support.ecg_models import save_tiny_models

ROOT = Path(__file__).parents[3]
SHARED = ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not (SHARED / "nstdb_noise" / "em.hea").is_file()
    or not (SHARED / "mitdb" / "100.hea").is_file(),
    reason="needs ../shared/data/mitdb and nstdb_noise",
)


def first_seconds(record, seconds: float):
    n = round(seconds * record.fs)
    inside = record.ann_samples < n
    return dataclasses.replace(
        record,
        signals={lead: x[:n] for lead, x in record.signals.items()},
        ann_samples=record.ann_samples[inside],
        ann_symbols=record.ann_symbols[inside],
    )


@pytest.fixture(scope="module")
def clean():
    """Record 100's first 2 minutes."""
    return first_seconds(read_wfdb_record(SHARED / "mitdb" / "100"), 120)


@pytest.fixture(scope="module")
def em():
    return read_wfdb_record(SHARED / "nstdb_noise" / "em", annotation=None)


def test_stretches_follow_the_ec57_protocol():
    fs = 10.0
    noisy = noisy_stretches(int(30 * 60 * fs), fs)
    minute = np.arange(len(noisy)) / fs / 60
    assert not noisy[minute < 5].any()
    assert noisy[(minute >= 5) & (minute < 7)].all()
    assert not noisy[(minute >= 7) & (minute < 9)].any()
    assert noisy[(minute >= 9) & (minute < 11)].all()
    assert noisy[minute >= 29].all()  # 29-30 min: the 7th noisy stretch
    with pytest.raises(ValueError, match="stretch_s"):
        noisy_stretches(100, fs, stretch_s=0)


def test_gain_inverts_the_snr_and_a_sine_is_zero_db():
    fs = 360.0
    t = np.arange(int(10 * fs)) / fs
    sine = np.sin(2 * np.pi * 5 * t)  # peak-to-peak 2
    assert snr_db(2.0, noise_rms(sine, fs)) == pytest.approx(0.0, abs=1e-3)
    gain = noise_gain(6.0, 2.0, noise_rms(sine, fs))
    assert snr_db(2.0, gain * noise_rms(sine, fs)) == pytest.approx(6.0)
    with pytest.raises(ValueError, match="noise RMS"):
        noise_gain(6.0, 2.0, 0.0)


def test_mixing_has_no_step_where_the_gain_changes():
    rng = np.random.default_rng(0)
    noise = np.cumsum(rng.normal(size=2000)) + 50.0  # wandering, far from zero
    gain = np.r_[np.zeros(500), np.full(1000, 3.0), np.zeros(500)]
    out = mix(np.zeros(2000), noise, gain)
    jumps = np.abs(np.diff(out))
    typical = 3.0 * np.abs(np.diff(noise)).max()
    assert jumps[[499, 1499]].max() <= typical  # no step at the two changes
    assert np.all(out[:500] == 0)  # untouched before the first change
    assert np.ptp(out[1500:]) == 0  # a constant offset after the last


@needs_data
@pytest.mark.parametrize("target", [12.0, 0.0])
def test_noise_stress_record_reaches_the_requested_snr(clean, em, target):
    built = noise_stress_record(
        clean, em, target, learning_s=20, stretch_s=20, calibration="added"
    )
    lead = "MLII"
    fs = clean.fs
    x, y = clean.signals[lead], built.record.signals[lead]
    # Measured independently: scipy's trimmed mean, the added noise as the difference.
    normal = clean.ann_samples[np.isin(clean.ann_symbols, NORMAL_SYMBOLS)]
    normal = normal[(normal >= 18) & (normal < len(x) - 18)]
    s = stats.trim_mean([np.ptp(x[b - 18 : b + 19]) for b in normal], 0.05)
    added = (y - x)[built.noisy]
    width = int(fs)
    n = len(added) // width
    rms = stats.trim_mean(added[: n * width].reshape(n, width).std(axis=1), 0.05)
    measured = 20 * np.log10(s / (np.sqrt(8) * rms))
    assert abs(measured - target) < 0.1
    assert s == pytest.approx(qrs_amplitude(x, fs, normal), rel=1e-9)
    # Clean before the first stretch; beats and other fields unchanged.
    assert np.array_equal(y[: int(20 * fs)], x[: int(20 * fs)])
    assert built.noisy.mean() == pytest.approx(60 / 120, abs=0.01)
    assert np.array_equal(built.record.ann_samples, clean.ann_samples)
    assert set(built.record.signals) == set(clean.signals)


@needs_data
def test_nst_calibration_measures_the_noise_over_its_first_300_s(clean, em):
    built = noise_stress_record(clean, em, 6.0, learning_s=20, stretch_s=20)
    x = clean.signals["MLII"]
    normal = clean.ann_samples[np.isin(clean.ann_symbols, NORMAL_SYMBOLS)]
    s = qrs_amplitude(x, clean.fs, normal)
    first = em.signals["noise1"][: 300 * 360].reshape(300, 360)
    rms = stats.trim_mean(first.std(axis=1), 0.05)
    assert 20 * np.log10(s / (np.sqrt(8) * built.gains["MLII"] * rms)) == (
        pytest.approx(6.0, abs=0.1)
    )
    assert built.calibration == "nst"
    # The second lead (V5 in record 100) gets the second noise channel.
    assert list(built.gains) == ["MLII", "V5"]
    assert built.gains["V5"] != built.gains["MLII"]


@needs_data
def test_noise_stress_record_refuses_what_it_cannot_build(clean, em):
    with pytest.raises(ValueError, match="learning period"):
        noise_stress_record(clean, em, 6.0)  # 2 minutes, all learning period
    slow = dataclasses.replace(em, fs=128.0)
    with pytest.raises(ValueError, match="128 Hz"):
        noise_stress_record(clean, slow, 6.0, learning_s=20, stretch_s=20)
    no_beats = dataclasses.replace(
        clean, ann_samples=clean.ann_samples[:0], ann_symbols=clean.ann_symbols[:0]
    )
    with pytest.raises(ValueError, match="calibration"):
        noise_stress_record(clean, em, 6.0, learning_s=20, calibration="rms")
    with pytest.raises(ValueError, match="no normal beat"):
        noise_stress_record(no_beats, em, 6.0, learning_s=20, stretch_s=20)


@needs_data
def test_bench_noise_stress_prints_a_row_per_snr(monkeypatch, capsys):
    script = ROOT / "benchmarks" / "bench_noise_stress.py"
    argv = [
        str(script),
        "--records=100",
        "--snr=6",
        "--minutes=1.5",
        "--learning-s=20",
        "--stretch-s=20",
        "--models=none",
        "--workers=1",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(script), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("machine")
    header = next(line for line in lines if line.split()[:2] == ["noise", "SNR"])
    assert "Se kept" in header and "clean%" in header
    rows = {
        tuple(line.split()[:2]): [float(v) for v in line.split()[2:]]
        for line in lines
        if line.split()[:1] in (["clean"], ["em"])
    }
    assert list(rows) == [("clean", "clean"), ("em", "6")]
    se_all, ppv_all, se_kept, ppv_kept, flagged, noisy_pct, clean_pct = rows[
        ("clean", "clean")
    ]
    assert se_all > 99 and ppv_all > 99 and flagged == 0 and clean_pct == 0
    assert all(0 <= v <= 100 for v in rows[("em", "6")][:4])


@needs_data
@pytest.mark.slow
def test_bench_noise_stress_classifies_with_models_when_present(
    tmp_path, monkeypatch, capsys, params
):
    import shutil

    shutil.copytree(
        ROOT / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("local")
    )
    (tmp_path / "conf" / "local").mkdir()
    save_tiny_models(tmp_path / "data" / "06_models", params, ("cnn", "rhythm"))
    script = ROOT / "benchmarks" / "bench_noise_stress.py"
    argv = [
        str(script),
        f"--root={tmp_path}",
        f"--source={SHARED}",
        "--records=100",
        "--snr=0",
        "--minutes=1.5",
        "--learning-s=20",
        "--stretch-s=20",
        "--workers=1",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(script), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    described = next(line for line in lines if "records (100)" in line)
    assert "models: rhythm, cnn" in described
    header = next(line for line in lines if line.split()[:2] == ["noise", "SNR"])
    assert "rh fV/h" in header and "cn fV/h" in header
    assert "au S Se" not in header  # no autoencoder file
    rows = [line.split() for line in lines if line.split()[:1] in (["clean"], ["em"])]
    assert [r[:2] for r in rows] == [["clean", "clean"], ["em", "0"]]
    # Seven detection columns, then per model "|", S Se, S +P, V Se, V +P, false S/h,
    # false V/h.
    assert all(len(r) == 2 + 7 + 2 * (1 + 6) and r[9] == r[16] == "|" for r in rows)
    assert all(float(r[-1]) >= 0 or r[-1] == "nan" for r in rows)


@needs_data
def test_bench_noise_stress_overrides_detection_parameters(monkeypatch, capsys):
    script = ROOT / "benchmarks" / "bench_noise_stress.py"
    base = [str(script), "--records=100", "--snr=-6", "--minutes=1.5"]
    base += ["--learning-s=20", "--stretch-s=20", "--models=none", "--workers=1"]
    flagged = {}
    for name, extra in (
        ("on", []),
        ("off", ["--detection-param=quality_detector=null"]),
    ):
        monkeypatch.setattr(sys, "argv", base + ["--no-clean", *extra])
        runpy.run_path(str(script), run_name="__main__")
        lines = capsys.readouterr().out.splitlines()
        row = next(line.split() for line in lines if line.split()[:1] == ["em"])
        flagged[name] = float(row[7])  # noisy time marked, %
    assert flagged["on"] > 50 > flagged["off"]
    monkeypatch.setattr(sys, "argv", base + ["--detection-param=typo=1"])
    with pytest.raises(SystemExit, match="typo"):
        runpy.run_path(str(script), run_name="__main__")

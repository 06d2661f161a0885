"""The vectorised gqrs finds exactly what wfdb's gqrs finds, on real records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from wfdb.processing import gqrs_detect as wfdb_gqrs_detect

from medlstm.datasets.wfdb_records import read_wfdb_record
from medlstm.pipelines.ecg_autoencoder.detection import _resample
from medlstm.pipelines.ecg_autoencoder.gqrs import gqrs_detect

EXCERPT = Path(__file__).parents[3] / "data" / "01_raw" / "mitdb_excerpt"
SVDB_EXCERPT = Path(__file__).parents[3] / "data" / "01_raw" / "svdb_excerpt"
SHARED = Path(__file__).parents[4] / "shared" / "data"


def lead(path: Path, seconds: float) -> tuple[np.ndarray, float]:
    record = read_wfdb_record(path, None)
    x = next(iter(record.signals.values()))
    return x[: int(seconds * record.fs)], record.fs


# 100 clean; 105 and 203 noisy; 207 flutter and long pauses (the threshold decay);
# 208 many V beats; 232 pauses over 3 s.
@pytest.mark.parametrize("rid", ["100", "105", "203", "207", "208", "232"])
@pytest.mark.parametrize("rate", [120.0, 360.0])
def test_equals_wfdb_on_mitdb_excerpts(rid, rate):
    x, fs = lead(EXCERPT / rid, 150)
    if rate != fs:
        x, fs = _resample(x, fs, rate), rate
    expected = wfdb_gqrs_detect(sig=x, fs=fs)
    found = gqrs_detect(x, fs)
    assert len(expected) > 100
    np.testing.assert_array_equal(found, expected)


@pytest.mark.parametrize("rid", ["800", "853"])
def test_equals_wfdb_at_128_and_100_hz(rid):
    x, fs = lead(next(SVDB_EXCERPT.glob(f"{rid}.hea")).with_suffix(""), 150)
    np.testing.assert_array_equal(gqrs_detect(x, fs), wfdb_gqrs_detect(sig=x, fs=fs))
    y = _resample(x, fs, 100.0)
    np.testing.assert_array_equal(
        gqrs_detect(y, 100.0), wfdb_gqrs_detect(sig=y, fs=100.0)
    )


def test_equals_wfdb_on_a_whole_record_to_its_last_second():
    """30 minutes: past the 32768-sample ring buffer, whose stale values the last
    second reads."""
    path = SHARED / "mitdb" / "232"
    if not path.with_suffix(".hea").is_file():
        pytest.skip("the full MIT-BIH database is not at ../shared/data/mitdb")
    x, fs = lead(path, 1e9)
    y = _resample(x, fs, 120.0)
    np.testing.assert_array_equal(
        gqrs_detect(y, 120.0), wfdb_gqrs_detect(sig=y, fs=120.0)
    )


def test_equals_wfdb_on_noise_and_on_a_short_signal():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.3, 120 * 30)
    np.testing.assert_array_equal(
        gqrs_detect(noise, 120.0), wfdb_gqrs_detect(sig=noise, fs=120.0)
    )
    x, fs = lead(EXCERPT / "100", 1.5)  # under 2 s: wfdb's own code decides
    np.testing.assert_array_equal(gqrs_detect(x, fs), wfdb_gqrs_detect(sig=x, fs=fs))

"""Predicting a file or folder named by a parameter, and raw bytes for the pyfunc."""

from __future__ import annotations

import base64
import io

import pandas as pd
import pytest
from PIL import Image

from medlstm.models.brain_bilstm import BrainBiLSTM
from medlstm.pipelines.brain_tumor_bilstm.inference import (
    predict_image_bytes,
    predict_path,
)
from tests.pipelines.brain_tumor_bilstm.factories import CLASSES, slice_image

MODEL = BrainBiLSTM(
    image_size=64, lstm1_units=8, dense_units=8, lstm2_units=8, head_units=8
)


def _png(seed: int, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(slice_image(seed, 96)).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_folder_gives_one_row_per_file_and_reports_unreadable_ones(tmp_path, params):
    (tmp_path / "a.png").write_bytes(_png(1))
    (tmp_path / "b.png").write_bytes(_png(2, "RGB"))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    (tmp_path / ".hidden.png").write_bytes(_png(3))
    out = predict_path(
        MODEL, params["data"], params["ingestion"], {"input_path": str(tmp_path)}
    )

    assert list(out.columns) == [
        "file",
        "predicted_class",
        *(f"p_{c}" for c in CLASSES),
        "error",
    ]
    assert [p.rsplit("/", 1)[-1] for p in out["file"]] == [
        "a.png",
        "b.png",
        "broken.jpg",
    ]
    good = out[out["error"] == ""]
    assert set(good["predicted_class"]) <= set(CLASSES)
    assert good[[f"p_{c}" for c in CLASSES]].sum(axis=1).round(3).eq(1.0).all()
    bad = out[out["error"] != ""]
    assert (
        bad["predicted_class"].isna().all()
        and bad["error"].str.startswith("unreadable").all()
    )


def test_single_file_and_null_path(tmp_path, params):
    (tmp_path / "a.png").write_bytes(_png(1))
    one = predict_path(
        MODEL,
        params["data"],
        params["ingestion"],
        {"input_path": str(tmp_path / "a.png")},
    )
    assert len(one) == 1 and one.loc[0, "error"] == ""
    none = predict_path(
        MODEL, params["data"], params["ingestion"], {"input_path": None}
    )
    assert none.empty and list(none.columns) == list(one.columns)


def test_missing_path_is_a_clear_error(tmp_path, params):
    with pytest.raises(FileNotFoundError, match="neither a file nor a folder"):
        predict_path(
            MODEL,
            params["data"],
            params["ingestion"],
            {"input_path": str(tmp_path / "nope")},
        )


def test_bytes_and_base64_give_the_same_prediction(params):
    raw = _png(4)
    frame = pd.DataFrame({"image": [raw, base64.b64encode(raw).decode()]})
    out = predict_image_bytes(frame, MODEL, params["data"], params["ingestion"])
    assert len(out) == 2
    pd.testing.assert_series_equal(out.iloc[0], out.iloc[1], check_names=False)


def test_bad_pyfunc_input_names_the_row(params):
    frame = pd.DataFrame({"image": [_png(1), b"garbage"]})
    with pytest.raises(ValueError, match="Row 1: not a usable image"):
        predict_image_bytes(frame, MODEL, params["data"], params["ingestion"])
    with pytest.raises(ValueError, match="column 'image'"):
        predict_image_bytes(
            pd.DataFrame({"x": [1]}), MODEL, params["data"], params["ingestion"]
        )
    with pytest.raises(
        ValueError, match="Row 0: column 'image' is a string but not base64"
    ):
        predict_image_bytes(
            pd.DataFrame({"image": ["??"]}), MODEL, params["data"], params["ingestion"]
        )

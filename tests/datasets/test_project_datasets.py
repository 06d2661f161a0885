"""NumpyDataset and TorchModelDataset through their Kedro interfaces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlstm.datasets import NumpyDataset, TorchModelDataset
from tests.core.toy import ToyLSTM


def test_numpy_dataset_round_trip_and_refuses_objects(tmp_path):
    ds = NumpyDataset(filepath=str(tmp_path / "arrays.bin"), compress=True)
    assert not ds.exists()
    ds.save(
        {
            "x": np.arange(6, dtype=np.float32).reshape(2, 3),
            "ids": np.array(["100", "101"]),
        }
    )
    loaded = ds.load()
    np.testing.assert_array_equal(loaded["x"], np.arange(6).reshape(2, 3))
    assert loaded["ids"].tolist() == ["100", "101"]
    assert (
        tmp_path / "arrays.bin"
    ).exists()  # no '.npz' appended behind the catalog's back
    with pytest.raises(Exception, match="dtype object"):
        ds.save({"bad": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(Exception, match="missing.npz"):
        NumpyDataset(filepath=str(tmp_path / "missing.npz")).load()


def test_torch_model_dataset_versioned_round_trip(tmp_path):
    from kedro.io import Version

    ds = TorchModelDataset(
        filepath=str(tmp_path / "model.pt"), version=Version(None, None)
    )
    model = ToyLSTM().eval()
    ds.save(model)
    loaded = ds.load()
    assert isinstance(loaded, ToyLSTM) and not loaded.training
    x = torch.randn(1, 4, 3)
    torch.testing.assert_close(loaded(x), model(x))

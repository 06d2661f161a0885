"""Windows stored one shard per record, read lazily in training."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from kedro.io import DatasetError

from medlstm.datasets.wfdb_records import WfdbRecordsDataset
from medlstm.datasets.window_shards import (
    ShardedTensorDataset,
    ShardedWindows,
    WindowShardsDataset,
    write_shard,
)
from medlstm.pipelines.ecg_autoencoder.ingestion import (
    segment_databases,
)
from medlstm.pipelines.ecg_autoencoder.splitting import assign_splits
from medlstm.pipelines.ecg_autoencoder.training import (
    split_tensors,
    train_cnn,
    training_scale,
)
from tests.conftest import cut_raw


@pytest.fixture
def shards(tmp_path):
    """Three shards of 4, 0 and 3 rows (an empty record included) and their array."""
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(n, 5)).astype(np.float32) for n in (4, 0, 3)]
    paths = [write_shard(tmp_path / f"{i}.npy", p) for i, p in enumerate(parts)]
    return ShardedWindows(paths, open_shards=1), np.concatenate(parts)


@pytest.mark.parametrize(
    "key",
    [
        0,
        -1,
        4,
        slice(None),
        slice(1, 6, 2),
        np.array([6, 0, 4, 4]),
        np.array([-1, 2]),
        np.array([True, False, False, True, True, False, True]),
        (np.array([5, 1]), slice(1, 3)),
    ],
)
def test_sharded_windows_index_like_the_array(shards, key):
    windows, array = shards
    np.testing.assert_array_equal(windows[key], array[key])


def test_views_shape_and_bounded_open_shards(shards):
    windows, array = shards
    assert windows.shape == array.shape and len(windows) == 7
    np.testing.assert_array_equal(np.asarray(windows), array)
    view = windows.take(np.array([6, 2, 5])).take(np.array([2, 0]))
    np.testing.assert_array_equal(np.asarray(view), array[[5, 6]])
    assert windows[[0, 6]].shape == (2, 5)
    assert len(windows._maps) <= 1  # open_shards=1: older shards are unmapped
    with pytest.raises(IndexError, match="out of range for 7 windows"):
        windows[np.array([7])]
    with pytest.raises(IndexError, match="Boolean row index"):
        windows[np.array([True, False])]


def test_training_scale_from_shards_equals_the_array_std(shards):
    windows, array = shards
    train = np.array([True, False, True, True, False, True, True])
    # Chunks of 2 rows cross shard boundaries and the empty shard.
    scale = training_scale(windows, train, chunk_rows=2)
    assert scale == pytest.approx(float(array[train].std()), rel=1e-6)
    assert training_scale(array, train) == float(array[train].std())
    assert training_scale(windows, np.zeros(7, bool)) == 1.0


def test_a_shard_of_another_width_is_named(tmp_path, shards):
    windows, _ = shards
    odd = write_shard(tmp_path / "odd.npy", np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"odd\.npy: window shard of shape \(2, 3\)"):
        ShardedWindows([*windows.paths, odd])


def test_the_catalog_dataset_round_trips_arrays_and_shards(tmp_path, shards):
    windows, array = shards
    record = np.array(["a"] * 4 + ["c"] * 3)
    sample = np.arange(7, dtype=np.int64)
    for given in (array, windows):
        folder = tmp_path / type(given).__name__
        WindowShardsDataset(path=str(folder)).save(
            {"windows": given, "record": record, "sample": sample}
        )
        lazy = WindowShardsDataset(path=str(folder)).load()
        assert isinstance(lazy["windows"], ShardedWindows)
        np.testing.assert_array_equal(np.asarray(lazy["windows"]), array)
        np.testing.assert_array_equal(lazy["record"], record)
        eager = WindowShardsDataset(path=str(folder), lazy=False).load()
        assert isinstance(eager["windows"], np.ndarray)
    # An ndarray is cut per record: two shards, not one per row.
    assert len(list((tmp_path / "ndarray").glob("part-*.npy"))) == 2
    (tmp_path / "ndarray" / "part-000001.npy").unlink()
    with pytest.raises(DatasetError, match=r"part-000001\.npy: window shard listed"):
        WindowShardsDataset(path=str(tmp_path / "ndarray")).load()
    with pytest.raises(DatasetError, match="3 windows but 7 record ids"):
        WindowShardsDataset(path=str(tmp_path / "x")).save(
            {"windows": array[:3], "record": record, "sample": sample}
        )


def test_sharded_tensor_dataset_batches_equal_the_tensor_dataset(shards):
    windows, array = shards
    y = torch.arange(7)
    data = ShardedTensorDataset(windows, y)
    loader = torch.utils.data.DataLoader(data, batch_size=3, shuffle=False)
    batches = list(loader)
    torch.testing.assert_close(
        torch.cat([b[0] for b in batches]), torch.from_numpy(array)
    )
    torch.testing.assert_close(torch.cat([b[1] for b in batches]), y)
    assert data[6][0].shape == (5,) and data.labels.tolist() == list(range(7))
    with pytest.raises(ValueError, match="7 windows but tensors of lengths"):
        ShardedTensorDataset(windows, torch.arange(3))


@pytest.mark.slow
def test_training_on_shards_equals_training_in_memory(
    tmp_path, base_params, monkeypatch
):
    """The shipped excerpts (every record, cut to its first minute as for the
    end-to-end runs), windows spilled and saved as shards then read lazily: the seeded
    CNN ends with the same weights and history as from the in-memory windows, and its
    batches really came from the shards."""
    cfg = copy.deepcopy(base_params["ecg_autoencoder"])
    raw = cut_raw()
    mitdb, svdb = (
        WfdbRecordsDataset(path=str(raw / f"{db}_excerpt"), lazy=True).load()
        for db in ("mitdb", "svdb")
    )
    # Spilled windows equal in-memory ones (test_parallel_ingestion).
    beats, spilled, _ = segment_databases(
        mitdb, svdb, {**cfg["ingestion"], "spill_windows": True}, cfg["databases"]
    )
    windows = {**spilled, "windows": np.asarray(spilled["windows"])}
    catalog = WindowShardsDataset(path=str(tmp_path / "shards"))
    catalog.save(spilled)
    del spilled
    stored = catalog.load()
    assert isinstance(stored["windows"], ShardedWindows)

    cfg["split"]["max_train_beats_per_class"] = 400
    beats, _ = assign_splits(beats, cfg["split"])
    mapping = cfg["ingestion"]["label_mapping"]
    cnn = {
        "model": {"channels": [4, 8], "kernel_size": 5, "head_hidden": 8},
        "training": {
            **cfg["cnn"]["training"],
            "epochs": 2,
            "early_stopping_patience": None,
            "monitor_max_samples": 300,
            "seed": 3,
        },
    }
    train = split_tensors(beats, stored, "train", cfg["features"], list(mapping))
    assert isinstance(train, ShardedTensorDataset) and len(train) > 200

    reads = []
    original = ShardedWindows._read

    def counted(self, positions):
        reads.append(len(positions))
        return original(self, positions)

    in_memory, history = train_cnn(beats, windows, cnn, cfg["features"], mapping)
    assert not reads
    monkeypatch.setattr(ShardedWindows, "_read", counted)
    from_shards, history_shards = train_cnn(
        beats, stored, cnn, cfg["features"], mapping
    )
    # Every epoch read its training batches (64 rows at most) from the shards.
    assert sum(n for n in reads if n <= 64) >= 2 * len(train)

    def scores(rows):
        return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in rows]

    assert len(history) == 2 and scores(history_shards) == scores(history)
    for name, value in in_memory.state_dict().items():
        torch.testing.assert_close(
            from_shards.state_dict()[name], value, rtol=0, atol=0
        )

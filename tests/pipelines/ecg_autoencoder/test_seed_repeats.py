"""The seed-repeat benchmark's bookkeeping: which seeds move, which nodes run, and
the mean (min-max) summary."""

from __future__ import annotations

import runpy
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).parents[3] / "benchmarks" / "bench_ecg_seeds.py"
bench = runpy.run_path(str(SCRIPT))  # its functions, without running main


def _params():
    return {
        "ecg_autoencoder": {
            "rhythm": {"training": {"seed": 42}},
            "autoencoder": {"training": {"seed": 42}, "ensemble_seeds": [42, 7]},
            "cnn": {"training": {"seed": 5}},
        }
    }


def test_repeat_zero_is_the_committed_setting_and_later_ones_move_every_seed():
    models = ["rhythm", "autoencoder", "linear"]
    assert bench["seed_overrides"](_params(), models, 0) == {}
    assert bench["seed_overrides"](_params(), models, 2) == {
        "ecg_autoencoder.rhythm.training.seed": 2042,
        "ecg_autoencoder.autoencoder.training.seed": 2042,
        "ecg_autoencoder.autoencoder.ensemble_seeds": [2042, 2007],
    }  # the linear model has no seed; the CNN was not asked for


def test_validation_mode_never_reaches_a_test_node():
    starts, ends = bench["node_names"](["rhythm", "cnn"], test=False)
    assert starts == [
        "ecg_autoencoder.rhythm.train_rhythm",
        "ecg_autoencoder.cnn.train_cnn",
    ]
    assert all("evaluate_val_" in name for name in ends)
    _, with_test = bench["node_names"](["rhythm"], test=True)
    assert "ecg_autoencoder.rhythm.evaluate_rhythm" in with_test


def test_node_names_exist_in_the_pipeline():
    from medlstm.pipelines.ecg_autoencoder.pipeline import create_pipeline

    names = {n.name for n in create_pipeline().nodes}
    starts, ends = bench["node_names"](list(bench["MODELS"]), test=True)
    assert set(starts + ends) <= names


def test_summary_gives_mean_and_range_per_model_and_database():
    rows = [
        {"repeat": r, "model": "rhythm", "part": "val", "database": "mitdb"}
        | {k: v + r / 10 for k, v in zip(bench["SCORES"], [0.5] * 6, strict=True)}
        for r in range(3)
    ]
    table = bench["summarise"](pd.DataFrame(rows))
    assert table.loc[0, "repeats"] == 3
    assert table.loc[0, "S_Se"] == "0.600 (0.500-0.700)"

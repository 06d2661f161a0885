"""conf/full holds only what differs from conf/base, and Kedro's soft merge fills in
the rest: the merged full parameters are the full-size settings, key for key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = ("brain_tumor_bilstm", "lstm_forecast", "smri_cnn_lstm")
WIDE = {"channels": [16, 32, 64], "hidden_size": 64, "dropout": 0.3}

# Every merged full parameter that differs from base, as the full environment held it
# when each file repeated whole blocks (before the soft merge let them shrink).
FULL_DIFFERS = {
    "brain_tumor_bilstm": {
        "training.epochs": 30,
        "inference.input_path": "../shared/data/brain_tumor_mri/Testing/glioma",
    },
    "lstm_forecast": {
        "training.epochs": 50,
        "training.early_stopping_patience": 10,
    },
    "smri_cnn_lstm": {
        "ingestion.size": [64, 64],
        "split.n_folds": 5,
        "split.val_fraction": 0.15,
        "training.epochs": 100,
        "training.lr": 0.001,
        "training.early_stopping_patience": 15,
        "training.show_progress": True,
        "cnn_baseline.training_overrides.lr": 0.0001,
        "predict.patient_folder": "../shared/data/brats_samples/TCGA-FG-6692",
        **{
            f"{m}.model.{k}": v
            for m in ("cnn_baseline", "cnn_gap", "cnn_se")
            for k, v in WIDE.items()
        },
    },
}


def _merged(env: str) -> dict[str, Any]:
    from kedro.config import OmegaConfigLoader

    from medlstm.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(
        conf_source=str(ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS
    )
    return loader["parameters"]


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_leaves(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@pytest.fixture(scope="module")
def merged() -> dict[str, dict[str, Any]]:
    return {"base": _merged("local"), "full": _merged("full")}


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_merged_full_parameters_are_base_plus_the_full_settings(merged, pipeline):
    base, full = _leaves(merged["base"][pipeline]), _leaves(merged["full"][pipeline])
    assert set(full) == set(base)  # soft merge: no base key is lost
    differs = {k: v for k, v in full.items() if v != base[k]}
    assert differs == FULL_DIFFERS[pipeline]


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_full_files_repeat_no_base_value(merged, pipeline):
    path = ROOT / f"conf/full/parameters_{pipeline}.yml"
    written = _leaves(yaml.safe_load(path.read_text())[pipeline])
    base = _leaves(merged["base"][pipeline])
    unknown = sorted(set(written) - set(base))
    assert not unknown, f"{path.name} sets keys conf/base does not know: {unknown}"
    repeated = sorted(k for k, v in written.items() if v == base[k])
    assert not repeated, f"{path.name} repeats base values: {repeated}"

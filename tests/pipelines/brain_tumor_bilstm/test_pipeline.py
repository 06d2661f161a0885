"""End to end on the shipped excerpt: files, MLflow run, pyfunc model; and the
pipeline's wiring and parameter files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import pandas as pd

from tests.pipelines.brain_tumor_bilstm.factories import CLASSES

ROOT = Path(__file__).resolve().parents[3]
EXCERPT = ROOT / "data/01_raw/brain_mri_excerpt"


def _parameters(env: str) -> dict:
    from kedro.config import OmegaConfigLoader

    from medlstm.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(
        conf_source=str(ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS
    )
    return loader["parameters"]["brain_tumor_bilstm"]


def test_full_environment_changes_only_the_schedule_and_the_inference_folder():
    base, full = _parameters("local"), _parameters("full")
    assert full["training"]["epochs"] == 30 > base["training"]["epochs"]
    assert full["inference"]["input_path"].startswith("../shared/data/brain_tumor_mri/")
    for params in (base, full):
        del params["training"]["epochs"], params["inference"]["input_path"]
    assert full == base


def test_pipeline_on_the_excerpt_end_to_end(kedro_project):
    kedro_project.run_pipeline(
        "brain_tumor_bilstm",
        params={
            "brain_tumor_bilstm": {"training": {"epochs": 2, "show_progress": False}}
        },
    )
    data = kedro_project.root / "data"

    # Every planted cross-split duplicate is found and kept out of the dedup test set.
    planted = re.findall(
        r"^- (Testing/\S+) ~ (Training/\S+):", (EXCERPT / "README.md").read_text(), re.M
    )
    assert len(planted) >= 4
    subsets = pd.read_parquet(data / "05_model_input/brain_mri_subsets.parquet")
    leaked = subsets.set_index("image_id").loc[
        [t for t, _ in planted], "deduplicated_test"
    ]
    assert not leaked.any()
    assert subsets["deduplicated_test"].sum() < (subsets["subset"] == "test").sum()
    train_groups = set(subsets.loc[subsets["subset"] == "train", "group"])
    assert not train_groups & set(subsets.loc[subsets["subset"] == "val", "group"])

    report = (data / "08_reporting/brain_bilstm_report.md").read_text()
    assert "Results beside the original" in report and "| accuracy | 0.8759 |" in report
    metrics = json.loads(
        (data / "08_reporting/brain_bilstm_test_metrics.json").read_text()
    )
    assert metrics["published"]["n"] == (subsets["subset"] == "test").sum()
    assert metrics["deduplicated"]["n"] == subsets["deduplicated_test"].sum()
    folder = pd.read_csv(data / "07_model_output/brain_bilstm_predictions.csv")
    assert len(folder) == len(list((EXCERPT / "Testing/glioma").iterdir()))

    run = kedro_project.runs("brain_tumor_bilstm")[0]
    assert run.data.params["brain_tumor_bilstm.training.lr"] == "0.001"
    assert run.data.params["brain_tumor_bilstm.variant.name"] == "original"
    assert (
        run.data.metrics["brain_tumor_bilstm.test_published.accuracy"]
        == metrics["published"]["accuracy"]
    )
    assert "brain_tumor_bilstm.test_deduplicated.macro_f1" in run.data.metrics
    assert "brain_tumor_bilstm.training.val_loss" in run.data.metrics
    client = mlflow.MlflowClient(tracking_uri=kedro_project.tracking_uri)
    logged = {
        f.path for f in client.list_artifacts(run.info.run_id, "brain_tumor_bilstm")
    }
    assert {
        "brain_tumor_bilstm/brain_bilstm_report.md",
        "brain_tumor_bilstm/brain_bilstm_misclassified.png",
        "brain_tumor_bilstm/brain_bilstm_confusion_deduplicated.png",
        "brain_tumor_bilstm/brain_bilstm_training_curves.png",
    } <= logged

    # The pyfunc model takes the raw bytes of an image file.
    model = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list"
    )[0]
    pyfunc = mlflow.pyfunc.load_model(f"models:/{model.model_id}")
    image = next((EXCERPT / "Testing/notumor").iterdir()).read_bytes()
    out = pyfunc.predict(pd.DataFrame({"image": [image]}))
    assert out["predicted_class"].iloc[0] in CLASSES
    assert abs(out[[f"p_{c}" for c in CLASSES]].iloc[0].sum() - 1.0) < 1e-3

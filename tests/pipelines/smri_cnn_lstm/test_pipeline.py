"""Wiring, catalog and an end-to-end run of smri_cnn_lstm on a small synthetic cohort."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import yaml

from medlstm.core.persistence import load_model
from medlstm.models.cnn3d_lstm import CNN3DLSTM
from medlstm.pipelines.smri_cnn_lstm import create_pipeline
from medlstm.pipelines.smri_cnn_lstm.pipeline import MODELS

PROJECT_ROOT = Path(__file__).resolve().parents[3]
IN_MEMORY = {
    "smri_predict_input",
    *(f"smri_cnn_lstm.{m}.smri_prediction" for m in MODELS),
}
SMALL_COHORT = """
smri_cohort:
  type: medlstm.synthetic.brats.SyntheticBratsDataset
  path: data/01_raw/smri_synthetic
  patients: 12
  seed: 1
  shape: [32, 32, 20]
  spacing: [6.0, 6.0, 8.0]
  hgg_fraction: 0.5
  unseen: 1
"""
FAST = {
    "smri_cnn_lstm": {
        "ingestion": {"depth": 16, "size": [16, 16]},
        "split": {"n_folds": 2},
        "training": {"epochs": 2},
    }
}


def _merged_parameters(env: str) -> dict:
    """Parameters as a run in ``env`` sees them: conf/full soft-merged onto base."""
    from kedro.config import OmegaConfigLoader

    from medlstm.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"),
        env="local" if env == "base" else env,
        **CONFIG_LOADER_ARGS,
    )
    return loader["parameters"]


def _yaml(env: str, kind: str) -> dict:
    return yaml.safe_load(
        (PROJECT_ROOT / "conf" / env / f"{kind}_smri_cnn_lstm.yml").read_text()
    )


class TestWiring:
    def test_each_architecture_reads_its_own_namespaced_parameters(self):
        pipeline = create_pipeline()
        for model in MODELS:
            inputs = {
                i
                for n in pipeline.nodes
                if n.name.startswith(f"smri_cnn_lstm.{model}.")
                for i in n.inputs
            }
            assert {
                f"params:smri_cnn_lstm.{model}.model",
                f"params:smri_cnn_lstm.{model}.label",
                "params:smri_cnn_lstm.training",
                "smri_model_input",
                "smri_folds",
            } <= inputs

    def test_every_parameter_input_exists_in_base_and_full(self):
        for env in ("base", "full"):
            params = _merged_parameters(env)
            for name in create_pipeline().inputs():
                if name.startswith("params:"):
                    node = params
                    for key in name.removeprefix("params:").split("."):
                        node = node[key]

    def test_every_persisted_dataset_resolves_in_the_catalog(self):
        from kedro.io import DataCatalog

        config = _yaml("base", "catalog")
        catalog = DataCatalog.from_config(config)
        datasets = {
            d for d in create_pipeline().datasets() if not d.startswith("params:")
        }
        assert all(d.startswith(("smri_", "smri_cnn_lstm.")) for d in datasets)
        for name in datasets - IN_MEMORY:
            assert name in catalog, name
        assert not IN_MEMORY & set(config)

    def test_the_full_environment_reads_a_real_cohort_at_full_size(self):
        full, base = _yaml("full", "catalog"), _yaml("base", "catalog")
        assert full["smri_cohort"]["type"].endswith("NiftiPatientsDataset")
        assert set(full) == {"smri_cohort"} and set(base) > set(full)
        params = _merged_parameters("full")["smri_cnn_lstm"]
        assert (
            params["ingestion"]["size"] == [64, 64]
            and params["ingestion"]["depth"] == 32
        )


def test_default_pipeline_end_to_end(kedro_project):
    (kedro_project.root / "conf" / "test").mkdir()
    (kedro_project.root / "conf" / "test" / "catalog_smri_cnn_lstm.yml").write_text(
        SMALL_COHORT
    )
    kedro_project.run_pipeline("smri_cnn_lstm", params=FAST, env="test")

    (run,) = kedro_project.runs("smri_cnn_lstm")
    assert run.info.status == "FINISHED"
    params, metrics = run.data.params, run.data.metrics
    assert params["smri_cnn_lstm.cnn_se.model.extractor"] == "se"
    assert params["smri_cnn_lstm.training.epochs"] == "2"
    assert params["smri_cnn_lstm.ingestion.size"] == "[16, 16]"
    for model in MODELS:
        for name in ("accuracy", "roc_auc", "sensitivity", "specificity"):
            assert f"smri_cnn_lstm.{model}.cv.{name}.mean" in metrics
        assert f"smri_cnn_lstm.{model}.fold1.val_loss" in metrics
        assert f"smri_cnn_lstm.{model}.final.val_accuracy" in metrics

    client = mlflow.MlflowClient(kedro_project.tracking_uri)
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "smri_cnn_lstm")}
    assert {
        "smri_cnn_lstm/smri_summary.md",
        "smri_cnn_lstm/smri_loss_comparison.png",
        "smri_cnn_lstm/smri_accuracy_comparison.png",
        "smri_cnn_lstm/smri_ingestion_report.json",
        "smri_cnn_lstm/smri_folds.json",
        "smri_cnn_lstm/smri_prediction.json",
        *(f"smri_cnn_lstm/{m}" for m in MODELS),
    } <= logged
    per_model = {
        a.path for a in client.list_artifacts(run.info.run_id, "smri_cnn_lstm/cnn_gap")
    }
    assert {
        "smri_cnn_lstm/cnn_gap/smri_cnn_gap.pt",
        "smri_cnn_lstm/cnn_gap/smri_cnn_gap_training_curves.png",
        "smri_cnn_lstm/cnn_gap/smri_cnn_gap_cv_results.json",
    } <= per_model

    report = json.loads(
        Path("data/08_reporting/smri_ingestion_report.json").read_text()
    )
    assert report["synthetic"] and report["patients_used"] == 12
    assert report["tensor_shape"] == [12, 4, 16, 16, 16]
    cached = np.load("data/05_model_input/smri_model_input.npz")
    assert (
        cached["x"].shape == (12, 4, 16, 16, 16)
        and sorted(cached["y"].tolist()) == [0] * 6 + [1] * 6
    )

    folds = json.loads(Path("data/05_model_input/smri_folds.json").read_text())
    tested = sorted(p for f in folds["folds"] for p in f["test"])
    assert tested == sorted(cached["patient_id"].tolist())

    summary = Path("data/08_reporting/smri_summary.md").read_text()
    assert "synthetic data" in summary.splitlines()[0]
    assert all(label in summary for label in ("CNN-1", "CNN-2", "CNN-3"))
    cv = json.loads(Path("data/08_reporting/smri_cnn_se_cv_results.json").read_text())
    assert len(cv["folds"]) == 2 and all(len(f["history"]) == 2 for f in cv["folds"])

    prediction = json.loads(
        Path("data/07_model_output/smri_prediction.json").read_text()
    )
    assert prediction["patient"] == "SYN_U001" and len(prediction["predictions"]) == 3
    assert "synthetic data" in prediction["title"]
    model = load_model("data/06_models/smri_cnn_se.pt")
    assert isinstance(model, CNN3DLSTM) and model.config["input_shape"] == [16, 16, 16]

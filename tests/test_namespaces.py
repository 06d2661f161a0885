"""Kedro namespaces group each pipeline's nodes (collapsible in kedro viz) without
renaming a dataset or a parameter."""

from __future__ import annotations

import pytest

from medlstm.pipelines.brain_tumor_bilstm.pipeline import (
    GROUPS as BRAIN_GROUPS,
)
from medlstm.pipelines.brain_tumor_bilstm.pipeline import (
    create_inference_pipeline as brain_inference_pipeline,
)
from medlstm.pipelines.brain_tumor_bilstm.pipeline import (
    create_training_pipeline as brain_pipeline,
)
from medlstm.pipelines.ecg_autoencoder.pipeline import (
    create_pipeline as ecg_pipeline,
)
from medlstm.pipelines.lstm_forecast.pipeline import (
    create_pipeline as forecast_pipeline,
)
from medlstm.pipelines.lstm_scratch.pipeline import create_pipeline as scratch_pipeline

GROUPED = {
    "lstm_forecast": (forecast_pipeline, ("ingestion", "training", "evaluation")),
    "lstm_forecast_csv": (
        lambda: forecast_pipeline(source="csv"),
        ("ingestion", "training", "evaluation"),
    ),
    "lstm_scratch": (scratch_pipeline, ("ingestion", "training", "evaluation")),
    "brain_tumor_bilstm": (brain_pipeline, BRAIN_GROUPS),
}


@pytest.mark.parametrize("name", sorted(GROUPED))
def test_nodes_are_grouped_and_datasets_keep_their_names(name):
    create, groups = GROUPED[name]
    pipeline = create()
    package = name.removesuffix("_csv")
    namespaces = {n.namespace for n in pipeline.nodes}
    assert namespaces == {f"{package}.{g}" for g in groups}
    for n in pipeline.nodes:
        assert n.name == f"{n.namespace}.{n.name.rsplit('.', 1)[-1]}"
    datasets = pipeline.datasets()
    assert not [d for d in datasets if d.startswith(f"{package}.")]
    params = [d for d in datasets if d.startswith("params:")]
    # The package's own parameters, whole (brain's report reads them all) or a part.
    assert params and all(
        p == f"params:{package}" or p.startswith(f"params:{package}.") for p in params
    )
    # The groups read top to bottom: training needs only the outputs of the groups
    # before it (the first group, where it is second).
    training = pipeline.only_nodes_with_namespaces([f"{package}.training"])
    before = groups[: groups.index("training")]
    produced = pipeline.only_nodes_with_namespaces([f"{package}.{g}" for g in before])
    assert {i for i in training.inputs() if not i.startswith("params:")} <= set(
        produced.all_outputs()
    )


def test_brain_pyfunc_inference_node_sits_in_the_inference_namespace():
    (predict,) = brain_inference_pipeline().nodes
    assert predict.name == "brain_tumor_bilstm.inference.predict_image_bytes"
    assert "brain_pyfunc_input" in predict.inputs


@pytest.mark.parametrize(
    ("variant", "groups"),
    [
        (
            "training",
            {"ingestion", "autoencoder", "cnn", "linear", "rhythm", "reporting"},
        ),
        ("inference", {"inference"}),
    ],
)
def test_ecg_nodes_are_grouped_and_models_read_only_ingestion(variant, groups):
    pipeline = ecg_pipeline(variant)
    assert {n.namespace for n in pipeline.nodes} == {
        f"ecg_autoencoder.{g}" for g in groups
    }
    assert not [d for d in pipeline.datasets() if d.startswith("ecg_autoencoder.")]
    if variant == "training":
        ingestion = pipeline.only_nodes_with_namespaces(["ecg_autoencoder.ingestion"])
        for model in ("autoencoder", "cnn", "linear", "rhythm"):
            part = pipeline.only_nodes_with_namespaces([f"ecg_autoencoder.{model}"])
            needs = {i for i in part.inputs() if not i.startswith("params:")}
            assert needs <= set(ingestion.all_outputs()), (model, needs)

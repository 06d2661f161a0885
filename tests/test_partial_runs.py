"""Every registered pipeline runs in parts (``--nodes``, ``--from-nodes``,
``--to-nodes``), including the training pipelines that log a pyfunc model; the model
is logged only by a part that trains it."""

from __future__ import annotations

import mlflow
import pytest
from kedro.pipeline import Pipeline
from kedro_mlflow.pipeline.pipeline_ml import PipelineML

from medlstm.pipeline_registry import register_pipelines
from medlstm.tracking.pipeline_ml import SliceablePipelineML


def _run(project, pipeline: str, **slicing) -> None:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    while mlflow.active_run():
        mlflow.end_run()
    bootstrap_project(project.root)
    with KedroSession.create(project_path=project.root) as session:
        session.run(pipeline_names=[pipeline], **slicing)


def _logged_models(project) -> list:
    mlflow.set_tracking_uri(project.tracking_uri)
    return mlflow.search_logged_models(output_format="list")


@pytest.mark.slow
def test_ecg_runs_up_to_the_split_without_logging_a_model(kedro_project):
    _run(
        kedro_project,
        "ecg_autoencoder",
        to_nodes=["ecg_autoencoder.ingestion.assign_splits"],
    )
    data = kedro_project.root / "data"
    assert (data / "03_primary" / "ecg_beats_split.parquet").exists()
    assert not any((data / "06_models").iterdir())  # nothing trained
    (run,) = kedro_project.runs("ecg_autoencoder")
    assert run.info.status == "FINISHED"
    assert _logged_models(kedro_project) == []


@pytest.mark.slow
def test_ecg_runs_one_node(kedro_project):
    _run(
        kedro_project,
        "ecg_autoencoder",
        node_names=["ecg_autoencoder.ingestion.segment_records"],
    )
    (run,) = kedro_project.runs("ecg_autoencoder")
    assert run.info.status == "FINISHED"
    data = kedro_project.root / "data"
    assert (data / "02_intermediate" / "ecg_beats.parquet").exists()
    assert (data / "05_model_input" / "ecg_windows.npz").exists()
    assert not (data / "03_primary" / "ecg_beats_split.parquet").exists()


@pytest.mark.slow
def test_brain_ingestion_and_duplicate_audit_run_alone(kedro_project):
    _run(
        kedro_project,
        "brain_tumor_bilstm",
        node_names=[
            "brain_tumor_bilstm.ingestion.ingest_images",
            "brain_tumor_bilstm.audit.audit_duplicates",
        ],
    )
    (run,) = kedro_project.runs("brain_tumor_bilstm")
    assert run.info.status == "FINISHED"
    data = kedro_project.root / "data"
    assert (data / "03_primary" / "brain_mri_index_audited.parquet").exists()
    assert (data / "08_reporting" / "brain_mri_duplicate_pairs.csv").exists()
    assert _logged_models(kedro_project) == []


TRAINING = {
    "ecg_autoencoder": (
        "ecg_autoencoder.ingestion.segment_records",
        "ecg_autoencoder.autoencoder.train_autoencoder",
    ),
    "brain_tumor_bilstm": (
        "brain_tumor_bilstm.ingestion.ingest_images",
        "brain_tumor_bilstm.training.train_classifier",
    ),
}


@pytest.mark.parametrize("name", sorted(TRAINING))
def test_a_slice_is_a_model_pipeline_only_when_it_trains_the_model(name):
    pipeline = register_pipelines()[name]
    assert isinstance(pipeline, SliceablePipelineML)
    first, train = TRAINING[name]
    outputs = next(n for n in pipeline.nodes if n.name == first).outputs
    # Parts without the training node run as plain pipelines.
    for part in (
        pipeline.filter(to_nodes=[first]),
        pipeline.filter(node_names=[first]),
        pipeline.only_nodes(first),
        pipeline.to_outputs(*outputs),
    ):
        assert type(part) is Pipeline and [n.name for n in part.nodes] == [first]
    # The whole, and the nodes that make what the model is made of, log the model.
    assert isinstance(pipeline.filter(), PipelineML)
    makers = [
        n.name for n in pipeline.nodes if set(n.outputs) & pipeline.model_inputs()
    ]
    assert train in makers
    assert isinstance(pipeline.filter(node_names=makers), PipelineML)
    # Any part: a model pipeline exactly when it makes all of that.
    for part in (
        pipeline.filter(from_nodes=[first]),
        pipeline.filter(from_nodes=[train]),
        pipeline.filter(node_names=[train]),
        pipeline.filter(to_nodes=[train]),
    ):
        assert isinstance(part, PipelineML) == (
            pipeline.model_inputs() <= part.all_outputs()
        )


def test_every_registered_pipeline_slices_by_node():
    for name, pipeline in register_pipelines().items():
        for node in pipeline.nodes[:1] + pipeline.nodes[-1:]:
            for part in (
                pipeline.filter(node_names=[node.name]),
                pipeline.filter(from_nodes=[node.name]),
                pipeline.filter(to_nodes=[node.name]),
            ):
                assert part.nodes, (name, node.name)

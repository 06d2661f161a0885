"""Training pipelines that log a pyfunc model and still run in parts.

kedro-mlflow's ``PipelineML`` (from ``pipeline_ml_factory``) refuses any slice
(``--nodes``, ``--from-nodes``, ``--to-nodes``, ``--tags``...) that does not produce
what its inference pipeline needs: ``kedro run --pipeline=ecg_autoencoder
--to-nodes=assign_splits`` failed with "No free input is allowed". Here a slice that
trains the model stays a ``PipelineML`` (kedro-mlflow logs the model at its end); any
other slice is a plain ``Pipeline``: it runs, and no model is logged.
"""

from __future__ import annotations

import logging

from kedro.pipeline import Pipeline
from kedro_mlflow.pipeline.pipeline_ml import PipelineML

logger = logging.getLogger(__name__)


class SliceablePipelineML(PipelineML):
    """A ``PipelineML`` whose slices that do not train the model are plain pipelines."""

    @classmethod
    def of(cls, pipeline: PipelineML, nodes: list | None = None) -> SliceablePipelineML:
        """The same training, inference and model arguments, sliceable; ``nodes``
        replaces the training nodes (a slice of them)."""
        return cls(
            nodes=pipeline.nodes if nodes is None else nodes,
            inference=pipeline.inference,
            input_name=pipeline.input_name,
            kpm_kwargs=pipeline.kpm_kwargs,
            log_model_kwargs=pipeline.log_model_kwargs,
        )

    def model_inputs(self) -> set[str]:
        """What the inference pipeline takes from training (the model, its example
        input when training makes one); parameters are read at logging time."""
        return {
            name
            for name in self.inference.inputs()
            if not name.startswith("params:") and name in self.all_outputs()
        }

    def _turn_pipeline_to_ml(self, pipeline: Pipeline) -> Pipeline:
        missing = self.model_inputs() - pipeline.all_outputs()
        if missing:
            logger.info(
                "This part of the pipeline does not produce %s: the pyfunc model %s is "
                "not logged.",
                ", ".join(sorted(missing)), self.log_model_kwargs.get("name"),
            )  # fmt: skip
            return Pipeline(pipeline.nodes)
        return self.of(self, pipeline.nodes)

    # kedro-mlflow's versions return the unsliced training pipeline (only_nodes...)
    # or slice with the wrong method (to_outputs); these slice, then decide.
    def only_nodes(self, *node_names: str) -> Pipeline:
        return self._turn_pipeline_to_ml(self.training.only_nodes(*node_names))

    def only_nodes_with_outputs(self, *outputs: str) -> Pipeline:
        return self._turn_pipeline_to_ml(
            self.training.only_nodes_with_outputs(*outputs)
        )

    def only_nodes_with_inputs(self, *inputs: str) -> Pipeline:
        return self._turn_pipeline_to_ml(self.training.only_nodes_with_inputs(*inputs))

    def only_nodes_with_namespaces(self, node_namespaces: str) -> Pipeline:
        return self._turn_pipeline_to_ml(
            self.training.only_nodes_with_namespaces(node_namespaces)
        )

    def to_outputs(self, *outputs: str) -> Pipeline:
        return self._turn_pipeline_to_ml(self.training.to_outputs(*outputs))


def sliceable(pipeline: Pipeline) -> Pipeline:
    """``pipeline`` itself, or its sliceable version when it is a ``PipelineML``."""
    if isinstance(pipeline, PipelineML) and not isinstance(
        pipeline, SliceablePipelineML
    ):
        return SliceablePipelineML.of(pipeline)
    return pipeline

# Long on purpose: one hook (RunPageHook) and the helpers only it uses.
"""MLflow runs that explain themselves in the MLflow UI.

kedro-mlflow opens one run per ``kedro run`` and logs parameters, metrics and
artifacts. `RunPageHook` adds what the run page and the experiment list show:

- the experiment opens in MLflow 3's model-training view (experiment tag
  ``mlflow.experimentKind``), not its GenAI view (traces, sessions);
- the run is named ``<pipeline> · <environment> · <start time>``;
- the run's description (``mlflow.note.content``) is the pipeline's summary report,
  the Markdown file it writes to ``data/08_reporting``;
- the datasets the pipeline reads are the run's dataset inputs (source path and
  digest): raw inputs as meta datasets whose digest hashes their files, tables
  (pandas DataFrames read from ``01_raw`` ... ``05_model_input``) as MLflow pandas
  datasets with their schema;
- every trained model is a new version of a registered model
  ``<pipeline>.<model>``, tagged with its test metrics. A catalog entry declares a
  model with ``metadata: {model_registry: {name: ..., test_metrics: <prefix>}}``;
  the version's tags are the run's metrics whose key starts with the prefix. The
  pyfunc model of a ``pipeline_ml_factory`` pipeline is ``<pipeline>.pyfunc``,
  tagged with the test metrics of the models its inference pipeline reads.

Tracking is not the product: every MLflow call here is wrapped so that a failure
(an unreachable server, a store refusing a tag) logs a warning and the run goes on.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import warnings
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline

from medlstm.tracking.run_info import (
    dataset_path,
    is_server,
    pipeline_label,
    pipeline_names,
)

logger = logging.getLogger(__name__)

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
DESCRIPTION_TAG = "mlflow.note.content"
REGISTRY_METADATA = "model_registry"
# MLflow refuses longer tag values.
MAX_DESCRIPTION_CHARS = 8000
# Tables below these layers are what the models learn from; predictions and reports
# read back by reporting nodes are outputs, not inputs, of the run.
OUTPUT_LAYERS = ("06_models", "07_model_output", "08_reporting")
# Files up to this total are hashed in full; larger inputs by names, sizes and times.
FULL_HASH_BYTES = 512 * 2**20


def _survive(what: str) -> Callable:
    """Decorator: a failure of ``what`` logs a warning instead of failing the run."""

    def wrap(func: Callable) -> Callable:
        @functools.wraps(func)
        def guarded(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - tracking must not stop a run
                logger.warning(
                    "MLflow: could not %s (%s: %s); the run goes on without it.",
                    what,
                    type(error).__name__,
                    error,
                )
                return None

        return guarded

    return wrap


def run_name(pipeline: str, env: str | None, started: datetime) -> str:
    """``ecg_autoencoder · full · 2026-11-30 17:40``; no ``--env`` reads as ``base``."""
    return f"{pipeline} · {env or 'base'} · {started:%Y-%m-%d %H:%M}"


def run_page_url(server: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI, in the model-training view: MLflow 3.17 picks
    the view from ``workflowType`` (or the browser's last choice), not from the
    experiment's kind tag."""
    return (
        f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        "?workflowType=machine_learning"
    )


def layer_of(path: Path) -> str:
    """``raw`` for ``data/01_raw/...``, ``model_input`` for ``05_model_input``, ...;
    ``input`` for a file outside the numbered data folders."""
    for part in reversed(path.parts[:-1]):
        match = re.fullmatch(r"\d\d_(\w+)", part)
        if match:
            return match.group(1)
    return "input"


def files_digest(path: Path, full_hash_bytes: int = FULL_HASH_BYTES) -> str:
    """A short digest of a file or a folder tree.

    Contents are hashed when they total at most ``full_hash_bytes``; beyond that the
    relative names, sizes and modification times are (a full database is hashed in
    a second, a large image collection would take minutes).
    """
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    if path.is_file():
        files = [path]
    if not files:
        raise FileNotFoundError(f"{path} holds no files to digest")
    stats = [(f, f.stat()) for f in files]
    by_content = sum(s.st_size for _, s in stats) <= full_hash_bytes
    digest = hashlib.sha256()
    for file, stat in stats:
        relative = file.relative_to(path) if path.is_dir() else Path(file.name)
        digest.update(f"{relative.as_posix()}\0{stat.st_size}\0".encode())
        if by_content:
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(2**20), b""):
                    digest.update(block)
        else:
            digest.update(str(stat.st_mtime_ns).encode())
    return digest.hexdigest()[:16]


def summary_markdown(paths: Iterable[Path], limit: int = MAX_DESCRIPTION_CHARS) -> str:
    """The text of the summary report(s) that exist, cut to ``limit`` characters with
    a note naming the complete file."""
    texts = [(p, p.read_text(encoding="utf-8")) for p in paths if p.is_file()]
    text = "\n\n".join(t.strip() for _, t in texts)
    if len(text) <= limit:
        return text
    names = ", ".join(p.name for p, _ in texts)
    note = (
        f"\n\n*(cut at {limit} characters: the whole report is the artifact {names})*"
    )
    return text[: limit - len(note)] + note


def metrics_with_prefixes(
    metrics: dict[str, float], prefixes: Iterable[str]
) -> dict[str, str]:
    """The run metrics whose key starts with one of ``prefixes``, as tag values."""
    prefixes = tuple(prefixes)
    return {
        key: f"{value:.6g}"
        for key, value in sorted(metrics.items())
        if prefixes and key.startswith(prefixes)
    }


class RunPageHook:
    """Names, describes and annotates kedro-mlflow's run (see the module docstring)."""

    def __init__(self) -> None:
        self._context: KedroContext | None = None
        self._run_id: str | None = None
        self._pipeline_label = ""
        self._logged_inputs: set[str] = set()
        self._free_inputs: set[str] = set()

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        self._context = context

    @hook_impl(trylast=True)  # after kedro-mlflow has started the run
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog
    ) -> None:
        self._run_id = None
        self._logged_inputs = set()
        self._free_inputs = {n for n in pipeline.inputs() if not _is_parameter(n)}
        self._pipeline_label = pipeline_label(run_params)
        self._start(run_params)

    @_survive("name the run and set the experiment's kind")
    def _start(self, run_params: dict[str, Any]) -> None:
        import mlflow

        run = mlflow.active_run()
        if run is None:  # tracking is off for this pipeline
            return
        self._run_id = run.info.run_id
        client = mlflow.MlflowClient()
        experiment = client.get_experiment(run.info.experiment_id)
        if experiment.tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING_KIND:
            client.set_experiment_tag(
                experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND
            )
        # Rename only kedro-mlflow's default name: a name set in mlflow.yml or a run
        # the user opened before the session keeps its own.
        if run.info.run_name == "+".join(pipeline_names(run_params)):
            started = datetime.fromtimestamp(run.info.start_time / 1000)
            client.update_run(
                self._run_id,
                name=run_name(self._pipeline_label, run_params.get("env"), started),
            )

    @hook_impl
    def before_node_run(self, inputs: dict[str, Any], catalog: DataCatalog) -> None:
        if self._run_id is None:
            return
        for name, data in inputs.items():
            if name in self._logged_inputs or _is_parameter(name):
                continue
            self._logged_inputs.add(name)
            self._log_input(name, data, catalog)

    @_survive("log a dataset input")
    def _log_input(self, name: str, data: Any, catalog: DataCatalog) -> None:
        import mlflow
        import pandas as pd
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        path = dataset_path(catalog, name)
        if path is None or any(layer in path.parts for layer in OUTPUT_LAYERS):
            return
        if isinstance(data, pd.DataFrame):
            with warnings.catch_warnings():
                # A hint for model signatures (integer columns and missing values);
                # a dataset's schema is a record, not a contract.
                warnings.filterwarnings(
                    "ignore", "Hint: Inferred schema contains integer"
                )
                dataset = mlflow.data.from_pandas(data, source=str(path), name=name)
        elif name in self._free_inputs and path.exists():
            from mlflow.data.meta_dataset import MetaDataset

            dataset = MetaDataset(
                source=resolve_dataset_source(str(path)),
                name=name,
                digest=files_digest(path),
            )
        else:
            return
        mlflow.MlflowClient().log_inputs(
            self._run_id,
            [
                DatasetInput(
                    dataset._to_mlflow_entity(),
                    tags=[InputTag(MLFLOW_DATASET_CONTEXT, layer_of(path))],
                )
            ],
        )

    @hook_impl(trylast=True)  # after kedro-mlflow has logged the pyfunc model
    def after_pipeline_run(self, pipeline: Pipeline, catalog: DataCatalog) -> None:
        if self._run_id is None:
            return
        self._describe(pipeline, catalog)
        self._register_models(pipeline, catalog)
        self._announce()
        self._run_id = None

    @_survive("name the run page")
    def _announce(self) -> None:
        import mlflow

        run = mlflow.MlflowClient().get_run(self._run_id)
        uri = mlflow.get_tracking_uri()
        on_server = is_server(uri)
        logger.info(
            "MLflow run page%s: %s",
            "" if on_server else " (once `make mlflow-ui` serves this store)",
            run_page_url(
                uri if on_server else "http://127.0.0.1:5000",
                run.info.experiment_id,
                self._run_id,
            ),
        )

    @_survive("set the run's description from the summary report")
    def _describe(self, pipeline: Pipeline, catalog: DataCatalog) -> None:
        import mlflow

        reports = [
            path
            for name in sorted(pipeline.all_outputs())
            if (path := dataset_path(catalog, name)) is not None
            and path.suffix == ".md"
            and "08_reporting" in path.parts
        ]
        text = summary_markdown(reports)
        if text:
            mlflow.MlflowClient().set_tag(self._run_id, DESCRIPTION_TAG, text)

    def _register_models(self, pipeline: Pipeline, catalog: DataCatalog) -> None:
        import mlflow

        client = mlflow.MlflowClient()
        metrics = self._metrics(client)
        if metrics is None:
            return
        prefixes: dict[str, list[str]] = {}
        for name in sorted(pipeline.all_outputs()):
            declared = _registry_metadata(catalog, name)
            if declared is None:
                continue
            prefixes[name] = declared["test_metrics"]
            self._register_file(client, catalog, name, declared, metrics)
        inference = getattr(pipeline, "inference", None)
        if inference is not None:
            used = [p for n in sorted(inference.inputs()) for p in prefixes.get(n, [])]
            self._register_pyfunc(
                client, pipeline, metrics_with_prefixes(metrics, used)
            )

    @_survive("read the run's metrics")
    def _metrics(self, client) -> dict[str, float]:
        return dict(client.get_run(self._run_id).data.metrics)

    @_survive("register a model file")
    def _register_file(
        self,
        client,
        catalog: DataCatalog,
        dataset_name: str,
        declared: dict[str, Any],
        metrics: dict[str, float],
    ) -> None:
        dataset = catalog.get(dataset_name)
        path = dataset_path(catalog, dataset_name)
        artifact_dir = getattr(dataset, "artifact_path", None)
        if path is None or artifact_dir is None:
            raise ValueError(
                f"{dataset_name} declares metadata.{REGISTRY_METADATA} but is not an "
                "MlflowArtifactDataset with a file: there is nothing in the run to register"
            )
        model = declared.get("name") or dataset_name
        source = f"runs:/{self._run_id}/{artifact_dir}/{path.name}"
        description = (
            f"`{dataset_name}` ({type(dataset).__mro__[1].__name__} file "
            f"`{path.name}`): load it with the catalog entry `{dataset_name}`, or "
            f"download the artifact `{artifact_dir}/{path.name}` of the run."
        )
        tags = metrics_with_prefixes(metrics, declared["test_metrics"])
        self._new_version(client, model, source, tags, description)

    @_survive("register the pyfunc model")
    def _register_pyfunc(
        self, client, pipeline: Pipeline, tags: dict[str, str]
    ) -> None:
        wanted = pipeline.log_model_kwargs.get("name")
        run = client.get_run(self._run_id)
        logged = [
            m
            for m in client.search_logged_models(
                experiment_ids=[run.info.experiment_id],
                filter_string=f"source_run_id = '{self._run_id}'",
            )
            if wanted is None or m.name == wanted
        ]
        if not logged:
            raise LookupError(f"no logged model named {wanted!r} in run {self._run_id}")
        description = (
            f"The inference pipeline with its trained model(s) as one pyfunc model: "
            f"`mlflow.pyfunc.load_model('models:/{self._pipeline_label}.pyfunc/"
            "<version>')`. Loading it runs pickled code: load it from trusted stores only."
        )
        self._new_version(
            client, "pyfunc", f"models:/{logged[0].model_id}", tags, description
        )

    def _new_version(
        self,
        client,
        model: str,
        source: str,
        tags: dict[str, str],
        description: str,
    ) -> None:
        from mlflow.exceptions import MlflowException

        name = f"{self._pipeline_label}.{model}"
        try:
            client.create_registered_model(
                name,
                description=f"`{model}` as trained by `kedro run --pipeline="
                f"{self._pipeline_label}`: one version per run.",
            )
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = client.create_model_version(
            name,
            source,
            run_id=self._run_id,
            tags=tags,
            description=description,
            model_id=source.removeprefix("models:/")
            if source.startswith("models:/")
            else None,
        )
        logger.info("MLflow: registered %s version %s", name, version.version)


def _is_parameter(name: str) -> bool:
    return name == "parameters" or name.startswith("params:")


def _registry_metadata(catalog: DataCatalog, name: str) -> dict[str, Any] | None:
    """A dataset's ``metadata.model_registry`` with ``test_metrics`` as a list of
    prefixes; None when the dataset declares no model."""
    try:
        metadata = getattr(catalog.get(name), "metadata", None) or {}
    except Exception:  # noqa: BLE001 - a dataset that does not resolve is no model
        return None
    declared = metadata.get(REGISTRY_METADATA)
    if not isinstance(declared, dict):
        return None
    prefixes = declared.get("test_metrics") or []
    return {
        **declared,
        "test_metrics": [prefixes] if isinstance(prefixes, str) else list(prefixes),
    }

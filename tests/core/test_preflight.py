"""Preflight knows every setting a reader takes: the keys of conf/base and the fields
of `TrainingParams` in every training block; a typo still fails, naming the key. It
builds every typed block before any node runs, and a node whose input is such a block
receives the dataclass it built."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pytest
import yaml
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline

from medlstm.core.params import nest_dotted, parsed, project_config
from medlstm.core.preflight import (
    TYPED_BLOCKS,
    PreflightChecksHook,
    _known,
    base_parameters,
    check_parameters,
    typed_blocks,
)
from medlstm.core.training import TrainingParams
from medlstm.pipelines.ecg_autoencoder.detection import DetectionParams

ROOT = Path(__file__).resolve().parents[2]
BASE = base_parameters(ROOT)


def _nested(path: str, value):
    tree = value
    for key in reversed(path.split(".")):
        tree = {key: tree}
    return tree


@pytest.mark.parametrize(
    "path, value",
    [
        ("ecg_autoencoder.autoencoder.training.device", "cpu"),
        ("ecg_autoencoder.rhythm.training.grad_clip_norm", 0.5),
        ("brain_tumor_bilstm.training.optimizer", "adamw"),
        ("lstm_forecast.training.weight_decay", 0.01),
    ],
)
def test_a_training_loop_setting_passes_preflight_in_every_training_block(path, value):
    runtime = _nested(path, value)
    check_parameters(BASE, runtime, runtime, None)


def test_a_mistyped_training_setting_fails_naming_it_and_the_nearest_key():
    runtime = _nested("ecg_autoencoder.autoencoder.training.devcie", "cpu")
    with pytest.raises(ValueError) as error:
        check_parameters(BASE, runtime, runtime, None)
    message = str(error.value)
    assert "ecg_autoencoder.autoencoder.training.devcie (from --params)" in message
    assert "did you mean ecg_autoencoder.autoencoder.training.device?" in message


def test_a_training_loop_setting_keeps_its_kind():
    runtime = _nested("ecg_autoencoder.cnn.training.grad_clip_norm", "high")
    with pytest.raises(ValueError, match="grad_clip_norm must be a number"):
        check_parameters(BASE, runtime, runtime, None)


def test_every_training_block_knows_every_field_of_the_training_loop():
    fields = {f for f in TrainingParams.__dataclass_fields__ if not f.startswith("_")}
    blocks = [
        "ecg_autoencoder.autoencoder.training",
        "ecg_autoencoder.cnn.training",
        "ecg_autoencoder.rhythm.training",
        "brain_tumor_bilstm.training",
        "lstm_forecast.training",
    ]
    for block in blocks:
        for field in fields:
            assert _known(f"{block}.{field}", BASE), f"{block}.{field}"


def _documented_names() -> set[tuple[str, str]]:
    """Every dotted name under a pipeline's parameters that a doc page, the README or
    a conf file writes as ``name=`` or in backticks."""
    roots = "|".join(key for key, value in BASE.items() if isinstance(value, dict))
    pattern = re.compile(rf"(?<![\w.])((?:{roots})(?:\.\w+)+)[=`]")
    pages = [
        ROOT / "README.md",
        ROOT / "conf" / "README.md",
        *sorted((ROOT / "docs").rglob("*.md")),
        *sorted((ROOT / "conf").rglob("*.yml")),
    ]
    return {
        (str(page.relative_to(ROOT)), match.group(1))
        for page in pages
        for match in pattern.finditer(page.read_text())
    }


def _names_that_are_not_parameters() -> set[str]:
    """Node names and namespaces, registered model names and metric names: dotted
    like parameters, documented beside them."""
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(ROOT)
    names: set[str] = set()
    for pipeline in pipelines.values():
        for node in pipeline.nodes:
            names.add(node.name)
            parts = (node.namespace or "").split(".")
            names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    for name in pipelines:  # registered models: <pipeline>.<model>, <pipeline>.pyfunc
        names.add(f"{name}.pyfunc")
        catalog = ROOT / "conf" / "base" / f"catalog_{name}.yml"
        if catalog.exists():
            for entry in (yaml.safe_load(catalog.read_text()) or {}).values():
                registry = ((entry or {}).get("metadata") or {}).get("model_registry")
                if registry:
                    names.add(f"{name}.{registry['name']}")
    return names


def _is_metric(name: str) -> bool:
    return any(
        part.startswith(("test_", "val_", "fold", "train_")) or part == "cv"
        for part in name.split(".")[1:]
    )


def test_every_documented_parameter_is_known_to_preflight():
    not_parameters = _names_that_are_not_parameters()
    unknown = sorted(
        (page, name)
        for page, name in _documented_names()
        if name not in not_parameters
        and not _is_metric(name)
        and not _known(name, BASE)
    )
    # The README's failure table shows this typo being refused; it must stay unknown.
    assert ("docs/running.md", "lstm_forecast.trainng.lr") in unknown
    unknown.remove(("docs/running.md", "lstm_forecast.trainng.lr"))
    assert unknown == []


# --- typed blocks: built once, before any node, and handed on -----------------------

PARAMETERS, _ = project_config(ROOT)


def test_every_typed_block_of_conf_base_is_found_and_builds():
    found = {
        path: row
        for key, value in PARAMETERS.items()
        for path, row, _ in typed_blocks(key, value)
    }
    for path in (
        "ecg_autoencoder.detection",
        "ecg_autoencoder.ingestion",
        "ecg_autoencoder.ingestion.parallel",
        "ecg_autoencoder.cnn.training",
        "smri_cnn_lstm.ingestion",
        "lstm_forecast.training",
    ):
        assert path in found, path
    # Every row is read somewhere: none is left behind by a renamed block.
    assert {row.pattern for row in found.values()} == {
        row.pattern for row in TYPED_BLOCKS
    }
    for key, value in PARAMETERS.items():
        for path, row, block in typed_blocks(key, value):
            parsed(row.cls(), block, path)


def _block(path: str):
    node_ = PARAMETERS
    for key in path.split("."):
        node_ = node_[key]
    return node_


def _preflight(inputs: dict) -> PreflightChecksHook:
    """A hook that has checked a one-node pipeline reading ``inputs`` (``params:``
    names to values)."""
    hook = PreflightChecksHook()
    catalog = DataCatalog(
        {name: MemoryDataset(value) for name, value in inputs.items()}
    )
    pipeline = Pipeline([Node(lambda *args: None, list(inputs), None, name="reader")])
    hook.before_pipeline_run({}, pipeline, catalog)
    return hook


@pytest.mark.parametrize(
    "path, key, value, message",
    [
        ("ecg_autoencoder.detection", "min_rr_s", -0.1, "min_rr_s' must be > 0"),
        ("ecg_autoencoder.ingestion", "window_scaling", "x", "window_scaling' is 'x'"),
        (
            "ecg_autoencoder.ingestion.parallel",
            "n_workers",
            0,
            "parallel.n_workers' must be null or an integer >= 1",
        ),
        ("smri_cnn_lstm.ingestion", "on_error", "x", "ingestion.on_error must be"),
        ("lstm_forecast.training", "lr", -1.0, "training.lr' must be > 0"),
    ],
)
def test_a_bad_value_in_any_typed_block_fails_the_check_naming_it(
    path, key, value, message
):
    outer = path.rsplit(".", 1)[0] if path.endswith(".parallel") else path
    block = _block(outer)
    if outer != path:  # the parallel block sits inside the ingestion block
        block = {**block, "parallel": {**block["parallel"], key: value}}
    else:
        block = {**block, key: value}
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        _preflight({f"params:{outer}": block})


def test_a_node_input_that_is_a_block_gets_the_dataclass_built_once():
    detection = _block("ecg_autoencoder.detection")
    ingestion = _block("ecg_autoencoder.ingestion")
    hook = _preflight(
        {
            "params:ecg_autoencoder.detection": detection,
            "params:ecg_autoencoder.ingestion": ingestion,
            "params:lstm_forecast.training": _block("lstm_forecast.training"),
        }
    )
    handed = hook.before_node_run(
        inputs={
            "params:ecg_autoencoder.detection": detection,
            "params:ecg_autoencoder.ingestion": ingestion,
            "params:lstm_forecast.training": {},
            "other": 1,
        }
    )
    assert set(handed) == {
        "params:ecg_autoencoder.detection",
        "params:lstm_forecast.training",
    }  # the ingestion block also holds keys its dataclass leaves out: kept a mapping
    assert isinstance(handed["params:ecg_autoencoder.detection"], DetectionParams)
    assert isinstance(handed["params:lstm_forecast.training"], TrainingParams)
    again = hook.before_node_run(inputs={"params:ecg_autoencoder.detection": detection})
    assert (
        again["params:ecg_autoencoder.detection"]
        is (handed["params:ecg_autoencoder.detection"])
    )
    assert hook.before_node_run(inputs={"other": 1}) is None


class _Seen:
    """Records the nodes a session starts and the inputs each ran with."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.inputs: dict[str, dict] = {}
        self.preflight: PreflightChecksHook | None = None

    @hook_impl
    def before_node_run(self, node) -> None:
        self.started.append(node.name)

    @hook_impl
    def after_node_run(self, node, inputs) -> None:
        self.inputs[node.name] = inputs


def _run(project, seen: _Seen, params: dict | None = None, **slicing) -> None:
    """Run ``ecg_autoencoder`` (sliced) in a real session watched by ``seen``."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    while mlflow.active_run():
        mlflow.end_run()
    bootstrap_project(project.root)
    with KedroSession.create(
        project_path=project.root, runtime_params=nest_dotted(params or {})
    ) as session:
        # The hooks of settings.py are fixed at startup; a test's hook joins here.
        session._hook_manager.register(seen)
        (seen.preflight,) = [
            p
            for p in session._hook_manager.get_plugins()
            if isinstance(p, PreflightChecksHook)
        ]
        try:
            session.run(pipeline_names=["ecg_autoencoder"], **slicing)
        finally:
            while mlflow.active_run():
                mlflow.end_run()


EXAMPLE = "ecg_autoencoder.reporting.example_signal"


@pytest.mark.slow
def test_a_bad_detection_value_fails_before_any_node_naming_it(kedro_project):
    seen = _Seen()
    with pytest.raises(ValueError) as error:
        _run(kedro_project, seen, {"ecg_autoencoder.detection.min_rr_s": -0.1})
    assert "Parameter 'ecg_autoencoder.detection.min_rr_s' must be > 0" in str(
        error.value
    )
    assert seen.started == []
    assert {r.info.status for r in kedro_project.runs("ecg_autoencoder")} == {"FAILED"}


@pytest.mark.slow
def test_a_node_receives_the_detection_block_preflight_built(kedro_project):
    seen = _Seen()
    _run(kedro_project, seen, node_names=[EXAMPLE])
    inputs = seen.inputs[EXAMPLE]
    detection = inputs["params:ecg_autoencoder.detection"]
    assert isinstance(detection, DetectionParams)
    assert detection is seen.preflight._built["params:ecg_autoencoder.detection"]
    assert isinstance(inputs["params:ecg_autoencoder.ingestion"], dict)
    # kedro-mlflow logs the block as loaded, one flat key per setting, as before.
    (run,) = kedro_project.runs("ecg_autoencoder")
    assert run.info.status == "FINISHED"
    for key, value in _block("ecg_autoencoder.detection").items():
        assert run.data.params[f"ecg_autoencoder.detection.{key}"] == str(value), key

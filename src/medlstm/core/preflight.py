"""Checks before any node runs: input files exist, every parameter a run sets is
known to ``conf/base``, every typed parameter block is well-formed (training blocks
can also run here); the blocks built go on to the nodes that read them."""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
from pathlib import Path
from typing import Any

import yaml
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline

from medlstm.core.params import parsed
from medlstm.core.precision import resolve_precision
from medlstm.core.training import TrainingParams, resolve_device
from medlstm.tracking.run_info import dataset_path


@dataclasses.dataclass(frozen=True)
class TypedBlock:
    """A parameter block whose reader builds a dataclass from it.

    ``pattern``: the block's dotted parameter path (`fnmatch`, ``*`` spans dots); the
    matched path is the ``where`` its errors name, as its reader names it.
    ``dataclass``: ``module:Class``, imported when a run checks its parameters (core
    does not import the pipelines' modules).
    ``hand_on``: whether a node input that is exactly this block gets the built
    dataclass instead of the mapping.
    """

    pattern: str
    dataclass: str
    hand_on: bool = True

    def cls(self) -> type:
        module, name = self.dataclass.split(":")
        return getattr(importlib.import_module(module), name)


ECG = "medlstm.pipelines.ecg_autoencoder"

# Every typed block a pipeline reads. The first row a path matches applies.
TYPED_BLOCKS = (
    TypedBlock("*.training", "medlstm.core.training:TrainingParams"),
    TypedBlock("ecg_autoencoder.detection", f"{ECG}.detection:DetectionParams"),
    # Validated only: the block also holds how the records are run (``parallel``,
    # ``spill_windows``), which SegmentationParams leaves out and its nodes read.
    TypedBlock(
        "ecg_autoencoder.ingestion",
        f"{ECG}.segmentation:SegmentationParams",
        hand_on=False,
    ),
    TypedBlock(
        "ecg_autoencoder.ingestion.parallel", "medlstm.core.parallel:ParallelParams"
    ),
    TypedBlock(
        "smri_cnn_lstm.ingestion",
        "medlstm.pipelines.smri_cnn_lstm.ingestion:IngestionParams",
    ),
)


class PreflightChecksHook:
    """Fails a run before any node runs when its inputs cannot be right, and hands the
    parameter blocks it built to the nodes.

    - every free input dataset of the pipeline (one no node produces) must exist;
      the error names the dataset and its file;
    - every typed block (`TYPED_BLOCKS`: the ``training`` blocks, the ECG
      ``detection``, ``ingestion`` and ``ingestion.parallel`` blocks, the sMRI
      ``ingestion`` block) in the parameters the pipeline reads must validate: each
      is built once with its reader's ``from_dict``, so a bad value fails with the
      reader's own message, naming the parameter;
    - every training block's ``precision`` must run on this machine (``bf16`` on a
      CPU without bf16 LSTMs is refused here, naming the parameter); the precision
      each will use goes to MLflow as ``<block>.precision_used`` beside the requested
      ``<block>.precision``;
    - every parameter a user passes (``--params``) or an environment's conf file
      holds must exist in ``conf/base``: a typo fails, naming the key and the
      nearest known one, instead of training silently with the default.

    A node input that is exactly a typed block (``params:ecg_autoencoder.detection``)
    receives the frozen dataclass built here (`before_node_run`); readers take it
    through `medlstm.core.params.parsed`, which also takes the mapping. A block
    inside a larger input (a ``training`` block in ``params:ecg_autoencoder.cnn``) is
    validated here and parsed again by its node. kedro-mlflow logs the parameters
    from the inputs as loaded, before this replacement: the logged params are the
    same. Missing ``params:`` entries are already refused by Kedro's runner by name.
    """

    def __init__(self) -> None:
        self._precisions: dict[str, str] = {}
        self._built: dict[str, Any] = {}
        self._context: KedroContext | None = None

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        self._context = context

    @hook_impl
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog
    ) -> None:
        try:
            self._check(run_params, pipeline, catalog)
        except Exception:
            # kedro-mlflow may have opened the run already; Kedro calls no error hook
            # for a failed before_pipeline_run, and MLflow would close it FINISHED.
            import mlflow

            if mlflow.active_run() is not None:
                mlflow.end_run(status="FAILED")
            raise

    def _check(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog
    ) -> None:
        self._precisions, self._built = {}, {}
        if self._context is not None:
            check_parameters(
                base_parameters(Path(self._context.project_path)),
                run_params.get("runtime_params") or {},
                self._context.params,
                self._context.env,
            )
        built: dict[str, Any] = {}  # by dotted path: each block is built once
        for name in sorted(pipeline.inputs()):
            if name.startswith("params:"):
                where = name.removeprefix("params:")
                for path, row, block in typed_blocks(where, catalog.load(name)):
                    if path not in built:
                        built[path] = parsed(row.cls(), block, path)
                        self._note_precision(path, built[path])
                    if path == where and row.hand_on:
                        self._built[name] = built[path]
                continue
            if name == "parameters":
                continue
            if not catalog.exists(name):
                path = dataset_path(catalog, name)
                described = f" (expected at {path})" if path else ""
                raise FileNotFoundError(
                    f"Input dataset '{name}' does not exist{described}. Check its entry in "
                    "conf/*/catalog*.yml, or produce it by running the pipeline that writes it."
                )

    def _note_precision(self, block: str, params: Any) -> None:
        """Refuse a training block's precision this machine cannot run; keep the one
        it will use for MLflow."""
        if isinstance(params, TrainingParams):
            self._precisions[f"{block}.precision_used"] = resolve_precision(
                params.precision,
                resolve_device(params.device).type,
                where=f"{block}.precision",
            )

    @hook_impl
    def before_node_run(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        """Log the resolved precisions once, into the run kedro-mlflow has started;
        give the node the blocks built for its inputs. Where nothing was built (the
        ParallelRunner registers the hooks anew in each worker process), the node
        gets the mapping and parses it itself."""
        if self._precisions:
            import mlflow

            if mlflow.active_run() is not None:
                mlflow.log_params(self._precisions)
            self._precisions = {}
        handed = {name: self._built[name] for name in inputs if name in self._built}
        return handed or None


# Mappings whose keys are the user's to choose (the classes of the ECG labels; the
# arguments of the Optuna pruner a study's pruner.type names, checked by it).
OPEN_MAPPINGS = (
    "ecg_autoencoder.ingestion.label_mapping",
    "ecg_autoencoder.tuning.pruner",
)


def base_parameters(project_path: Path) -> dict[str, Any]:
    """The names every environment and ``--params`` may set: the parameters of
    ``conf/base``, with each ``training`` block completed by its reader's fields."""
    merged: dict[str, Any] = {}
    for path in sorted((project_path / "conf" / "base").glob("parameters*.yml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    return with_training_fields(merged)


def with_training_fields(tree: Any, key: str = "") -> Any:
    """``tree`` with every field of `TrainingParams` that a ``training`` block leaves
    out added at the dataclass's default: the training loop's own settings
    (``device``, ``optimizer``, ``grad_clip_norm``...) have their single source there,
    and preflight knows their names and kinds without a copy in every block."""
    if not isinstance(tree, dict):
        return tree
    filled = {k: with_training_fields(v, k) for k, v in tree.items()}
    if key != "training":
        return filled
    defaults = {
        f.name: f.default
        for f in dataclasses.fields(TrainingParams)
        if f.default is not dataclasses.MISSING
    }
    return {**defaults, **filled}


def _paths(tree: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf (or empty mapping) of a nested mapping."""
    if not isinstance(tree, dict) or not tree:
        return [prefix] if prefix else []
    return [
        p for k, v in tree.items() for p in _paths(v, f"{prefix}.{k}" if prefix else k)
    ]


def _known(path: str, base: dict[str, Any]) -> bool:
    """Whether ``path`` names a parameter of ``base``: a key on the way, a leaf, or
    anything below a leaf, an empty mapping or an open mapping."""
    node: Any = base
    walked = []
    for key in path.split("."):
        prefix = ".".join(walked)
        if prefix in OPEN_MAPPINGS or not isinstance(node, dict) or not node:
            return True
        if key not in node:
            return False
        node, walked = node[key], [*walked, key]
    return True


def check_parameters(
    base: dict[str, Any],
    runtime: dict[str, Any],
    merged: dict[str, Any],
    env: str | None,
) -> None:
    """Raise on a parameter that ``conf/base`` does not know, naming where it came
    from (``--params`` or the environment) and the nearest known name; then on a
    value of another kind than its default (`_check_kinds`)."""
    known = _paths(base)
    from_cli = set(_paths(runtime))
    unknown = sorted(p for p in _paths(merged) if not _known(p, base))
    if not unknown:
        _check_kinds(base, merged, from_cli, env)
        return
    lines = []
    for path in unknown:
        near = difflib.get_close_matches(path, known, n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]}?" if near else ""
        source = "--params" if path in from_cli else f"conf/{env or 'local'}"
        lines.append(f"  {path} (from {source}){hint}")
    raise ValueError(
        "Unknown parameter(s), not in conf/base/parameters*.yml:\n"
        + "\n".join(lines)
        + "\nNothing ran. Fix the name, or add the parameter to conf/base first."
    )


def lookup(tree: dict[str, Any], path: str) -> tuple[bool, Any]:
    """``(found, value)`` of the dotted ``path`` in the nested ``tree``."""
    node: Any = tree
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def _kind(value: Any) -> str | None:
    """The kind a value must keep: number, true/false, text, list; None for any."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return None


def _check_kinds(
    base: dict[str, Any], merged: dict[str, Any], from_cli: set[str], env: str | None
) -> None:
    """A value must keep the kind of its conf/base default (``--params alpha=abc``
    names ``alpha`` here, not a float conversion deep inside a node); null always
    passes (it switches an option off)."""
    problems = []
    for path in sorted(_paths(merged)):
        found, default = lookup(base, path)
        _, value = lookup(merged, path)
        wanted = _kind(default) if found else None
        if wanted is None or value is None or _kind(value) == wanted:
            continue
        if wanted == "text" and isinstance(value, list):
            continue  # one name or a list of names (e.g. ingestion.lead)
        source = "--params" if path in from_cli else f"conf/{env or 'local'}"
        problems.append(f"  {path} must be {wanted}, got {value!r} (from {source})")
    if problems:
        raise ValueError(
            "Parameter(s) of the wrong kind:\n" + "\n".join(problems) + "\nNothing ran."
        )


def typed_block(path: str) -> TypedBlock | None:
    """The row of `TYPED_BLOCKS` the dotted ``path`` matches, if any."""
    return next(
        (row for row in TYPED_BLOCKS if fnmatch.fnmatchcase(path, row.pattern)), None
    )


def typed_blocks(where: str, value: Any) -> list[tuple[str, TypedBlock, Any]]:
    """``(dotted path, row, block)`` of every typed block in the parameters value at
    ``where``: the value itself and any mapping inside it, outer blocks first."""
    row = typed_block(where)
    found = [(where, row, value)] if row is not None else []
    if not isinstance(value, dict):
        return found
    return found + [
        inner
        for key, child in value.items()
        for inner in typed_blocks(f"{where}.{key}", child)
    ]

"""Checks before any node runs: input files exist, every parameter a run sets is
known to ``conf/base``, every training block is well-formed and can run here."""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

import yaml
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline

from medlstm.core.precision import resolve_precision
from medlstm.core.training import TrainingParams, resolve_device
from medlstm.tracking.run_info import dataset_path


class PreflightChecksHook:
    """Fails a run before any node runs when its inputs cannot be right.

    - every free input dataset of the pipeline (one no node produces) must exist;
      the error names the dataset and its file;
    - every ``training`` block in the parameters the pipeline reads must validate
      (`TrainingParams.from_dict`), and its ``precision`` must run on this machine
      (``bf16`` on a CPU without bf16 LSTMs is refused here, naming the parameter);
    - the precision each training block will use goes to MLflow as
      ``<block>.precision_used`` beside the requested ``<block>.precision``;
    - every parameter a user passes (``--params``) or an environment's conf file
      holds must exist in ``conf/base``: a typo fails, naming the key and the
      nearest known one, instead of training silently with the default.

    Missing ``params:`` entries are already refused by Kedro's runner by name.
    """

    def __init__(self) -> None:
        self._precisions: dict[str, str] = {}
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
        self._precisions = {}
        if self._context is not None:
            check_parameters(
                base_parameters(Path(self._context.project_path)),
                run_params.get("runtime_params") or {},
                self._context.params,
                self._context.env,
            )
        for name in sorted(pipeline.inputs()):
            if name.startswith("params:"):
                where = name.removeprefix("params:")
                for block, values in _training_blocks(where, catalog.load(name)):
                    params = TrainingParams.from_dict(values, where=block)
                    self._precisions[f"{block}.precision_used"] = resolve_precision(
                        params.precision,
                        resolve_device(params.device).type,
                        where=f"{block}.precision",
                    )
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

    @hook_impl
    def before_node_run(self) -> None:
        """Log the resolved precisions once, into the run kedro-mlflow has started."""
        if not self._precisions:
            return
        import mlflow

        if mlflow.active_run() is not None:
            mlflow.log_params(self._precisions)
        self._precisions = {}


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


def _training_blocks(where: str, value: Any) -> list[tuple[str, Any]]:
    """``(dotted path, block)`` of every ``training`` mapping in a parameters value."""
    if where == "training" or where.endswith(".training"):
        return [(where, value)]
    if not isinstance(value, dict):
        return []
    return [
        found
        for key, child in value.items()
        for found in _training_blocks(f"{where}.{key}", child)
    ]

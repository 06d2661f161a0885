"""Project hooks: one MLflow experiment per pipeline, and checks before any work.

kedro-mlflow starts one run per ``kedro run`` in a single configured experiment.
Researchers compare runs of *one* model family, so each registered pipeline gets its
own experiment, ``<tracking.experiment.name>/<pipeline>``.
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Any

import yaml
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline

from medlstm.core.precision import resolve_precision
from medlstm.core.training import TrainingParams, resolve_device

logger = logging.getLogger(__name__)


class ExperimentPerPipelineHook:
    """Points kedro-mlflow at an experiment named after the pipeline being run."""

    def __init__(self) -> None:
        self._context: KedroContext | None = None

    @hook_impl(
        trylast=True
    )  # after kedro-mlflow has read mlflow.yml into context.mlflow
    def after_context_created(self, context: KedroContext) -> None:
        self._context = context

    @hook_impl(tryfirst=True)  # before kedro-mlflow starts the run
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        config = getattr(self._context, "mlflow", None)
        if config is None:
            return
        names = run_params.get("pipeline_names") or [
            run_params.get("pipeline_name") or "__default__"
        ]
        base = config.tracking.experiment.name.split("/")[0]
        config.tracking.experiment.name = f"{base}/{'+'.join(names)}"
        config._set_experiment()


class RunLockHook:
    """One run at a time per project folder.

    Runs share their intermediate files (``data/05_model_input/...``); a second run
    reading a file the first is writing crashes or, worse, trains on half a file. The
    lock is an OS file lock (``flock``) on ``data/.kedro_run.lock``: the OS drops it
    when the holder exits, even after a SIGKILL, so a killed run never blocks the
    next one. The file names the holder, so the refusal can say which run it is.

    A killed run leaves its MLflow run RUNNING for ever, unless someone closes it: a
    state file, ``data/.kedro_run.state.json``, names the MLflow run while its
    ``kedro run`` lives and is deleted when it ends. The next run in the folder that
    finds it marks that MLflow run KILLED and tags its own run
    ``medlstm.after_killed_run`` with the killed run's id, so a training that resumes
    from the killed run's checkpoint names the run it continues.
    """

    STATE = Path("data") / ".kedro_run.state.json"

    def __init__(self) -> None:
        self._handle = None
        self._root: Path | None = None
        self._orphan: str | None = None
        self._state_written = False

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        self._root = Path(context.project_path)

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        if self._root is None:
            return
        # A run of this process that failed in another before_pipeline_run hook never
        # reached after_pipeline_run / on_pipeline_error: its lock is stale.
        self._release()
        import fcntl
        import os
        import time

        path = self._root / "data" / ".kedro_run.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RuntimeError(
                f"Another kedro run is using this project folder ({holder}); nothing "
                f"ran. Wait for it to finish, or run from a copy of the project. "
                f"Lock: {path}"
            ) from None
        names = run_params.get("pipeline_names") or [
            run_params.get("pipeline_name") or "__default__"
        ]
        handle.seek(0)
        handle.truncate()
        handle.write(
            f"pid {os.getpid()}, pipeline {'+'.join(names)}, started "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}"
        )
        handle.flush()
        self._handle = handle
        self._orphan = close_killed_run(self._root / self.STATE)
        self._state_written = False

    @hook_impl(tryfirst=True)
    def before_node_run(self) -> None:
        """Once per run, when kedro-mlflow's run is open: name it in the state file."""
        if self._state_written or self._handle is None or self._root is None:
            return
        self._state_written = True
        import json
        import os

        import mlflow

        run = mlflow.active_run()
        if run is None:
            return
        if self._orphan:
            mlflow.set_tag("medlstm.after_killed_run", self._orphan)
        (self._root / self.STATE).write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "run_id": run.info.run_id,
                    "tracking_uri": mlflow.get_tracking_uri(),
                }
            )
        )

    @hook_impl(trylast=True)
    def after_pipeline_run(self) -> None:
        self._release()

    @hook_impl(trylast=True)
    def on_pipeline_error(self) -> None:
        self._release()

    def _release(self) -> None:
        if self._handle is not None:
            if self._root is not None and self._state_written:
                (self._root / self.STATE).unlink(missing_ok=True)
            self._handle.close()  # closing the file drops the flock
            self._handle = None


def close_killed_run(state: Path) -> str | None:
    """Mark KILLED the MLflow run that ``state`` names, if it is still RUNNING (its
    ``kedro run`` died without closing it); returns its id, or None without one.

    Called with the folder's lock held, so the run named there is not alive.
    """
    import json

    if not state.exists():
        return None
    try:
        named = json.loads(state.read_text())
        run_id, uri = named["run_id"], named["tracking_uri"]
    except (ValueError, KeyError, TypeError):
        state.unlink(missing_ok=True)
        return None
    import mlflow

    try:
        client = mlflow.MlflowClient(tracking_uri=uri)
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, "KILLED")
            logger.warning(
                "The previous run in this folder (pid %s) was killed before it ended; "
                "its MLflow run %s is now marked KILLED.",
                named.get("pid"), run_id,
            )  # fmt: skip
    except Exception as error:  # noqa: BLE001 - closing it is a courtesy, not a need
        logger.warning(
            "The previous run in this folder was killed; its MLflow run %s at %s could "
            "not be marked KILLED (%s).",
            run_id, uri, error,
        )  # fmt: skip
    state.unlink(missing_ok=True)
    return run_id


class TrackingServerCheckHook:
    """Fails in seconds when the MLflow tracking server cannot be reached.

    Without it, MLflow's client retries for minutes (266 s measured) before the first
    node, and the error does not say how to go on without the server.
    """

    @hook_impl(tryfirst=True)  # before kedro-mlflow contacts the server
    def after_context_created(self, context: KedroContext) -> None:
        uri = str(
            (context.config_loader.get("mlflow") or {})
            .get("server", {})
            .get("mlflow_tracking_uri")
            or ""
        )
        check_tracking_server(uri)


def check_tracking_server(uri: str, timeout_s: float = 5.0) -> None:
    """Raise naming ``uri`` if it is an HTTP(S) server that does not answer MLflow's
    health check within ``timeout_s``; local stores (sqlite, files) pass."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return  # it answered: a server is there (auth or an older MLflow)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ConnectionError(
            f"The MLflow tracking server {uri} is unreachable ({reason}); nothing ran. "
            "Start it, or log to the local store instead: unset MLFLOW_TRACKING_URI "
            "(runs then go to sqlite:///mlflow.db in the project folder)."
        ) from error


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
                described = _describe_path(catalog, name)
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


# Mappings whose keys are the user's to choose (the classes of the ECG labels).
OPEN_MAPPINGS = ("ecg_autoencoder.ingestion.label_mapping",)


def base_parameters(project_path: Path) -> dict[str, Any]:
    """The parameters of ``conf/base`` alone: the names every environment and
    ``--params`` may set."""
    merged: dict[str, Any] = {}
    for path in sorted((project_path / "conf" / "base").glob("parameters*.yml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    return merged


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


def _lookup(tree: dict[str, Any], path: str) -> tuple[bool, Any]:
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
        found, default = _lookup(base, path)
        _, value = _lookup(merged, path)
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


def _describe_path(catalog: DataCatalog, name: str) -> str:
    try:
        description = catalog.get(name)._describe()
    except Exception:  # noqa: BLE001 - only used to enrich an error message
        return ""
    for key in ("filepath", "path"):
        if description.get(key):
            return f" (expected at {Path(str(description[key])).resolve()})"
    return ""

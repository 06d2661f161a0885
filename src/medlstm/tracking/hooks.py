"""Project hooks: one MLflow experiment per pipeline, one run at a time per project
folder, and a tracking server that answers; the checks of parameters and inputs
before any node runs are in :mod:`medlstm.core.preflight`.

kedro-mlflow starts one run per ``kedro run`` in a single configured experiment.
Researchers compare runs of *one* model family, so each registered pipeline gets its
own experiment, ``<tracking.experiment.name>/<pipeline>``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl

from medlstm.tracking.run_info import is_server, pipeline_names, tracking_uri

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
        names = pipeline_names(run_params)
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
        names = pipeline_names(run_params)
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
        check_tracking_server(tracking_uri(context.config_loader))


def check_tracking_server(uri: str, timeout_s: float = 5.0) -> None:
    """Raise naming ``uri`` if it is an HTTP(S) server that does not answer MLflow's
    health check within ``timeout_s``; local stores (sqlite, files) pass."""
    if not is_server(uri):
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

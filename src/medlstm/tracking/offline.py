# Long on purpose: the outbox writer and its reader (upload) share one format.
"""Runs that outlive their MLflow tracking server.

When the server stops answering during a run, what the run would have sent (parameters,
metrics, tags, the end status, artifact files) goes to an outbox folder on disk instead,
``data/09_tracking_outbox/<run id>/``, and the run carries on: its results never
depend on the server. At the end a warning names what was not logged and the command
that logs it once the server is back::

    python -m medlstm.tracking.offline upload data/09_tracking_outbox/<run id>

How: for an HTTP(S) tracking URI, MLflow's REST store and HTTP artifact repositories
are replaced by subclasses (MLflow's own scheme registries) that behave exactly like
MLflow's while no outbox is open. While a run's outbox is open, a request that fails
for lack of a server (connection refused, timeout, retries exhausted, 5xx) switches
the outbox offline: that write and every later one is written down, with no more
network waits. Requests whose answer the caller needs (creating a logged model,
reading a run) still fail while offline; `TrackingOutboxHook` catches such a failure
at the end of the run. Retries are bounded (`RETRY_DEFAULTS`) unless the user set
MLflow's variables, so the first failure costs seconds, not minutes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from mlflow.exceptions import MlflowException, RestException
from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository
from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository
from mlflow.store.tracking.rest_store import RestStore

from medlstm.tracking.run_info import is_server, tracking_uri

logger = logging.getLogger(__name__)

OUTBOX_DIR = Path("data") / "09_tracking_outbox"
# MLflow's defaults (7 retries, backoff factor 2, 120 s timeout) wait up to ~8 minutes
# on each request to a dead server; these wait seconds. A variable the user set wins.
RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
# Requests whose answer nobody reads: they can wait in the outbox.
DEFERRABLE = {
    "LogBatch",
    "LogMetric",
    "LogParam",
    "SetTag",
    "DeleteTag",
    "UpdateRun",
    "LogInputs",
}


class TrackingServerGone(ConnectionError):
    """A request that cannot wait was refused because the server went away."""


@dataclass
class Outbox:
    """What one run could not send: ``journal.jsonl`` (requests, in order),
    ``artifacts/`` (copies of the files) and ``manifest.json`` (where it belongs)."""

    folder: Path
    tracking_uri: str
    run_id: str
    experiment: str
    run_name: str
    offline_since: str | None = None
    reason: str = ""
    entries: list[dict[str, Any]] = field(default_factory=list)

    def go_offline(self, error: BaseException) -> None:
        if self.offline_since is None:
            self.offline_since = time.strftime("%Y-%m-%d %H:%M:%S")
            self.reason = _reason(error)
            # MLflow reads the run back from the server to print its URL when it ends.
            os.environ[SUPPRESS_URL] = "true"
            logger.warning(
                "MLflow tracking server %s stopped answering (%s); the run goes on and "
                "keeps what it cannot log in %s.",
                self.tracking_uri, self.reason, self.folder,
            )  # fmt: skip

    def record(self, entry: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.entries.append(entry)
        with (self.folder / "journal.jsonl").open("a") as out:
            out.write(json.dumps(entry) + "\n")
        self._write_manifest()

    def record_artifact(self, local_path: str, artifact_path: str | None) -> None:
        """Copy the file now: the run or the next one may overwrite it in data/."""
        source = Path(local_path)
        target = self.folder / "artifacts" / (artifact_path or "") / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        self.record(
            {
                "artifact": str(target.relative_to(self.folder)),
                "artifact_path": artifact_path,
                "source": str(source),
            }
        )

    def _write_manifest(self) -> None:
        manifest = {
            "tracking_uri": self.tracking_uri,
            "run_id": self.run_id,
            "experiment": self.experiment,
            "run_name": self.run_name,
            "offline_since": self.offline_since,
            "reason": self.reason,
        }
        (self.folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


class _Open:
    """The outbox of the run in progress in this process (one at a time)."""

    box: Outbox | None = None
    suppress_url_before: str | None = None


SUPPRESS_URL = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


def _reason(error: BaseException) -> str:
    text = str(error)
    if "NewConnectionError" in text or "Connection refused" in text:
        return "connection refused"
    if "timed out" in text or "timeout" in text.lower():
        return f"no answer within {os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT')} s"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "connection dropped"
    if "too many 5" in text:
        return "server errors (5xx) after retries"
    return text.splitlines()[0][:200] if text else type(error).__name__


def _is_outage(error: BaseException) -> bool:
    """True for a server that is not there (no answer, or 5xx after the retries);
    False for a server that answered no (4xx: bad request, missing run...)."""
    import requests

    if isinstance(error, RestException):
        return False
    if isinstance(error, MlflowException):
        return str(error).startswith("API request to")
    if isinstance(error, requests.HTTPError):
        response = error.response
        return response is None or response.status_code >= 500
    return isinstance(error, requests.RequestException | ConnectionError)


class OutboxRestStore(RestStore):
    """MLflow's REST tracking store, deferring writes to the open outbox when the
    server is gone."""

    def _call_endpoint(self, api, json_body=None, *args, **kwargs):
        box = _Open.box
        if box is None:
            return super()._call_endpoint(api, json_body, *args, **kwargs)
        name = api.__name__
        if box.offline_since is None:
            try:
                return super()._call_endpoint(api, json_body, *args, **kwargs)
            except Exception as error:
                if not _is_outage(error):
                    raise
                box.go_offline(error)
        if name not in DEFERRABLE:
            raise TrackingServerGone(
                f"MLflow request {name} not sent: the tracking server "
                f"{box.tracking_uri} stopped answering ({box.reason})."
            )
        box.record({"api": name, "body": json_body})
        return kwargs.get("response_proto") or api.Response()


class _OutboxArtifacts:
    """Artifact uploads of the outbox's run go to the outbox when the server is gone."""

    def log_artifact(self, local_file, artifact_path=None):
        box = _Open.box
        ours = box is not None and self.artifact_uri.rstrip("/").endswith(
            f"/{box.run_id}/artifacts"
        )
        if not ours:
            return super().log_artifact(local_file, artifact_path)
        if box.offline_since is None:
            try:
                return super().log_artifact(local_file, artifact_path)
            except Exception as error:
                if not _is_outage(error):
                    raise
                box.go_offline(error)
        box.record_artifact(local_file, artifact_path)
        return None


class OutboxMlflowArtifactsRepository(_OutboxArtifacts, MlflowArtifactsRepository):
    """``mlflow-artifacts:/`` (artifacts served by the tracking server)."""


class OutboxHttpArtifactRepository(_OutboxArtifacts, HttpArtifactRepository):
    """``http(s)://`` artifact locations."""


def install() -> None:
    """Route HTTP(S) tracking and artifacts through the outbox-aware classes."""
    from mlflow.store.artifact.artifact_repository_registry import (
        _artifact_repository_registry,
    )
    from mlflow.tracking._tracking_service import utils
    from mlflow.utils.credentials import get_default_host_creds

    def build(store_uri, **_):
        return OutboxRestStore(partial(get_default_host_creds, store_uri))

    for scheme in ("http", "https"):
        utils._register(scheme, build)
        _artifact_repository_registry.register(scheme, OutboxHttpArtifactRepository)
    _artifact_repository_registry.register(
        "mlflow-artifacts", OutboxMlflowArtifactsRepository
    )
    # Stores and repositories built before this call are cached by URI and run.
    utils._tracking_store_registry._get_store_with_resolved_uri.cache_clear()
    utils._artifact_repos_cache.clear()
    for name, value in RETRY_DEFAULTS.items():
        os.environ.setdefault(name, value)


def open_outbox(project_path: Path, tracking_uri: str) -> Outbox | None:
    """Open the outbox of the active MLflow run (none when no run is active)."""
    import mlflow

    run = mlflow.active_run()
    if run is None:
        return None
    _Open.suppress_url_before = os.environ.get(SUPPRESS_URL)
    experiment = mlflow.get_experiment(run.info.experiment_id)
    _Open.box = Outbox(
        folder=Path(project_path) / OUTBOX_DIR / run.info.run_id,
        tracking_uri=tracking_uri,
        run_id=run.info.run_id,
        experiment=experiment.name if experiment else "",
        run_name=run.info.run_name or "",
    )
    return _Open.box


def close_outbox() -> Outbox | None:
    """Close the open outbox; returns it when it holds anything."""
    box, _Open.box = _Open.box, None
    if box is not None and box.offline_since is not None:
        if _Open.suppress_url_before is None:
            os.environ.pop(SUPPRESS_URL, None)
        else:
            os.environ[SUPPRESS_URL] = _Open.suppress_url_before
    return box if box is not None and box.entries else None


def describe(entries: list[dict[str, Any]]) -> dict[str, list[str]]:
    """What a journal holds, by kind: parameters, metrics, tags, artifacts, status."""
    found: dict[str, list[str]] = {
        "parameters": [],
        "metrics": [],
        "tags": [],
        "artifacts": [],
        "end status": [],
        "dataset inputs": [],
    }
    for entry in entries:
        if "artifact" in entry:
            path = Path(entry["artifact"]).relative_to("artifacts")
            found["artifacts"].append(path.as_posix())
            continue
        body = json.loads(entry["body"] or "{}")
        api = entry["api"]
        if api in ("LogBatch", "LogParam", "LogMetric", "SetTag", "DeleteTag"):
            single = {"LogParam": "params", "LogMetric": "metrics", "SetTag": "tags"}
            for kind, key in (
                ("parameters", "params"),
                ("metrics", "metrics"),
                ("tags", "tags"),
            ):
                items = body.get(key, [])
                if single.get(api) == key:
                    items = [body]
                found[kind] += [item["key"] for item in items]
        elif api == "UpdateRun":
            found["end status"].append(body.get("status", "?"))
        elif api == "LogInputs":
            found["dataset inputs"] += [
                d.get("dataset", {}).get("name", "?") for d in body.get("datasets", [])
            ]
    return {kind: sorted(set(names)) for kind, names in found.items() if names}


def _upload_command(box: Outbox, project_path: Path) -> str:
    try:
        folder = box.folder.relative_to(project_path)
    except ValueError:
        folder = box.folder
    return f"python -m medlstm.tracking.offline upload {folder}"


def outage_message(
    box: Outbox, project_path: Path, also: list[str], shown: int | None = 8
) -> str:
    """The end-of-run warning: what was not logged (``shown`` names of each kind,
    all with None), where it is, how to log it."""
    lines = [
        f"The MLflow tracking server {box.tracking_uri} stopped answering at "
        f"{box.offline_since} ({box.reason}). The pipeline's outputs are in data/ as "
        f"usual; not logged to run {box.run_id} ({box.experiment}):"
    ]
    for kind, names in describe(box.entries).items():
        listed = ", ".join(names[:shown])
        if shown is not None and len(names) > shown:
            listed += f" and {len(names) - shown} more (all in NOT_LOGGED.txt)"
        lines.append(f"  {len(names)} {kind}: {listed}")
    lines += [f"  {item}" for item in also]
    lines.append(
        f"They are kept in {box.folder}. When the server is back, log them with:\n"
        f"  {_upload_command(box, project_path)}\n"
        "(--tracking-uri URI sends them to another server, as a new run)."
    )
    return "\n".join(lines)


class TrackingOutboxHook:
    """Opens an outbox for each run tracked on an HTTP(S) server, closes it at the
    end, and turns a tracking failure after the last node into the outbox warning
    instead of a failed run."""

    def __init__(self) -> None:
        self._project_path: Path | None = None
        self._uri = ""
        self._unsent: list[str] = []

    @hook_impl(tryfirst=True)  # before kedro-mlflow builds its client
    def after_context_created(self, context) -> None:
        self._project_path = Path(context.project_path)
        self._uri = tracking_uri(context.config_loader)
        if is_server(self._uri):
            install()

    @hook_impl(trylast=True)  # after kedro-mlflow has started the run
    def before_pipeline_run(self) -> None:
        close_outbox()
        self._unsent = []
        if self._project_path is not None and is_server(self._uri):
            open_outbox(self._project_path, self._uri)

    @hook_impl(wrapper=True)
    def after_pipeline_run(self, pipeline):
        try:
            return (yield)
        except Exception as error:
            if _Open.box is None or _Open.box.offline_since is None:
                raise
            # kedro-mlflow logs the pyfunc model last; without a server it cannot.
            from kedro_mlflow.pipeline.pipeline_ml import PipelineML

            model = (
                f"the pyfunc model {pipeline.log_model_kwargs.get('name', 'model')}"
                if isinstance(pipeline, PipelineML)
                else "a request after the last node"
            )
            self._unsent.append(
                f"{model}: not in the outbox (the trained weights are in data/); a "
                f"run with the server up logs it ({type(error).__name__})"
            )
            import mlflow

            if mlflow.active_run() is not None:
                mlflow.end_run()  # deferred: the end status goes to the outbox
            return None
        finally:
            self._report()

    @hook_impl(trylast=True)
    def on_pipeline_error(self) -> None:
        self._report()

    def _report(self) -> None:
        box = close_outbox()
        if box is None:
            return
        root = self._project_path or Path.cwd()
        (box.folder / "NOT_LOGGED.txt").write_text(
            outage_message(box, root, self._unsent, shown=None) + "\n"
        )
        logger.warning(outage_message(box, root, self._unsent))


# ---------------------------------------------------------------------------- upload


def _read_manifest(folder: Path) -> dict[str, Any]:
    """The outbox's manifest; refuses a folder that is no outbox or was uploaded."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(
            f"{folder} is not a tracking outbox (no manifest.json); outboxes are in "
            f"{OUTBOX_DIR}/<run id>/."
        )
    done = folder / "uploaded.json"
    if done.exists():
        raise RuntimeError(
            f"{folder} was already uploaded ({done.read_text().strip()}); uploading "
            "again would log every metric twice."
        )
    return json.loads(manifest_path.read_text())


def _target_run(client: Any, manifest: dict[str, Any], uri: str) -> tuple[str, bool]:
    """The run to log into: the original where the server knows it, else a new run
    in its experiment, tagged with the original id; and whether it is new."""
    run_id = manifest["run_id"]
    try:
        client.get_run(run_id)
    except MlflowException as error:
        if _is_outage(error):
            raise ConnectionError(
                f"The MLflow tracking server {uri} is unreachable; nothing was uploaded."
            ) from error
        experiment = client.get_experiment_by_name(manifest["experiment"])
        experiment_id = (
            experiment.experiment_id
            if experiment
            else client.create_experiment(manifest["experiment"])
        )
        run_id = client.create_run(
            experiment_id,
            run_name=manifest["run_name"] or None,
            tags={"medlstm.uploaded_from": manifest["run_id"]},
        ).info.run_id
        return run_id, True
    return run_id, False


def upload(folder: Path, tracking_uri: str | None = None) -> dict[str, Any]:
    """Log an outbox to ``tracking_uri`` (default: the server the run was on).

    The run itself receives it when that server knows the run; elsewhere a new run
    is created in the same experiment, tagged ``medlstm.uploaded_from`` with the
    original id (it holds what the outbox holds: what came after the outage).

    Returns:
        ``{"run_id", "new_run", "logged": describe(...)}``.
    """
    import mlflow
    from google.protobuf.json_format import Parse
    from mlflow.entities import DatasetInput, Metric, Param, RunTag
    from mlflow.protos import service_pb2

    folder = Path(folder)
    manifest = _read_manifest(folder)
    done = folder / "uploaded.json"
    uri = tracking_uri or manifest["tracking_uri"]
    entries = [
        json.loads(line)
        for line in (folder / "journal.jsonl").read_text().splitlines()
        if line.strip()
    ]
    client = mlflow.MlflowClient(tracking_uri=uri)
    run_id, new_run = _target_run(client, manifest, uri)
    for entry in entries:
        if "artifact" in entry:
            client.log_artifact(
                run_id, str(folder / entry["artifact"]), entry["artifact_path"]
            )
            continue
        request = Parse(entry["body"] or "{}", getattr(service_pb2, entry["api"])())
        _replay(
            client, run_id, entry["api"], request, Metric, Param, RunTag, DatasetInput
        )
    done.write_text(
        json.dumps(
            {"tracking_uri": uri, "run_id": run_id, "at": time.strftime("%F %T")}
        )
    )
    return {"run_id": run_id, "new_run": new_run, "logged": describe(entries)}


def _replay(client, run_id, api, request, Metric, Param, RunTag, DatasetInput) -> None:  # noqa: N803 - entity classes
    """Send one journalled request again, through the client (any store)."""
    if api in ("LogBatch", "LogMetric"):
        metrics = list(request.metrics) if api == "LogBatch" else [request]
        client.log_batch(
            run_id,
            metrics=[Metric(m.key, m.value, m.timestamp, m.step) for m in metrics],
            params=[Param(p.key, p.value) for p in getattr(request, "params", [])],
            tags=[RunTag(t.key, t.value) for t in getattr(request, "tags", [])],
            synchronous=True,
        )
    elif api == "LogParam":
        client.log_param(run_id, request.key, request.value)
    elif api == "SetTag":
        client.set_tag(run_id, request.key, request.value)
    elif api == "DeleteTag":
        client.delete_tag(run_id, request.key)
    elif api == "UpdateRun":
        from mlflow.entities import RunStatus

        client.set_terminated(
            run_id,
            request.status and RunStatus.to_string(request.status) or "FINISHED",
            end_time=request.end_time or None,
        )
    elif api == "LogInputs":
        client.log_inputs(
            run_id, [DatasetInput.from_proto(d) for d in request.datasets]
        )


def main(argv: list[str] | None = None) -> int:
    """``python -m medlstm.tracking.offline upload FOLDER [--tracking-uri URI]``."""
    parser = argparse.ArgumentParser(
        prog="python -m medlstm.tracking.offline",
        description="Log what a run kept on disk while its MLflow server was gone.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("upload", help="log an outbox folder to a server")
    up.add_argument("folder", type=Path, help=f"{OUTBOX_DIR}/<run id>")
    up.add_argument(
        "--tracking-uri",
        default=None,
        help="where to log (default: the server the run was on)",
    )
    args = parser.parse_args(argv)
    for name, value in RETRY_DEFAULTS.items():
        os.environ.setdefault(name, value)  # a server still down fails in seconds
    try:
        result = upload(args.folder, args.tracking_uri)
    except (FileNotFoundError, RuntimeError, ConnectionError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    where = "new run" if result["new_run"] else "run"
    sys.stdout.write(f"Logged to {where} {result['run_id']}:\n")
    for kind, names in result["logged"].items():
        sys.stdout.write(f"  {len(names)} {kind}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

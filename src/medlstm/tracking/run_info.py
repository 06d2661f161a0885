"""What a run is about, read one way by every hook: the pipelines it runs, the file
behind a catalog dataset, the tracking URI of ``mlflow.yml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import DataCatalog


def pipeline_names(run_params: dict[str, Any]) -> list[str]:
    """The pipelines of a ``kedro run`` as Kedro passes them (``__default__`` when
    none was named)."""
    names = run_params.get("pipeline_names") or [
        run_params.get("pipeline_name") or "__default__"
    ]
    return [names] if isinstance(names, str) else list(names)


def pipeline_label(run_params: dict[str, Any]) -> str:
    """The pipeline(s) of a run joined by ``+``, ``__default__`` spelled out as the
    pipeline it stands for."""
    from medlstm.pipeline_registry import DEFAULT_PIPELINE

    return "+".join(
        DEFAULT_PIPELINE if name == "__default__" else name
        for name in pipeline_names(run_params)
    )


def dataset_path(catalog: DataCatalog, name: str) -> Path | None:
    """The file or folder a catalog dataset reads and writes, or None (memory,
    metrics, anything without a path)."""
    try:
        description = catalog.get(name)._describe()
    except Exception:  # noqa: BLE001 - datasets without a description have no path
        return None
    for key in ("filepath", "path"):
        if description.get(key):
            return Path(str(description[key])).resolve()
    return None


def tracking_uri(config_loader: Any) -> str:
    """``server.mlflow_tracking_uri`` of the ``mlflow`` configuration, or ""."""
    mlflow_config = config_loader.get("mlflow") or {}
    return str(mlflow_config.get("server", {}).get("mlflow_tracking_uri") or "")


def is_server(uri: str) -> bool:
    """An HTTP(S) tracking server, as opposed to a local store (sqlite, files)."""
    return uri.startswith(("http://", "https://"))

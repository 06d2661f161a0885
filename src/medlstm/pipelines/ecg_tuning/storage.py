"""Where an Optuna study lives: the storage URL (parameter, environment variable or
the project's SQLite file), shown without its password, opened with retries so that
workers starting together can share a new storage."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import optuna

logger = logging.getLogger(__name__)


STORAGE_ENV = "MEDLSTM_OPTUNA_STORAGE"
DEFAULT_STORAGE = "sqlite:///data/07_model_output/optuna.db"
STORAGE_ATTEMPTS = 5


def storage_url(tuning: dict[str, Any]) -> str:
    """``tuning.storage``, else ``$MEDLSTM_OPTUNA_STORAGE``, else the SQLite file."""
    return tuning.get("storage") or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def shown_url(url: str) -> str:
    """The storage URL without its password, for logs and reports."""
    if url.startswith("journal:"):
        return url
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def open_storage(url: str, heartbeat_s: int | None) -> optuna.storages.BaseStorage:
    """The Optuna storage at ``url``.

    ``sqlite:///PATH`` (``sqlite:////ABSOLUTE``): an SQLite file (its folder is created) that waits up to a
    minute for a lock instead of failing with "database is locked" when workers on
    this machine write at once. ``journal:///PATH``: Optuna's journal file, its
    recommendation for many processes on one machine or a shared file system. Any
    other URL is an RDB server (``postgresql://``, ``mysql+pymysql://``). With
    ``heartbeat_s``, a trial whose worker died is marked FAIL by the next worker.
    """
    heartbeat = (
        {"heartbeat_interval": heartbeat_s, "grace_period": 3 * heartbeat_s}
        if heartbeat_s
        else {}
    )
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        if not url.startswith("journal:///"):
            raise ValueError(
                f"Optuna storage {url!r}: a journal file is journal:///relative/path "
                "or journal:////absolute/path, as SQLite URLs are written."
            )
        path = Path(url.removeprefix("journal:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs: dict[str, Any]
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}  # a server may drop idle connections
    import sqlalchemy.exc

    for attempt in range(STORAGE_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, **heartbeat
            )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            # Workers started together on a new storage race to create its tables;
            # the loser finds them made on its next try.
            if attempt == STORAGE_ATTEMPTS - 1:
                raise
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")

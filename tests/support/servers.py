"""Local servers for the tests and scripts: a free loopback port, processes in their
own process groups that stop together, a wait until a URL answers, and the command
of an ``mlflow server``."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
# MLflow 3's server runs a job executor by default; a local server needs none.
MLFLOW_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def free_port() -> int:
    """A free port below 49152: kedro viz refuses the ephemeral range above it."""
    for port in random.sample(range(20000, 45000), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-45000")


def mlflow_server_command(
    backend_store_uri: str, port: int, *artifacts: str
) -> list[str]:
    """``mlflow server`` on 127.0.0.1:``port`` with one worker; ``artifacts`` are its
    artifact flags, e.g. ``"--artifacts-destination", "/tmp/store/artifacts"``."""
    return [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        backend_store_uri,
        *artifacts,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def wait_for(url: str, proc: subprocess.Popen, seconds: float) -> None:
    """Return once ``url`` answers; fail when ``proc`` exits first (with its log's
    tail, where it was started by :class:`ProcessGroups`) or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = getattr(proc, "log_path", None)
            tail = log.read_text()[-3000:] if log else ""
            raise RuntimeError(
                f"{proc.args[0]} exited with {proc.returncode} before answering "
                f"{url}:\n{tail}"
            )
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - loopback only
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


class ProcessGroups:
    """Processes started in their own process groups, logging to ``log_dir``; all
    stopped by group id on :meth:`stop` or on leaving the ``with`` block, so that a
    server's children (gunicorn workers) never outlive it."""

    def __init__(self, log_dir: Path, cwd: Path | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.cwd = cwd
        self.procs: list[subprocess.Popen] = []

    def start(
        self,
        args: list[str],
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen:
        """Start ``args`` (stdout and stderr to a log file, ``proc.log_path``)."""
        path = self.log_dir / f"{Path(args[0]).name}-{len(self.procs)}.log"
        with path.open("w") as log:
            proc = subprocess.Popen(
                args,
                cwd=cwd or self.cwd,
                env={**os.environ, **(env or {})},
                start_new_session=True,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        proc.log_path = path
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        """SIGTERM each running group, SIGKILL where it has not ended in 15 s."""
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=15)

    def __enter__(self) -> ProcessGroups:
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

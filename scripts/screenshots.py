"""Pictures for the README: the MLflow run page, two runs compared, and kedro viz.

Starts the MLflow server (as ``make mlflow-ui``) and ``kedro viz`` on 127.0.0.1 at free
ports, drives headless Chromium over the DevTools protocol (a pipe, no extra Python
package), writes PNGs to ``docs/images/`` and stops both servers, also on failure.

    python scripts/screenshots.py --run   # two lstm_forecast runs first (about 2 min)
    python scripts/screenshots.py         # the newest two lstm_forecast runs in mlflow.db

``--project DIR`` takes the runs, the data and the store of a copy of the project (a
run holds the project folder's lock, so a copy keeps other work in this one going).
Needs Chromium (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

# The servers the tests start live in tests/support, outside the shipped package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.servers import (  # noqa: E402
    BIN,
    MLFLOW_SERVER_ENV,
    ProcessGroups,
    free_port,
    mlflow_server_command,
    wait_for,
)

ROOT = (
    Path(__file__).resolve().parents[1]
)  # default project; docs/images is written here
# A loaded machine takes minutes to start the MLflow server and kedro viz.
SERVER_START_S = 180
PIPELINE = "lstm_forecast"
# The second run differs in one setting, so that the comparison has something to show.
SECOND_RUN_PARAMS = "lstm_forecast.model.hidden_size=25"
# MLflow's UI keeps these in localStorage: open runs in the model-training view, and
# keep the assistant panel and first-visit hints out of the picture.
MLFLOW_UI_STORAGE = {
    "mlflow.workflowType_v1": "machine_learning",
    "mlflow.assistant.panelOpen_v1": False,
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": True,
    "mlflow.detectIssues.guidanceShown_v1": True,
}
# kedro viz keeps its settings as one JSON object under this key: no feature-hint tour
# over the graph.
KEDRO_VIZ_STORAGE = {"KedroViz": {"showFeatureHints": False, "featureHintStep": 0}}


class Chromium:
    """Headless Chromium driven over ``--remote-debugging-pipe`` (fd 3 in, fd 4 out)."""

    def __init__(self, width: int, height: int) -> None:
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if binary is None:
            raise SystemExit("Chromium is missing: apt-get install chromium")
        self._profile = tempfile.mkdtemp(prefix="screenshots-chromium-")
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()

        def pipes_to_3_and_4() -> None:
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                f"--user-data-dir={self._profile}",
                f"--window-size={width},{height}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            preexec_fn=pipes_to_3_and_4,  # noqa: PLW1509 - only dup2, no locks
            pass_fds=(3, 4),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send(
            "Target.attachToTarget", targetId=target, flatten=True
        )["sessionId"]
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def page(self, method: str, **params) -> dict:
        return self.send(method, session=self.session, **params)

    def evaluate(self, expression: str):
        result = self.page(
            "Runtime.evaluate", expression=expression, returnByValue=True
        )
        return result.get("result", {}).get("value")

    def store(self, items: dict) -> None:
        """Write ``items`` to the current origin's localStorage, as JSON."""
        for key, value in items.items():
            self.evaluate(
                f"localStorage.setItem({json.dumps(key)}, {json.dumps(json.dumps(value))})"
            )

    def goto(self, url: str, until_text: list[str], seconds: float = 60) -> None:
        """Load ``url`` and wait until the page shows every one of ``until_text``."""
        self.page("Page.navigate", url=url)
        # Lower case: innerText follows CSS text-transform (upper-case labels).
        probe = " && ".join(
            f"document.body.innerText.toLowerCase().includes({json.dumps(t.lower())})"
            for t in until_text
        )
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.evaluate(f"!!document.body && {probe}"):
                time.sleep(2)  # charts and images finish drawing
                return
            time.sleep(0.5)
        raise TimeoutError(f"{url} did not show {until_text} within {seconds} s")

    def screenshot(self, path: Path) -> None:
        data = self.page("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        print(f"wrote {path}")  # noqa: T201 - the script says what it wrote

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        os.close(self._out)
        os.close(self._in)
        shutil.rmtree(self._profile, ignore_errors=True)


def kedro_runs(project: Path, params: str | None) -> None:
    """Two runs of the small pipeline; the second with a smaller LSTM."""
    kedro = str(BIN / "kedro")
    first = params or None
    second = f"{params},{SECOND_RUN_PARAMS}" if params else SECOND_RUN_PARAMS
    for chosen in (first, second):
        extra = ["--params", chosen] if chosen else []
        subprocess.run(
            [kedro, "run", f"--pipeline={PIPELINE}", *extra], cwd=project, check=True
        )


def newest_runs(tracking_uri: str) -> tuple[str, list]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(f"medlstm/{PIPELINE}")
    runs = (
        client.search_runs(
            [experiment.experiment_id],
            filter_string="attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=2,
        )
        if experiment
        else []
    )
    if len(runs) < 2:
        raise SystemExit(
            f"Needs two finished {PIPELINE} runs in {tracking_uri}: run this script with --run"
        )
    return experiment.experiment_id, runs


def _photograph(
    mlflow_url: str, viz_url: str, experiment_id: str, runs: tuple, out: Path
) -> None:
    """The run page of the newer run, the two runs compared, and kedro viz."""
    newest, older = runs
    browser = Chromium(1400, 1050)
    try:
        # A plain page of the same origin, to set the UI's stored settings.
        browser.goto(f"{mlflow_url}/health", ["OK"])
        browser.store(MLFLOW_UI_STORAGE)
        run_page = (
            f"{mlflow_url}/#/experiments/{experiment_id}/runs/{newest.info.run_id}"
            "?workflowType=machine_learning"
        )
        browser.goto(run_page, [newest.info.run_name, "Registered models", "Datasets"])
        browser.screenshot(out / "mlflow_run.png")

        ids = json.dumps([newest.info.run_id, older.info.run_id])
        query = urllib.parse.urlencode(
            {"runs": ids, "experiments": json.dumps([experiment_id])}
        )
        browser.goto(
            f"{mlflow_url}/#/compare-runs?{query}&workflowType=machine_learning",
            ["Parameters", "Metrics", newest.info.run_name],
        )
        browser.screenshot(out / "mlflow_compare.png")

        browser.goto(f"{viz_url}/api/main", ["nodes"])
        browser.store(KEDRO_VIZ_STORAGE)
        # Namespaced nodes are drawn inside their modular pipeline, which viz collapses
        # to one box unless asked to expand every pipeline.
        browser.goto(
            f"{viz_url}/?pid={PIPELINE}&sn=forecast_plot&expandAllPipelines=true",
            ["forecast_plot", "Dataset Type"],
            seconds=120,
        )
        browser.screenshot(out / "kedro_viz.png")
    finally:
        browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", action="store_true", help=f"run {PIPELINE} twice first"
    )
    parser.add_argument(
        "--params",
        help="extra --params of both runs, e.g. lstm_forecast.training.epochs=2",
    )
    parser.add_argument("--project", type=Path, default=ROOT)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    project = args.project.resolve()
    if args.run:
        kedro_runs(project, args.params)
    store = f"sqlite:///{project / 'mlflow.db'}"
    experiment_id, (newest, older) = newest_runs(store)
    args.out.mkdir(parents=True, exist_ok=True)
    mlflow_port, viz_port = free_port(), free_port()
    with (
        tempfile.TemporaryDirectory() as logs,
        ProcessGroups(Path(logs), project) as servers,
    ):
        mlflow_server = servers.start(
            mlflow_server_command(
                store, mlflow_port, "--default-artifact-root", "./mlruns"
            ),
            env=MLFLOW_SERVER_ENV,
        )
        viz = servers.start(
            [str(BIN / "kedro"), "viz", "run", "--no-browser", "--host", "127.0.0.1",
             "--port", str(viz_port)]
        )  # fmt: skip
        mlflow_url = f"http://127.0.0.1:{mlflow_port}"
        wait_for(f"{mlflow_url}/health", mlflow_server, SERVER_START_S)
        wait_for(f"http://127.0.0.1:{viz_port}/api/main", viz, SERVER_START_S)

        _photograph(
            mlflow_url,
            f"http://127.0.0.1:{viz_port}",
            experiment_id,
            (newest, older),
            args.out,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a study leaves: the best settings as a conf file, a trials table, an
optimisation-history figure and a short report."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # pipelines run headless; the catalog writes the PNGs

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from medlstm.core.params import nest_dotted  # noqa: E402
from medlstm.core.reporting import markdown_table  # noqa: E402


def history_figure(trials: pd.DataFrame, best: dict[str, Any]) -> plt.Figure:
    """Each completed trial's validation score by trial number, the best so far as
    a line, pruned and failed trials as marks on the axis."""
    fig, ax = plt.subplots(figsize=(7, 4))
    done = trials[trials["state"] == "COMPLETE"].sort_values("trial")
    ax.scatter(done["trial"], done["value"], s=18, label="completed trial")
    if len(done):
        ax.step(
            done["trial"],
            done["value"].cummax(),
            where="post",
            color="C3",
            label="best so far",
        )
    floor = float(np.nanmin(done["value"])) if len(done) else 0.0
    for state, marker in (("PRUNED", "x"), ("FAIL", "v")):
        part = trials[trials["state"] == state]
        if len(part):
            ax.scatter(
                part["trial"],
                np.full(len(part), floor),
                marker=marker,
                color="grey",
                label=f"{state.lower()} trial",
            )
    ax.set_xlabel("trial")
    ax.set_ylabel(best["metric"])
    ax.set_title(f"Optimisation history of {best['study']}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def best_params_file(*bests: dict[str, Any]) -> str:
    """The best trials' settings as a parameters file (YAML) shaped like
    ``conf/base/parameters_ecg_autoencoder.yml``: copied into ``conf/<env>/`` it
    applies them to ``kedro run --pipeline=ecg_autoencoder --env <env>``."""
    values: dict[str, Any] = {}
    lines = [
        "# Best settings of the ECG hyperparameter studies (kedro run --pipeline=ecg_tuning).",
        "# Copy into conf/<env>/parameters_ecg_autoencoder.yml (or merge with the one",
        "# there) and run with --env <env>; every key exists in conf/base.",
    ]
    for best in bests:
        if best["best_trial"] is None:
            lines.append(
                f"# {best['study']}: no completed trial ({_states(best)}); nothing to adopt."
            )
            continue
        lines.append(
            f"# {best['study']}: trial {best['best_trial']}, {best['metric']} "
            f"{best['best_value']:.4f} ({_states(best)})."
        )
        values.update(best["best_params"])
    body = (
        yaml.safe_dump(_plain(nest_dotted(values)), sort_keys=False)
        if values
        else "{}\n"
    )
    return "\n".join(lines) + "\n" + body


def _plain(tree: Any) -> Any:
    """NumPy scalars as Python numbers, so safe_dump writes plain YAML."""
    if isinstance(tree, dict):
        return {k: _plain(v) for k, v in tree.items()}
    return tree.item() if isinstance(tree, np.generic) else tree


def _states(best: dict[str, Any]) -> str:
    return ", ".join(f"{n} {s.lower()}" for s, n in sorted(best["states"].items()))


def tuning_report(
    autoencoder_trials: pd.DataFrame,
    autoencoder_best: dict[str, Any],
    cnn_trials: pd.DataFrame,
    cnn_best: dict[str, Any],
) -> str:
    """Markdown: per study, where it is stored, its best trial and its trials."""
    parts = [
        "# ECG hyperparameter studies",
        "",
        "Every trial is scored on the validation beats only; the test beats are never "
        "read. The best settings are in `ecg_autoencoder_best_params.yml`.",
    ]
    for trials, best in (
        (autoencoder_trials, autoencoder_best),
        (cnn_trials, cnn_best),
    ):
        parts += ["", f"## {best['study']}", ""]
        parts.append(f"Storage `{best['storage']}`; trials: {_states(best)}.")
        if best["best_trial"] is not None:
            parts.append(
                f"Best: trial {best['best_trial']}, {best['metric']} "
                f"{best['best_value']:.4f}."
            )
        shown = trials.drop(columns=["mlflow_run_id"], errors="ignore").round(4)
        parts += ["", markdown_table(shown.fillna(""))]
    return "\n".join(parts) + "\n"


def tuning_mlflow_metrics(*bests: dict[str, Any]) -> dict[str, dict]:
    """Each study's best validation score and trial counts for the parent MLflow run."""
    out = {}
    for best in bests:
        family = best["family"]
        if best["best_value"] is not None:
            out[f"{family}.best_value"] = {"value": best["best_value"], "step": 0}
        for state, n in best["states"].items():
            out[f"{family}.trials_{state.lower()}"] = {"value": float(n), "step": 0}
    return out

"""Optuna studies of the ECG models: each trial trains with the pipeline's own
training node (`train_autoencoder`, `train_cnn`) on the training beats and is scored
on the validation beats only; the test beats are never read.

A study lives in an Optuna storage (an SQLite file by default, any RDB URL, or an
Optuna journal file), so several workers (``kedro run`` on other machines, or in
other copies of the project) can share one study: each asks the storage for the next
trial and writes its result there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import optuna
import pandas as pd
from torch import nn

from medlstm.core.params import check_known_keys
from medlstm.core.training import epoch_callback
from medlstm.pipelines.ecg_autoencoder.reporting import validation_metrics
from medlstm.pipelines.ecg_autoencoder.training import (
    predict_val,
    train_autoencoder,
    train_cnn,
)
from medlstm.pipelines.ecg_tuning.search_space import (
    parse_space,
    suggest,
    with_values,
)
from medlstm.pipelines.ecg_tuning.storage import open_storage, shown_url, storage_url

logger = logging.getLogger(__name__)

WHERE = "ecg_autoencoder.tuning"
# Reported after every epoch for pruning: fit's validation macro F1 of that epoch.
INTERMEDIATE = "val_macro_f1"
METRICS = ("macro_f1", "weighted_f1", "accuracy")
PRUNERS = {
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "threshold": "ThresholdPruner",
    "hyperband": "HyperbandPruner",
    "none": "NopPruner",
}
TUNING_KEYS = (
    "study_name",
    "storage",
    "n_trials",
    "timeout_s",
    "seed",
    "metric",
    "heartbeat_s",
    "pruner",
    "search_space",
)
WORKER = f"{socket.gethostname()}:{os.getpid()}"


def check_tuning(tuning: Any) -> dict[str, Any]:
    """The ``ecg_autoencoder.tuning`` block, checked; errors name the key."""
    check_known_keys(tuning, TUNING_KEYS, WHERE)
    n = tuning.get("n_trials")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"Parameter '{WHERE}.n_trials' must be an integer >= 1.")
    timeout = tuning.get("timeout_s")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise ValueError(f"Parameter '{WHERE}.timeout_s' must be > 0 or null.")
    for key in ("seed", "heartbeat_s"):
        value = tuning.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            raise ValueError(
                f"Parameter '{WHERE}.{key}' must be an integer >= 0 or null."
            )
    if tuning.get("metric") not in METRICS:
        raise ValueError(
            f"Parameter '{WHERE}.metric' is {tuning.get('metric')!r}; expected one of "
            f"{METRICS}."
        )
    if not isinstance(tuning.get("study_name"), str) or not tuning["study_name"]:
        raise ValueError(f"Parameter '{WHERE}.study_name' must be a non-empty text.")
    return tuning


def make_pruner(config: Any) -> optuna.pruners.BasePruner:
    """``{type: median | percentile | threshold | hyperband | none, <type>: {args}}``:
    that Optuna pruner with its arguments (the other types' arguments are unused,
    so switching ``type`` alone keeps theirs)."""
    config = dict(config or {"type": "none"})
    kind = config.get("type")
    if kind not in PRUNERS:
        raise ValueError(
            f"Parameter '{WHERE}.pruner.type' is {kind!r}; expected one of "
            f"{tuple(PRUNERS)}."
        )
    args = config.get(kind) or {}
    if not isinstance(args, dict):
        raise ValueError(f"Parameter '{WHERE}.pruner.{kind}' must be a mapping.")
    try:
        return getattr(optuna.pruners, PRUNERS[kind])(**args)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Parameter '{WHERE}.pruner.{kind}': {error}") from None


@contextlib.contextmanager
def _trial_run(study: str, trial: optuna.Trial) -> Iterator[Any]:
    """A nested MLflow run for the trial under the pipeline's run (kedro-mlflow's);
    none outside an MLflow run. Its tag ``optuna.state`` says how the trial ended."""
    import mlflow

    if mlflow.active_run() is None:
        yield None
        return
    run = mlflow.start_run(
        nested=True,
        run_name=f"{study} trial {trial.number}",
        tags={"optuna.study": study, "optuna.trial": str(trial.number)},
    )
    try:
        yield run
    except optuna.TrialPruned:
        mlflow.set_tag("optuna.state", "PRUNED")
        mlflow.end_run("FINISHED")
        raise
    except BaseException:
        mlflow.set_tag("optuna.state", "FAIL")
        mlflow.end_run("FAILED")
        raise
    mlflow.set_tag("optuna.state", "COMPLETE")
    mlflow.end_run("FINISHED")


def _objective(
    study_name: str,
    dims: list,
    tree: dict[str, Any],
    train: Callable[[dict[str, Any]], nn.Module],
    score: Callable[[nn.Module], dict[str, Any]],
    metric: str,
) -> Callable[[optuna.Trial], float]:
    import mlflow

    def objective(trial: optuna.Trial) -> float:
        values = suggest(trial, dims)
        trial.set_user_attr("worker", WORKER)
        with _trial_run(study_name, trial) as run:
            if run is not None:
                trial.set_user_attr("mlflow_run_id", run.info.run_id)
                mlflow.log_params(values)

            def report(epoch: int, record: dict[str, float]) -> None:
                value = record[INTERMEDIATE]
                trial.report(value, epoch)
                if run is not None:
                    mlflow.log_metric(INTERMEDIATE, value, step=epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(
                        f"trial {trial.number} pruned after epoch {epoch} "
                        f"({INTERMEDIATE}={value:.4f})"
                    )

            with epoch_callback(report):
                model = train(with_values(tree, values))
            metrics = score(model)
            value = objective_value(metrics, metric)
            if run is not None:
                mlflow.log_metric("objective", value)
                for name, part in (metrics.get("by_database") or {}).items():
                    mlflow.log_metric(f"val_{name}_{metric}", float(part[metric]))
        return value

    return objective


def objective_value(metrics: dict[str, Any], metric: str) -> float:
    """``metric`` of the validation metrics, the mean over the databases where the
    validation beats come from several (never pooled, as in `evaluate`): MIT-BIH's
    few validation records alone can hold a handful of S beats, so its macro F1 barely
    moves between trials."""
    parts = metrics.get("by_database") or {"all": metrics}
    return float(np.mean([float(part[metric]) for part in parts.values()]))


def run_study(
    family: str,
    tree: dict[str, Any],
    train: Callable[[dict[str, Any]], nn.Module],
    score: Callable[[nn.Module], dict[str, Any]],
    tuning: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run trials of the ``family`` study until it holds ``n_trials`` finished ones
    (all workers together) or ``timeout_s`` passes; return its trials and its best.

    Args:
        family: ``autoencoder`` or ``cnn``: the study is ``<study_name>.<family>`` and
            the search space ``search_space.<family>``.
        tree: the parameters the training reads, nested as in conf; the search
            space names values in it.
        train: parameters tree -> trained model (the pipeline's training node).
        score: model -> validation metrics (`validation_metrics`).
        tuning: the ``ecg_autoencoder.tuning`` block.
    """
    tuning = check_tuning(tuning)
    space = (tuning.get("search_space") or {}).get(family)
    dims = parse_space(space, f"{WHERE}.search_space.{family}", tree)
    name = f"{tuning['study_name']}.{family}"
    url = storage_url(tuning)
    study = optuna.create_study(
        study_name=name,
        storage=open_storage(url, tuning.get("heartbeat_s")),
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=tuning.get("seed"), constant_liar=True),
        pruner=make_pruner(tuning.get("pruner")),
        load_if_exists=True,
    )
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = len(study.get_trials(deepcopy=False, states=finished))
    wanted = tuning["n_trials"]
    logger.info(
        "Study %s in %s: %d of %d trials finished; worker %s.",
        name, shown_url(url), done, wanted, WORKER,
    )  # fmt: skip
    if done < wanted:
        study.optimize(
            _objective(name, dims, tree, train, score, tuning["metric"]),
            n_trials=wanted - done,
            timeout=tuning.get("timeout_s"),
            # A diverging learning rate fails its trial, not the study.
            catch=(FloatingPointError,),
            # Other workers' running trials count: the study ends at n_trials.
            callbacks=[
                optuna.study.MaxTrialsCallback(
                    wanted, states=(*finished, optuna.trial.TrialState.RUNNING)
                )
            ],
            gc_after_trial=True,
        )
    trials = trials_table(study)
    return trials, best_summary(study, trials, family, url, tuning["metric"])


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, the searched parameters, the last
    epoch reported (where a pruned trial stopped), worker and duration."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        duration = t.duration.total_seconds() if t.duration is not None else np.nan
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "value": t.value if t.value is not None else np.nan,
                **t.params,
                "last_epoch": t.last_step if t.last_step is not None else np.nan,
                "worker": t.user_attrs.get("worker", ""),
                "mlflow_run_id": t.user_attrs.get("mlflow_run_id", ""),
                "duration_s": duration,
            }
        )
    return pd.DataFrame(rows)


def best_summary(
    study: optuna.Study, trials: pd.DataFrame, family: str, url: str, metric: str
) -> dict[str, Any]:
    """The study's best trial (None when no trial completed) and its trial counts."""
    states = trials["state"].value_counts().to_dict() if len(trials) else {}
    complete = [
        t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"
    ]
    best = max(complete, key=lambda t: t.value) if complete else None
    return {
        "family": family,
        "study": study.study_name,
        "storage": shown_url(url),
        "metric": f"validation {metric}",
        "states": {k: int(v) for k, v in states.items()},
        "best_trial": best.number if best else None,
        "best_value": best.value if best else None,
        "best_params": dict(best.params) if best else {},
    }


def _scorer(beats, windows, features, label_mapping) -> Callable[[nn.Module], dict]:
    def score(model: nn.Module) -> dict[str, Any]:
        predictions = predict_val(model, beats, windows, features, label_mapping)
        return validation_metrics(predictions, label_mapping)[0]

    return score


def _trial_block(block: dict[str, Any]) -> dict[str, Any]:
    # One model per trial, never resumed from (or written to) the run's checkpoint.
    return {**block, "ensemble_seeds": [], "checkpoint_path": None}


def tune_autoencoder(
    beats: pd.DataFrame,
    windows: dict[str, np.ndarray],
    params: dict[str, Any],
    features: dict[str, Any],
    label_mapping: dict[str, list[str]],
    alpha: float,
    beta: float,
    tuning: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Study of the LSTM autoencoder: ``alpha``, ``beta`` and any value of
    ``ecg_autoencoder.autoencoder`` can be searched; each trial trains one model
    (no ensemble) with `train_autoencoder` and is scored on the validation beats.

    Returns:
        The study's trials table and its best trial (see `run_study`).
    """
    tree = {
        "alpha": alpha,
        "beta": beta,
        "ecg_autoencoder": {"autoencoder": _trial_block(params)},
    }

    def train(p: dict[str, Any]) -> nn.Module:
        block = p["ecg_autoencoder"]["autoencoder"]
        model, _ = train_autoencoder(
            beats, windows, block, features, label_mapping, p["alpha"], p["beta"]
        )
        return model

    score = _scorer(beats, windows, features, label_mapping)
    return run_study("autoencoder", tree, train, score, tuning)


def tune_cnn(
    beats: pd.DataFrame,
    windows: dict[str, np.ndarray],
    params: dict[str, Any],
    features: dict[str, Any],
    label_mapping: dict[str, list[str]],
    tuning: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Study of the 1D-CNN: any value of ``ecg_autoencoder.cnn`` can be searched;
    each trial trains with `train_cnn` and is scored on the validation beats."""
    tree = {"ecg_autoencoder": {"cnn": _trial_block(params)}}

    def train(p: dict[str, Any]) -> nn.Module:
        model, _ = train_cnn(
            beats, windows, p["ecg_autoencoder"]["cnn"], features, label_mapping
        )
        return model

    score = _scorer(beats, windows, features, label_mapping)
    return run_study("cnn", tree, train, score, tuning)

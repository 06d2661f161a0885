"""The one evaluation and report module every pipeline uses.

Metrics come back as plain JSON-able dicts (they go to a JSON file and to MLflow),
figures as matplotlib figures (they go through the catalog's MatplotlibDataset),
reports as Markdown strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # pipelines run headless; the catalog writes the PNGs

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medlstm.core.reporting import markdown_table  # noqa: E402


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean F1 over the classes present in ``y_true`` (class indices, shape (n,)): a
    class with no true samples would add a meaningless 0. The one macro F1 of the
    project: training monitors, tuning studies and reports all read this one."""
    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    scores = [
        2 * np.sum((pred == c) & (true == c)) / (np.sum(pred == c) + np.sum(true == c))
        for c in np.unique(true)
    ]
    return float(np.mean(scores)) if scores else 0.0


def classification_metrics(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    class_names: Sequence[str],
    y_score: np.ndarray | None = None,
) -> dict[str, Any]:
    """Accuracy, per-class precision / recall / specificity / F1 / support, macro and
    weighted F1, the confusion matrix, and ROC-AUC where it is defined.

    Args:
        y_true, y_pred: class indices into ``class_names``, shape (n,).
        class_names: one name per class index.
        y_score: class probabilities, shape (n, n_classes); gives ROC-AUC (binary:
            of the positive class index 1; multi-class: one-vs-rest macro).

    Returns:
        ``{"accuracy", "macro_f1", "weighted_f1", "n", "per_class": {name: {...}},
        "confusion_matrix": [[...]], "class_names": [...], "roc_auc"?}``. Recall is
        sensitivity (Se) and precision positive predictive value (+P).
    """
    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if true.shape != pred.shape:
        raise ValueError(f"y_true has shape {true.shape} but y_pred has {pred.shape}.")
    k = len(class_names)
    if true.size and (
        true.max() >= k or pred.max() >= k or min(true.min(), pred.min()) < 0
    ):
        raise ValueError(
            f"Class indices must lie in [0, {k}) for classes {list(class_names)}."
        )
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (true, pred), 1)
    n = int(cm.sum())
    per_class: dict[str, dict[str, float]] = {}
    for i, name in enumerate(class_names):
        tp = cm[i, i]
        fn = cm[i].sum() - tp
        fp = cm[:, i].sum() - tp
        tn = n - tp - fn - fp
        precision = _ratio(tp, tp + fp)
        recall = _ratio(tp, tp + fn)
        per_class[name] = {
            "precision": precision,
            "recall": recall,
            "specificity": _ratio(tn, tn + fp),
            "f1": _ratio(2 * precision * recall, precision + recall),
            "support": int(tp + fn),
        }
    supports = np.array([m["support"] for m in per_class.values()], dtype=np.float64)
    f1s = np.array([m["f1"] for m in per_class.values()])
    result: dict[str, Any] = {
        "n": n,
        "accuracy": _ratio(np.trace(cm), n),
        "macro_f1": macro_f1(true, pred),
        "weighted_f1": float((f1s * supports).sum() / supports.sum()) if n else 0.0,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "class_names": list(class_names),
    }
    if y_score is not None:
        auc = _roc_auc(true, np.asarray(y_score, dtype=np.float64), k)
        if auc is not None:
            result["roc_auc"] = auc
    return result


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


def _roc_auc(true: np.ndarray, score: np.ndarray, k: int) -> float | None:
    from sklearn.metrics import roc_auc_score  # scikit-learn's import costs seconds

    present = np.unique(true)
    if present.size < 2:
        return None  # undefined with a single class in the test set
    if k == 2:
        return float(roc_auc_score(true, score[:, 1] if score.ndim == 2 else score))
    return (
        float(
            roc_auc_score(
                true, score, multi_class="ovr", average="macro", labels=list(range(k))
            )
        )
        if present.size == k
        else None
    )


def regression_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, scale: float | None = None
) -> dict[str, float]:
    """MAE, RMSE and, given the naive in-sample MAE as ``scale``, MASE."""
    true, pred = (
        np.asarray(y_true, dtype=np.float64),
        np.asarray(y_pred, dtype=np.float64),
    )
    if true.shape != pred.shape:
        raise ValueError(f"y_true has shape {true.shape} but y_pred has {pred.shape}.")
    err = pred - true
    result = {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean()))}
    if scale is not None:
        if scale <= 0:
            raise ValueError(f"MASE scale must be > 0, got {scale}.")
        result["mase"] = result["mae"] / scale
    return result


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a metrics dict as ``a.b.c -> value`` (the confusion matrix is skipped)."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, f"{name}."))
        elif isinstance(value, int | float | np.number) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def history_to_mlflow(
    history: Sequence[dict[str, float]], prefix: str = ""
) -> dict[str, list[dict]]:
    """A per-epoch history in the shape kedro-mlflow's MlflowMetricsHistoryDataset logs.

    Each metric becomes one MLflow metric with a value per epoch (step = epoch). Rows
    tagged with a ``member`` index (the models of an ensemble, trained one after the
    other) go to ``member<i>/<metric>``.
    """
    out: dict[str, list[dict]] = {}
    for record in history:
        step = int(record["epoch"])
        member = f"member{int(record['member'])}/" if "member" in record else ""
        for key, value in record.items():
            if key not in ("epoch", "member"):
                out.setdefault(f"{prefix}{member}{key}", []).append(
                    {"value": float(value), "step": step}
                )
    return out


def summary_to_mlflow(metrics: dict[str, Any], prefix: str = "") -> dict[str, dict]:
    """Final metrics (nested dict) in the MlflowMetricsHistoryDataset shape, step 0."""
    return {
        _mlflow_key(k): {"value": v, "step": 0}
        for k, v in flatten_metrics(metrics, prefix).items()
    }


def _mlflow_key(name: str) -> str:
    # MLflow keys allow letters, digits, _ - . / and space; class names may hold others.
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)


def confusion_matrix_figure(
    metrics: dict[str, Any], title: str = "Confusion matrix"
) -> plt.Figure:
    """Counts and row-normalised shading, so rare classes are as readable as common ones."""
    cm = np.asarray(metrics["confusion_matrix"], dtype=np.float64)
    names = metrics["class_names"]
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    size = 2.0 + 0.7 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j,
                i,
                f"{int(cm[i, j])}\n{share[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if share[i, j] > 0.6 else "black",
            )
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of true class")
    fig.tight_layout()
    return fig


def training_curves_figure(
    history: Sequence[dict[str, float]], title: str = "Training curves"
) -> plt.Figure:
    """Loss, and accuracy / macro F1 when present, of train vs validation per epoch.

    Rows tagged with a ``member`` index (an ensemble's models) draw one set of curves
    per member.
    """
    runs: dict[int | None, list[dict[str, float]]] = {}
    for record in history:
        runs.setdefault(record.get("member"), []).append(record)
    first = history[0] if history else {}
    panels = [("loss", "loss")] + [
        (m, m.replace("_", " "))
        for m in ("accuracy", "macro_f1")
        if f"val_{m}" in first
    ]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False
    )
    for ax, (metric, label) in zip(axes[0], panels, strict=True):
        for member, rows in runs.items():
            tag = "" if member is None else f" (member {member})"
            epochs = [r["epoch"] for r in rows]
            for split, style in (("train", "-o"), ("val", "-s")):
                key = f"{split}_{metric}"
                if key in rows[0]:
                    ax.plot(
                        epochs, [r[key] for r in rows], style, markersize=3,
                        label=f"{split}{tag}",
                    )  # fmt: skip
            best = _best_epoch(rows)
            if best is not None:
                ax.axvline(
                    best, color="grey", linestyle=":", label=f"best epoch {best}{tag}"
                )
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _best_epoch(history: Sequence[dict[str, float]]) -> int | None:
    if not history or "val_loss" not in history[0]:
        return None
    return int(min(history, key=lambda r: r["val_loss"])["epoch"])


def metrics_table_markdown(metrics: dict[str, Any], digits: int = 3) -> str:
    """Per-class table (Se = recall, +P = precision) followed by the overall figures."""
    header = ["class", "Se (recall)", "+P (precision)", "specificity", "F1", "support"]
    rows = [
        [name]
        + [f"{m[k]:.{digits}f}" for k in ("recall", "precision", "specificity", "f1")]
        + [m["support"]]
        for name, m in metrics["per_class"].items()
    ]
    lines = [markdown_table(rows, header), ""]
    overall = [
        f"accuracy **{metrics['accuracy']:.{digits}f}**",
        f"macro F1 **{metrics['macro_f1']:.{digits}f}**",
        f"weighted F1 **{metrics['weighted_f1']:.{digits}f}**",
        f"n = {metrics['n']}",
    ]
    if "roc_auc" in metrics:
        overall.insert(3, f"ROC-AUC **{metrics['roc_auc']:.{digits}f}**")
    lines.append(" · ".join(overall))
    return "\n".join(lines)


def confusion_matrix_markdown(metrics: dict[str, Any]) -> str:
    """The confusion matrix as a Markdown table of counts (rows true, columns predicted)."""
    names = metrics["class_names"]
    rows = [
        [f"**{name}**", *row]
        for name, row in zip(names, metrics["confusion_matrix"], strict=True)
    ]
    return markdown_table(rows, ["true \\ predicted", *names])


def markdown_report(title: str, sections: Sequence[tuple[str, str]]) -> str:
    """A report: a title, then ``## heading`` + body for each section."""
    parts = [f"# {title}", ""]
    for heading, body in sections:
        parts += [f"## {heading}", "", body.strip(), ""]
    return "\n".join(parts)

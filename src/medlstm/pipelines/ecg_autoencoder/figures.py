"""Figures of a run: reconstructions, the latent space and the scores per test set."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from medlstm.models.ecg_autoencoder import (
    LSTMAutoencoderClassifier,
    LSTMAutoencoderEnsemble,
)
from medlstm.pipelines.ecg_autoencoder.reporting import (
    DS2_FLOOR,
    TEST_SET_NAMES,
    by_test_set,
)
from medlstm.pipelines.ecg_autoencoder.training import check_aligned, predict_beats


def reconstruction_figure(
    model: LSTMAutoencoderClassifier | LSTMAutoencoderEnsemble,
    beats: pd.DataFrame,
    windows: dict[str, np.ndarray],
    features: dict[str, Any],
    label_mapping: dict[str, list[str]],
    params: dict[str, Any],
) -> plt.Figure:
    """Original vs reconstructed test beats, a row per class present in the test set."""
    check_aligned(beats, windows)
    n = int(params.get("examples_per_class", 4))
    rng = np.random.default_rng(int(params.get("seed", 0)))
    test = np.flatnonzero(beats["split"].to_numpy() == "test")
    labels = beats["label"].to_numpy()[test]
    classes = [c for c in label_mapping if (labels == c).any()]
    fig, axes = plt.subplots(
        len(classes),
        n,
        figsize=(2.6 * n, 1.9 * len(classes)),
        squeeze=False,
        sharex=True,
    )
    for row, name in enumerate(classes):
        members = test[labels == name]
        picked = np.sort(rng.choice(members, size=min(n, len(members)), replace=False))
        x = windows["windows"][picked]
        out, recon, _ = predict_beats(
            model, beats.iloc[picked], x, features, list(label_mapping)
        )
        for col in range(n):
            ax = axes[row, col]
            if col >= len(picked):
                ax.axis("off")
                continue
            ax.plot(x[col], color="black", linewidth=1.0, label="original")
            ax.plot(recon[col], color="tab:red", linewidth=1.0, label="reconstruction")
            ax.set_title(
                f"{name} | {out['record'][col]}:{out['sample'][col]} -> "
                f"{out['predicted'][col]}",
                fontsize=7,
            )
            ax.tick_params(labelsize=6)
        axes[row, 0].set_ylabel(name)
    axes[0, 0].legend(fontsize=6, loc="upper right")
    fig.suptitle("Test beats: original (black) vs reconstruction (red)")
    fig.tight_layout()
    return fig


def latent_projection_figure(
    latent: pd.DataFrame, params: dict[str, Any]
) -> plt.Figure:
    """PCA of the test beats' latent vectors onto 2-D, coloured by class."""
    from sklearn.decomposition import PCA  # scikit-learn's import costs seconds

    z_cols = [c for c in latent.columns if c.startswith("z_")]
    max_points = int(params.get("projection_max_points", 20000))
    rng = np.random.default_rng(int(params.get("seed", 0)))
    shown = latent
    if len(latent) > max_points:
        shown = latent.iloc[np.sort(rng.choice(len(latent), max_points, replace=False))]
    xy = PCA(n_components=2, random_state=0).fit_transform(shown[z_cols].to_numpy())
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    # Common classes first, so rare ones are drawn on top and stay visible.
    for label in shown["label"].value_counts().index:
        mask = (shown["label"] == label).to_numpy()
        ax.scatter(
            xy[mask, 0], xy[mask, 1], s=4, alpha=0.6, label=f"{label} ({mask.sum()})"
        )
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title("Latent vectors of the test beats (PCA)")
    ax.legend(markerscale=3, fontsize=8)
    fig.tight_layout()
    return fig


def scores_by_test_set_figure(
    autoencoder_metrics: dict[str, Any],
    cnn_metrics: dict[str, Any],
    linear_metrics: dict[str, Any],
    rhythm_metrics: dict[str, Any],
    split_params: dict[str, Any],
) -> plt.Figure:
    """S and V sensitivity and +P of every model on every test set of this run's
    protocol: one panel per test set, bars per model, the DS2 floor as lines."""
    models = {
        "rhythm": rhythm_metrics,
        "autoencoder": autoencoder_metrics,
        "CNN": cnn_metrics,
        "linear": linear_metrics,
    }
    databases = list(by_test_set(autoencoder_metrics))
    scores = ("S Se", "S +P", "V Se", "V +P")
    fig, axes = plt.subplots(
        1, len(databases), figsize=(5.5 * len(databases), 3.8), squeeze=False
    )
    width = 0.8 / len(models)
    for ax, database in zip(axes[0], databases, strict=True):
        for i, (name, metrics) in enumerate(models.items()):
            m = by_test_set(metrics).get(database)
            if m is None:
                continue
            pc = m["per_class"]
            values = [
                pc.get(c, {}).get(k, 0.0)
                for c in ("S", "V")
                for k in ("recall", "precision")
            ]
            offset = (i - (len(models) - 1) / 2) * width  # bars centred on each tick
            ax.bar(np.arange(4) + offset, values, width, label=name)
        if database == "mitdb":
            floors = (DS2_FLOOR[k] for k in ("S_Se", "S_+P", "V_Se", "V_+P"))
            for x, floor in zip(range(4), floors, strict=True):
                ax.hlines(floor, x - 0.45, x + 0.45, colors="k", linestyles=":")
        ax.set_xticks(range(4), scores)
        ax.set_ylim(0, 1.05)
        ax.set_title(TEST_SET_NAMES.get(database, database), fontsize=9)
    axes[0][0].set_ylabel("score")
    axes[0][0].legend(fontsize=8, loc="lower left")
    fig.suptitle(
        f"Protocol {split_params.get('scheme', 'inter_patient')}: S and V on each test "
        "set (dotted: the DS2 floor)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig

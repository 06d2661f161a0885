"""The RR-feature input shared by the ECG beat classifiers.

    rr (B, R) -> (rr - mean) / scale -> (B, R)    (statistics of the training beats)

The statistics travel inside the model (as buffers, rebuilt from its config when a
saved model is loaded), so inference and the pyfunc model take raw RR features.
Left out, the input passes unchanged, as in models saved before standardisation.
"""

from __future__ import annotations

import torch
from torch import nn


class RRInput(nn.Module):
    """Checks and standardises a model's RR features."""

    def __init__(
        self,
        n_features: int,
        mean: list[float] | None = None,
        scale: list[float] | None = None,
    ) -> None:
        super().__init__()
        if n_features < 0:
            raise ValueError(f"n_rr_features must be >= 0, got {n_features}.")
        for name, values in (("rr_mean", mean), ("rr_scale", scale)):
            if values is not None and len(values) != n_features:
                raise ValueError(
                    f"{name} has {len(values)} values for {n_features} RR features."
                )
        if scale is not None and min(scale, default=1.0) <= 0:
            raise ValueError(f"rr_scale must be > 0, got {scale}.")
        self.n_features = n_features
        # Not persistent: the config holds them, and older state dicts lack them.
        self.register_buffer(
            "mean", torch.tensor(mean or [0.0] * n_features), persistent=False
        )
        self.register_buffer(
            "scale", torch.tensor(scale or [1.0] * n_features), persistent=False
        )

    def forward(self, rr: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        """rr (B, R) raw -> (B, R) standardised, in ``dtype``."""
        if rr is None or rr.shape[-1] != self.n_features:
            got = None if rr is None else tuple(rr.shape)
            raise ValueError(
                f"This model takes {self.n_features} RR features, got {got}."
            )
        return ((rr - self.mean) / self.scale).to(dtype)


def rr_config(mean: list[float] | None, scale: list[float] | None) -> dict:
    """The ``rr_mean`` / ``rr_scale`` entries of a model's config, as plain floats."""
    return {
        "rr_mean": None if mean is None else [float(v) for v in mean],
        "rr_scale": None if scale is None else [float(v) for v in scale],
    }

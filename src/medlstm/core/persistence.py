"""Model persistence without unpickling code.

A saved model is ``{"architecture": name, "config": {...}, "state_dict": {...}}``
written by ``torch.save`` and read back with ``torch.load(weights_only=True)``,
which only accepts tensors and plain containers. The architecture name selects a
class from a registry that each model module fills itself with the
`register_architecture` decorator; the class is rebuilt from its JSON-able config
and the weights are loaded into it. The core names no model: importing
``medlstm.models`` (as `medlstm.datasets.TorchModelDataset` does) registers every
architecture of the project.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from torch import nn

_ARCHITECTURES: dict[str, type[nn.Module]] = {}


def register_architecture(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make ``cls`` loadable by name. ``cls(**config)`` must build it."""

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        if _ARCHITECTURES.get(name, cls) is not cls:
            raise ValueError(
                f"Architecture name {name!r} is already taken by {_ARCHITECTURES[name]}."
            )
        _ARCHITECTURES[name] = cls
        cls.architecture_name = name
        return cls

    return decorate


def build_model(architecture: str, config: dict[str, Any]) -> nn.Module:
    """Instantiate a registered architecture from its config."""
    if architecture not in _ARCHITECTURES:
        raise KeyError(
            f"Unknown architecture {architecture!r}; registered: {sorted(_ARCHITECTURES)}. "
            "Import the module that defines it first (`import medlstm.models` "
            "registers all of medlstm's)."
        )
    return _ARCHITECTURES[architecture](**config)


def model_config(model: nn.Module) -> dict[str, Any]:
    """The config a registered model was built with (stored as ``model.config``)."""
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise TypeError(
            f"{type(model).__name__} must keep its constructor arguments in `self.config` "
            "(a dict) to be saved."
        )
    json.dumps(config)  # fails early on values a config file could not hold
    return config


def save_model(model: nn.Module, path: str | Path) -> None:
    """Write architecture name, config and weights to one file."""
    name = getattr(type(model), "architecture_name", None)
    if name is None:
        raise TypeError(
            f"{type(model).__name__} is not registered with @register_architecture."
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(
        {"architecture": name, "config": model_config(model), "state_dict": state}, path
    )


def load_model(path: str | Path) -> nn.Module:
    """Rebuild a model saved by `save_model`, in eval mode, without unpickling code."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No model file at {path}.")
    try:
        bundle = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not a medlstm model file: {err}") from err
    missing = {"architecture", "config", "state_dict"} - set(bundle)
    if missing:
        raise ValueError(
            f"{path} lacks {sorted(missing)}; it was not written by save_model."
        )
    model = build_model(bundle["architecture"], bundle["config"])
    model.load_state_dict(bundle["state_dict"])
    return model.eval()


# What every logged pyfunc model of medlstm imports when it serves, besides the medlstm
# code it ships with: its inference pipeline runs through kedro and kedro-mlflow.
PYFUNC_BASE_REQUIREMENTS = (
    "torch",
    "kedro",
    "kedro-datasets",
    "kedro-mlflow",
    "mlflow",
    "numpy",
    "pandas",
)


def pip_requirements(*extra: str) -> list[str]:
    """pip requirements of a logged pyfunc model: `PYFUNC_BASE_REQUIREMENTS` and the
    ``extra`` distributions its inference pipeline needs, each pinned to the version
    installed here, the one the model was trained and tested with."""
    names = dict.fromkeys((*PYFUNC_BASE_REQUIREMENTS, *extra))
    return [f"{name}=={version(name)}" for name in names]

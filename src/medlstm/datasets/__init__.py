"""Project Kedro datasets."""

from medlstm.datasets.numpy_dataset import NumpyDataset
from medlstm.datasets.torch_model import TorchModelDataset

__all__ = ["NumpyDataset", "TorchModelDataset"]

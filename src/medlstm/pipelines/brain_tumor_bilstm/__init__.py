"""brain_tumor_bilstm: a stacked BiLSTM that classifies 64x64 brain MRI slices, with a
duplicate audit of the published split and evaluation on a deduplicated test set."""

from medlstm.pipelines.brain_tumor_bilstm.pipeline import create_pipeline

__all__ = ["create_pipeline"]

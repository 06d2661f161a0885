"""smri_cnn_lstm: glioma grade (HGG/LGG) from multi-modal MRI with a 3D CNN + LSTM."""

from medlstm.pipelines.smri_cnn_lstm.pipeline import create_pipeline

__all__ = ["create_pipeline"]

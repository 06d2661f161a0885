"""The BiLSTM's layer list, parameter count and persistence."""

from __future__ import annotations

import pytest
import torch

from medlstm.core.persistence import load_model, save_model
from medlstm.models.brain_bilstm import BrainBiLSTM

# 64x64 input, 4 classes. torch LSTMs carry two bias vectors per gate (b_ih, b_hh),
# Keras LSTMs one, so the same layers count 1,536 more here than in Keras.
TORCH_PARAMETERS = 286_052
KERAS_PARAMETERS = 284_516


def test_parameter_count_matches_the_published_layer_list():
    model = BrainBiLSTM()
    total = sum(p.numel() for p in model.parameters())
    second_biases = sum(
        p.numel() for n, p in model.named_parameters() if "bias_hh" in n
    )
    assert total == TORCH_PARAMETERS
    assert total - second_biases == KERAS_PARAMETERS


def test_layers_have_the_published_widths():
    model = BrainBiLSTM()
    assert (model.lstm1.input_size, model.lstm1.hidden_size) == (64, 128)
    assert model.lstm1.bidirectional and model.lstm2.bidirectional
    assert (model.dense.in_features, model.dense.out_features) == (256, 64)
    assert (model.lstm2.input_size, model.lstm2.hidden_size) == (64, 64)
    assert (model.head.in_features, model.head.out_features) == (128, 32)
    assert model.out.out_features == 4
    assert [model.drop_seq.p, model.drop_lstm.p, model.drop_head.p] == [0.3, 0.5, 0.3]


@pytest.mark.parametrize("shape", [(3, 64, 64), (3, 1, 64, 64)])
def test_forward_gives_logits_per_image(shape):
    logits = BrainBiLSTM().eval()(torch.rand(shape))
    assert logits.shape == (3, 4)
    assert torch.isfinite(logits).all()


def test_wrong_image_size_is_a_clear_error():
    with pytest.raises(ValueError, match="64x64"):
        BrainBiLSTM()(torch.rand(2, 32, 32))


def test_keras_like_initialisation_sets_forget_bias_to_one():
    model = BrainBiLSTM()
    hidden = model.lstm1.hidden_size
    bias = model.lstm1.bias_ih_l0 + model.lstm1.bias_hh_l0
    assert torch.all(bias[hidden : 2 * hidden] == 1.0)
    assert torch.all(bias[:hidden] == 0.0)
    gate = model.lstm1.weight_hh_l0[:hidden]
    assert torch.allclose(gate @ gate.T, torch.eye(hidden), atol=1e-4)  # orthogonal


def test_the_last_output_reads_both_directions():
    # The backward direction's final state sees the first row: changing only the
    # first row must change the logits.
    model = BrainBiLSTM().eval()
    x = torch.rand(1, 64, 64)
    y = x.clone()
    y[:, 0] = 1.0 - y[:, 0]
    assert not torch.allclose(model(x), model(y))


def test_saved_model_loads_back_identical(tmp_path):
    model = BrainBiLSTM(image_size=32, n_classes=3, lstm1_units=16).eval()
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    x = torch.rand(2, 32, 32)
    assert loaded.config == model.config
    assert torch.equal(loaded(x), model(x))

"""CNN3DLSTM: shapes of the three extractors, persistence, and what the LSTM reads."""

from __future__ import annotations

import pytest
import torch

from medlstm.core.persistence import load_model, save_model
from medlstm.models.cnn3d_lstm import CNN3DLSTM, SqueezeExcite3d

SHAPE = (8, 16, 16)


def small(extractor: str, **kwargs) -> CNN3DLSTM:
    torch.manual_seed(0)
    return CNN3DLSTM(
        extractor, SHAPE, n_modalities=3, channels=(2, 4), hidden_size=5, **kwargs
    ).eval()


@pytest.mark.parametrize(
    ("extractor", "embedding"), [("flatten", 4 * 2 * 4 * 4), ("gap", 4), ("se", 4)]
)
def test_each_extractor_maps_patients_to_two_logits(extractor, embedding):
    model = small(extractor)
    x = torch.rand(3, 3, *SHAPE)
    assert model.embedding_size == embedding
    assert model.embed(x).shape == (3, 3, embedding)
    assert model(x).shape == (3, 2)


def test_only_cnn3_has_squeeze_excitation_blocks():
    counts = {
        e: sum(isinstance(m, SqueezeExcite3d) for m in small(e).modules())
        for e in ("flatten", "gap", "se")
    }
    assert counts == {"flatten": 0, "gap": 0, "se": 2}


def test_squeeze_excitation_rescales_channels_by_a_gate_in_0_1():
    block = SqueezeExcite3d(6, reduction=2)
    x = torch.rand(2, 6, 4, 4, 4) + 0.1
    ratio = block(x) / x
    per_channel = ratio.flatten(2)
    assert torch.allclose(per_channel, per_channel[..., :1].expand_as(per_channel))
    assert ((ratio > 0) & (ratio < 1)).all()


def test_the_lstm_reads_modalities_in_order():
    model = small("gap")
    x = torch.rand(2, 3, *SHAPE)
    assert not torch.allclose(model(x), model(x[:, [2, 0, 1]]))


def test_patients_in_a_batch_are_independent_in_eval_mode():
    model = small("se")
    x = torch.rand(4, 3, *SHAPE)
    torch.testing.assert_close(model(x)[1:2], model(x[1:2]))


def test_save_and_load_rebuild_the_same_model(tmp_path):
    model = small("flatten", dropout=0.1)
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    x = torch.rand(2, 3, *SHAPE)
    assert isinstance(loaded, CNN3DLSTM) and loaded.config == model.config
    torch.testing.assert_close(loaded(x), model(x))


def test_gradients_reach_the_first_convolution():
    model = small("se").train()
    model(torch.rand(2, 3, *SHAPE)).sum().backward()
    assert model.cnn[0][0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"extractor": "max"}, "extractor"),
        ({"input_shape": (10, 16, 16)}, "divisible by 4"),
    ],
)
def test_bad_configs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CNN3DLSTM(**{"input_shape": SHAPE, "channels": (2, 4), **kwargs})

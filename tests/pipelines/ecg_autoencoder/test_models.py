"""The two architectures: shapes, input checks, safe save/load round trip."""

from __future__ import annotations

import pytest
import torch

from medlstm.core.persistence import load_model, save_model
from medlstm.models.cnn1d import CNN1DClassifier
from medlstm.models.ecg_autoencoder import LSTMAutoencoderClassifier


def small_autoencoder(**overrides) -> LSTMAutoencoderClassifier:
    config = {"seq_len": 32, "n_classes": 5, "n_rr_features": 4, "hidden_size": 16}
    config |= {"latent_size": 8, "head_hidden": 8} | overrides
    return LSTMAutoencoderClassifier(**config)


def test_autoencoder_shapes():
    torch.manual_seed(0)
    model = small_autoencoder().eval()
    x, rr = torch.randn(3, 32), torch.rand(3, 4)

    recon, logits = model(x, rr)
    assert recon.shape == (3, 32) and logits.shape == (3, 5)
    recon2, logits2, z = model(x, rr, return_latent=True)
    assert z.shape == (3, 8)
    torch.testing.assert_close(recon, recon2)
    torch.testing.assert_close(model.encode(x), z)


def test_rr_features_change_the_logits_but_not_the_reconstruction():
    torch.manual_seed(0)
    model = small_autoencoder().eval()
    x = torch.randn(2, 32)
    recon_a, logits_a = model(x, torch.zeros(2, 4))
    recon_b, logits_b = model(x, torch.ones(2, 4))
    torch.testing.assert_close(recon_a, recon_b)
    assert not torch.allclose(logits_a, logits_b)


def test_cross_entropy_and_reconstruction_both_train_the_encoder():
    torch.manual_seed(0)
    model = small_autoencoder()
    x, rr = torch.randn(4, 32), torch.rand(4, 4)
    _, logits = model(x, rr)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    assert model.head[0].weight.grad.abs().sum() > 0
    assert model.encoder.weight_ih_l0.grad.abs().sum() > 0
    model.zero_grad()
    recon, _ = model(x, rr)
    ((recon - model.standardize(x)) ** 2).mean().backward()
    assert model.encoder.weight_ih_l0.grad.abs().sum() > 0
    assert model.rr_logits.weight.grad is None or not model.rr_logits.weight.grad.any()


def test_rr_features_add_a_linear_term_to_the_logits():
    torch.manual_seed(0)
    model = small_autoencoder().eval()
    x, rr_a, rr_b = torch.randn(3, 32), torch.rand(3, 4), torch.rand(3, 4)
    _, logits_a = model(x, rr_a)
    _, logits_b = model(x, rr_b)
    # Additive: the change in logits is linear in the change of the RR features,
    # whatever the beat's morphology.
    torch.testing.assert_close(
        logits_a - logits_b, (rr_a - rr_b) @ model.rr_logits.weight.T
    )
    assert model.head[0].in_features == 8  # the MLP sees the latent alone


def logits_of(model, x, rr):
    """Either model's logits: the CNN returns them, the autoencoder (recon, logits)."""
    out = model(x, rr)
    return out if isinstance(model, CNN1DClassifier) else out[1]


@pytest.mark.parametrize("which", ["autoencoder", "cnn"])
def test_rr_features_are_standardised_inside_the_model(which):
    def build(**rr):
        if which == "cnn":
            return CNN1DClassifier(n_classes=5, n_rr_features=4, channels=[4], **rr)
        return small_autoencoder(**rr)

    torch.manual_seed(0)
    mean, scale = [1.0, 1.0, 1.0, 1.0], [0.2, 0.2, 0.1, 0.2]
    model = build(rr_mean=mean, rr_scale=scale).eval()
    plain = build().eval()
    plain.load_state_dict(model.state_dict())
    x, rr = torch.randn(2, 32), torch.rand(2, 4) + 0.5
    standardised = (rr - torch.tensor(mean)) / torch.tensor(scale)
    logits = logits_of(model, x, rr)
    torch.testing.assert_close(logits, logits_of(plain, x, standardised))
    assert not torch.allclose(logits, logits_of(plain, x, rr))


def test_autoencoder_input_checks():
    model = small_autoencoder()
    with pytest.raises(ValueError, match="takes 4 RR features, got None"):
        model(torch.randn(2, 32))
    with pytest.raises(ValueError, match="Expected beats of 32 samples, got 30"):
        model(torch.randn(2, 30), torch.rand(2, 4))
    with pytest.raises(ValueError, match=">= 1"):
        small_autoencoder(latent_size=0)
    with pytest.raises(ValueError, match="rr_mean has 3 values for 4 RR features"):
        small_autoencoder(rr_mean=[0.0, 0.0, 0.0])
    with pytest.raises(TypeError, match="rr_path"):
        small_autoencoder(rr_path="joint")  # the joint RR path is gone


def test_input_stride_runs_the_lstms_on_fewer_steps():
    model = small_autoencoder(input_stride=4).eval()
    x = torch.randn(3, 32)
    recon, _, z = model(x, torch.rand(3, 4), return_latent=True)
    assert recon.shape == (3, 32) and z.shape == (3, 8)
    assert model.position.shape == (8, 1)  # 32 / 4 decoder steps
    with pytest.raises(ValueError, match="input_stride must divide seq_len"):
        small_autoencoder(input_stride=5)


def test_forget_gates_start_open():
    model = small_autoencoder()
    bias = model.encoder.bias_ih_l0 + model.encoder.bias_hh_l0
    torch.testing.assert_close(bias[16:32], torch.ones(16))


def test_autoencoder_without_rr_features():
    model = small_autoencoder(n_rr_features=0)
    _, logits = model(torch.randn(2, 32))
    assert logits.shape == (2, 5)


def test_cnn_shapes_and_checks():
    model = CNN1DClassifier(n_classes=3, n_rr_features=2, channels=[4, 8])
    assert model(torch.randn(5, 64), torch.rand(5, 2)).shape == (5, 3)
    with pytest.raises(ValueError, match="takes 2 RR features"):
        model(torch.randn(5, 64), torch.rand(5, 3))
    with pytest.raises(ValueError, match="odd kernel_size"):
        CNN1DClassifier(kernel_size=4)


@pytest.mark.parametrize(
    "model",
    [
        small_autoencoder(),
        small_autoencoder(rr_mean=[1.0] * 4, rr_scale=[0.5, 0.2, 0.1, 0.3]),
        CNN1DClassifier(n_classes=5, n_rr_features=4, channels=[4, 8]),
        CNN1DClassifier(
            n_classes=5,
            n_rr_features=4,
            channels=[4],
            rr_mean=[1.0] * 4,
            rr_scale=[0.5, 0.2, 0.1, 0.3],
        ),  # fmt: skip
    ],
    ids=["autoencoder", "autoencoder_standardised_rr", "cnn", "cnn_standardised_rr"],
)
def test_saved_model_loads_with_the_same_outputs(tmp_path, model):
    model.eval()
    x, rr = torch.randn(2, 32), torch.rand(2, 4)
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert type(loaded) is type(model)
    expected, got = model(x, rr), loaded(x, rr)
    for a, b in zip(
        expected if isinstance(expected, tuple) else (expected,),
        got if isinstance(got, tuple) else (got,),
        strict=True,
    ):
        torch.testing.assert_close(a, b)


def test_standardize_and_input_scale_checks():
    model = small_autoencoder(input_scale=0.5)
    torch.testing.assert_close(
        model.standardize(torch.ones(1, 32)), torch.full((1, 32), 2.0)
    )
    assert model.config["input_scale"] == 0.5
    with pytest.raises(ValueError, match="input_scale must be > 0"):
        small_autoencoder(input_scale=0.0)


def test_autoencoder_learns_to_reconstruct_small_beats():
    """Beats of ~0.1 units (like template-subtracted ones) must be reconstructed, not
    flattened to their mean: this needs the input scaling and the decoder's position."""
    torch.manual_seed(0)
    t = torch.arange(24.0)
    g = torch.Generator().manual_seed(0)
    peak = torch.randint(6, 18, (256, 1), generator=g).float()
    height = 0.1 * (torch.rand(256, 1, generator=g) + 0.5)
    x = height * torch.exp(-0.5 * ((t - peak) / 2.0) ** 2)
    model = LSTMAutoencoderClassifier(
        seq_len=24, n_classes=2, hidden_size=32, latent_size=8, num_layers=1,
        input_scale=float(x.std()),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(300):
        batch = x[(step * 32) % 256 :][:32]
        recon, _ = model(batch)
        loss = ((recon - model.standardize(batch)) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    model.eval()
    with torch.no_grad():
        target = model.standardize(x)
        relative = ((model(x)[0] - target) ** 2).mean() / (target**2).mean()
    assert relative < 0.1  # a flat (mean) output scores about 0.6

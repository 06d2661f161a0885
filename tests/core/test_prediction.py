"""Class probabilities through the core's prediction loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlstm.core.training import class_probabilities
from tests.core.toy import ToyLSTM, toy_data


def test_probabilities_are_the_softmax_of_the_logits_in_input_order():
    torch.manual_seed(0)
    model = ToyLSTM(n_classes=3).eval()
    x = toy_data(n=40)[0].tensors[0]
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1).numpy()
    small_batches = class_probabilities(
        model, x.numpy().astype(np.float64), batch_size=7
    )
    assert small_batches.shape == (len(x), 3) and small_batches.dtype == np.float32
    np.testing.assert_allclose(small_batches, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(small_batches.sum(axis=1), 1.0, rtol=1e-5)
    from_dataset = class_probabilities(model, toy_data(n=40)[0], batch_size=64)
    np.testing.assert_allclose(from_dataset, expected, rtol=1e-5, atol=1e-6)
    doubled = class_probabilities(model, x.numpy(), forward=lambda m, b: 2 * m(b[0]))
    with torch.no_grad():
        np.testing.assert_allclose(
            doubled, torch.softmax(2 * model(x), dim=1).numpy(), rtol=1e-5, atol=1e-6
        )
    with pytest.raises(ValueError, match="at least one input"):
        class_probabilities(model, np.zeros((0, 10, 3)))

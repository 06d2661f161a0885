"""Resuming `fit` from its checkpoint is bit-exact, early stopping included."""

from __future__ import annotations

import pytest
import torch

from medlstm.core.training import TrainingResult, epoch_callback
from tests.core.toy import train

# Patience 2 on validation accuracy: the toy task reaches its best accuracy within a
# few epochs, so early stopping triggers well before 12.
EARLY = {"monitor": "val_accuracy", "monitor_mode": "max", "early_stopping_patience": 2}


class _Stop(Exception):
    pass


def _stop_after(last_epoch: int):
    def callback(epoch: int, record: dict[str, float]) -> None:
        if epoch >= last_epoch:
            raise _Stop

    return callback


def _interrupted(checkpoint: str, epochs: int, after: int, **overrides) -> None:
    """A training stopped after epoch ``after``, its checkpoint left behind."""
    with epoch_callback(_stop_after(after)), pytest.raises(_Stop):
        train(checkpoint, epochs, **overrides)


def _same_run(a: TrainingResult, b: TrainingResult) -> None:
    def timeless(history):
        return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in history]

    assert timeless(a.history) == timeless(b.history)
    assert (a.best_epoch, a.stopped_early) == (b.best_epoch, b.stopped_early)
    state_a, state_b = a.model.state_dict(), b.model.state_dict()
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), name


def test_resumed_training_is_bit_identical_to_an_uninterrupted_one(tmp_path):
    checkpoint = str(tmp_path / "toy.pt")
    _interrupted(checkpoint, 4, after=2)
    resumed = train(checkpoint, 4)
    assert resumed.resumed_from_epoch == 2
    _same_run(resumed, train(None, 4))


def test_patience_spent_on_the_last_epoch_is_no_early_stop():
    stopped = train(None, 12, **EARLY)
    assert stopped.stopped_early
    last = len(stopped.history)
    assert last < 12
    # The same training with exactly as many epochs ends with its patience spent,
    # but it ran every epoch it was given.
    full = train(None, last, **EARLY)
    assert not full.stopped_early
    assert full.history[-1]["epoch"] == last
    assert full.best_epoch == stopped.best_epoch


def test_checkpoint_of_a_run_out_of_patience_resumes_to_its_early_stop(tmp_path):
    uninterrupted = train(None, 12, **EARLY)
    last = len(uninterrupted.history)
    checkpoint = str(tmp_path / "toy.pt")
    _interrupted(checkpoint, 12, after=last, **EARLY)

    epochs_trained = []
    with epoch_callback(lambda epoch, record: epochs_trained.append(epoch)):
        resumed = train(checkpoint, 12, **EARLY)
    assert epochs_trained == []
    assert resumed.resumed_from_epoch == last
    _same_run(resumed, uninterrupted)
    assert (tmp_path / "toy.best.pt").exists()

"""One helper limits torch and the BLAS behind NumPy, and gives the caller its settings back."""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_info

from medlstm.core.threads import thread_limits
from medlstm.core.training import TrainingParams


def _blas_threads() -> set[int]:
    return {
        pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"
    }


def test_thread_limits_set_torch_and_blas_and_restore_both_after_an_error():
    torch_before, blas_before = torch.get_num_threads(), _blas_threads()
    assert blas_before, "NumPy's BLAS is not visible to threadpoolctl"
    with pytest.raises(RuntimeError, match="inside"), thread_limits(1):
        assert torch.get_num_threads() == 1
        assert _blas_threads() == {1}
        raise RuntimeError("inside")
    assert torch.get_num_threads() == torch_before
    assert _blas_threads() == blas_before


def test_no_limit_leaves_both_alone_and_a_bad_count_is_refused():
    torch_before, blas_before = torch.get_num_threads(), _blas_threads()
    with thread_limits(None):
        assert (torch.get_num_threads(), _blas_threads()) == (torch_before, blas_before)
    with pytest.raises(ValueError, match=">= 1, got 0"), thread_limits(0):
        pass
    with pytest.raises(ValueError, match=r"x\.num_threads' must be > 0 or null"):
        TrainingParams.from_dict({"num_threads": 0}, where="x")

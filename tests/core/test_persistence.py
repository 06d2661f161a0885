"""Models saved by the project reload as ready modules without unpickling code."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medlstm.core.persistence import build_model, load_model, save_model
from tests.core.toy import ToyLSTM

ROOT = Path(__file__).resolve().parents[2]


def test_round_trip_in_a_fresh_process(tmp_path):
    torch.manual_seed(0)
    model = ToyLSTM(n_features=3, hidden=5, n_classes=4).eval()
    path = tmp_path / "toy.pt"
    save_model(model, path)
    x = torch.randn(2, 7, 3)
    expected = model(x).detach()
    torch.save(x, tmp_path / "x.pt")
    code = (
        "import sys, torch; import tests.core.toy; "
        "from medlstm.core.persistence import load_model; "
        f"m = load_model({str(path)!r}); x = torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True); "
        f"torch.save(m(x).detach(), {str(tmp_path / 'y.pt')!r}); print(type(m).__name__, m.config)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "ToyLSTM {'n_features': 3, 'hidden': 5, 'n_classes': 4}" in out.stdout
    torch.testing.assert_close(
        torch.load(tmp_path / "y.pt", weights_only=True), expected
    )


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    with path.open("wb") as handle:
        pickle.dump({"architecture": Evil()}, handle)
    with pytest.raises(ValueError, match="is not a medlstm model file"):
        load_model(path)


def test_unknown_architecture_and_missing_file(tmp_path):
    with pytest.raises(KeyError, match="no_such_net"):
        build_model("no_such_net", {})
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_model(tmp_path / "nothing.pt")
    with pytest.raises(TypeError, match="not registered"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "linear.pt")


def test_pip_requirements_pin_the_installed_versions_once_each():
    from importlib.metadata import version

    from medlstm.core.persistence import PYFUNC_BASE_REQUIREMENTS, pip_requirements

    pins = pip_requirements("pillow", "torch")
    names = [pin.split("==")[0] for pin in pins]
    assert names == [*PYFUNC_BASE_REQUIREMENTS, "pillow"]  # torch listed once
    assert f"torch=={version('torch')}" in pins
    assert f"pillow=={version('pillow')}" in pins


def test_models_register_themselves_and_the_core_names_none(tmp_path):
    from medlstm.core import persistence
    from medlstm.models.lstm_twin import TorchTwinLSTM

    assert "medlstm.models." not in Path(persistence.__file__).read_text()

    torch.manual_seed(0)
    path = tmp_path / "twin.pt"
    save_model(TorchTwinLSTM(input_size=2, hidden_size=3, output_size=1), path)

    def fresh(code: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )

    # Importing the package registers every architecture, with no list to keep.
    listed = fresh(
        "import medlstm.models; from medlstm.core.persistence import _ARCHITECTURES; "
        "print(' '.join(sorted(_ARCHITECTURES)))"
    )
    assert listed.stdout.split() == [
        "brain_bilstm",
        "cnn1d",
        "cnn3d_lstm",
        "ecg_lstm_autoencoder",
        "ecg_lstm_autoencoder_ensemble",
        "ecg_rhythm_bilstm",
        "lstm_forecaster",
        "lstm_scratch_twin",
    ], listed.stderr
    # The catalog's dataset registers every model; the bare core knows none.
    by_dataset = fresh(
        "from medlstm.datasets.torch_model import TorchModelDataset; "
        f"print(type(TorchModelDataset(filepath={str(path)!r}).load()).__name__)"
    )
    assert by_dataset.stdout.strip() == "TorchTwinLSTM", by_dataset.stderr
    bare = fresh(
        f"from medlstm.core.persistence import load_model; load_model({str(path)!r})"
    )
    assert bare.returncode != 0
    assert "Unknown architecture 'lstm_scratch_twin'" in bare.stderr
    assert "import medlstm.models" in bare.stderr

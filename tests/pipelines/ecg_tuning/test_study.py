"""Search spaces, storages and pruners of the ECG studies, and a study on synthetic
beats that shows the objective never reads the test beats."""

from __future__ import annotations

import copy

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from medlstm.core.params import nest_dotted
from medlstm.pipelines.ecg_tuning.reporting import best_params_file
from medlstm.pipelines.ecg_tuning.search_space import parse_space, with_values
from medlstm.pipelines.ecg_tuning.storage import (
    DEFAULT_STORAGE,
    shown_url,
    storage_url,
)
from medlstm.pipelines.ecg_tuning.study import check_tuning, make_pruner, tune_cnn
from tests.pipelines.ecg_autoencoder.conftest import PARAMS_FILE

TREE = {"alpha": 1.0, "ecg_autoencoder": {"cnn": {"training": {"lr": 0.002}}}}


@pytest.fixture(scope="module")
def conf():
    return yaml.safe_load(PARAMS_FILE.read_text())


def test_shipped_search_spaces_name_real_parameters(conf):
    tuning = conf["ecg_autoencoder"]["tuning"]
    ae = {
        "alpha": conf["alpha"],
        "beta": conf["beta"],
        "ecg_autoencoder": {"autoencoder": conf["ecg_autoencoder"]["autoencoder"]},
    }
    dims = parse_space(tuning["search_space"]["autoencoder"], "s.autoencoder", ae)
    assert {d.param for d in dims} >= {"alpha", "beta"}
    cnn = {"ecg_autoencoder": {"cnn": conf["ecg_autoencoder"]["cnn"]}}
    assert parse_space(tuning["search_space"]["cnn"], "s.cnn", cnn)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"param": "ecg_autoencoder.cnn.training.lrr", "low": 0.1, "high": 1},
            "not a parameter",
        ),
        ({"param": "ecg_autoencoder.cnn", "choices": [1]}, "not a parameter"),
        ({"param": "alpha", "low": 2.0, "high": 1.0}, "low < high"),
        ({"param": "alpha", "low": 0.0, "high": 1.0, "log": True}, "low > 0"),
        ({"param": "alpha", "choices": []}, "non-empty list"),
        ({"param": "alpha", "choices": [1], "low": 0}, "not both"),
        (
            {"param": "alpha", "lo": 0, "high": 1},
            r"Unknown parameter\(s\) t\.space\[0\]\.lo; known: choices, high, ",
        ),
        ("alpha", r"'t\.space\[0\]' must be a mapping.*str 'alpha'"),
    ],
)
def test_a_bad_dimension_is_named(entry, message):
    with pytest.raises(ValueError, match=message) as error:
        parse_space([entry], "t.space", TREE)
    assert "t.space[0]" in str(error.value)


def test_values_land_in_a_copy_and_nest_as_a_parameters_file():
    values = {"alpha": 2.0, "ecg_autoencoder.cnn.training.lr": 0.01}
    changed = with_values(TREE, values)
    assert changed["ecg_autoencoder"]["cnn"]["training"]["lr"] == 0.01
    assert TREE["ecg_autoencoder"]["cnn"]["training"]["lr"] == 0.002
    assert nest_dotted(values) == {
        "alpha": 2.0,
        "ecg_autoencoder": {"cnn": {"training": {"lr": 0.01}}},
    }


def test_storage_parameter_then_environment_then_the_project_file(monkeypatch):
    monkeypatch.delenv("MEDLSTM_OPTUNA_STORAGE", raising=False)
    assert storage_url({"storage": None}) == DEFAULT_STORAGE
    monkeypatch.setenv("MEDLSTM_OPTUNA_STORAGE", "postgresql://u:secret@db/optuna")
    assert storage_url({"storage": None}) == "postgresql://u:secret@db/optuna"
    assert storage_url({"storage": "sqlite:///x.db"}) == "sqlite:///x.db"
    assert "secret" not in shown_url("postgresql://u:secret@db/optuna")


def test_pruner_takes_the_arguments_under_its_type():
    pruner = make_pruner({"type": "median", "median": {"n_startup_trials": 3}})
    assert isinstance(pruner, optuna.pruners.MedianPruner)
    assert isinstance(make_pruner({"type": "none"}), optuna.pruners.NopPruner)
    with pytest.raises(ValueError, match="pruner.type' is 'medain'"):
        make_pruner({"type": "medain"})
    with pytest.raises(ValueError, match="pruner.threshold"):
        make_pruner({"type": "threshold", "threshold": {"lowr": 1}})


def test_the_tuning_block_refuses_unknown_keys_and_non_mappings():
    with pytest.raises(
        ValueError,
        match=r"Unknown parameter\(s\) ecg_autoencoder\.tuning\.n_trails; known: ",
    ):
        check_tuning({"n_trials": 2, "n_trails": 3})
    with pytest.raises(
        ValueError, match=r"'ecg_autoencoder\.tuning' must be a mapping"
    ):
        check_tuning([2])


def test_best_params_file_without_a_completed_trial_says_so():
    best = {
        "study": "s.cnn",
        "states": {"PRUNED": 2},
        "best_trial": None,
        "best_value": None,
        "best_params": {},
        "metric": "validation macro_f1",
    }
    text = best_params_file(best)
    assert "no completed trial (2 pruned)" in text
    assert yaml.safe_load(text) == {}


def _synthetic_split(seed: int = 0):
    """Beats of three classes whose window shape gives the class; test windows NaN."""
    rng = np.random.default_rng(seed)
    rows, windows = [], []
    for split, n in (("train", 90), ("val", 45), ("test", 45)):
        for i in range(n):
            label = "NSV"[i % 3]
            bump = np.exp(-0.5 * ((np.arange(288) - 108) / (4 + 8 * (i % 3))) ** 2)
            windows.append(
                np.nan * bump
                if split == "test"
                else bump + 0.05 * rng.standard_normal(288)
            )
            rows.append(
                {
                    "record": f"r{split}",
                    "sample": 1000 * (i + 1),
                    "split": split,
                    "label": label,
                    "rr_pre_norm": 1.0,
                }
            )
    beats = pd.DataFrame(rows)
    arrays = {
        "windows": np.asarray(windows, dtype=np.float32),
        "record": beats["record"].to_numpy(dtype=str),
        "sample": beats["sample"].to_numpy(dtype=np.int64),
    }
    return beats, arrays


def test_study_on_validation_beats_only(conf, tmp_path, monkeypatch):
    monkeypatch.delenv("MEDLSTM_OPTUNA_STORAGE", raising=False)
    beats, windows = _synthetic_split()
    ecg = copy.deepcopy(conf["ecg_autoencoder"])
    ecg["cnn"]["training"]["epochs"] = 2
    features = {**ecg["features"], "rr_columns": ["rr_pre_norm"]}
    tuning = {
        **ecg["tuning"],
        "storage": f"sqlite:///{tmp_path / 'optuna.db'}",
        "n_trials": 2,
    }
    labels = {"N": ["N"], "S": ["A"], "V": ["V"]}
    trials, best = tune_cnn(beats, windows, ecg["cnn"], features, labels, tuning)
    # NaN test windows would make every score NaN had a trial read them.
    assert list(trials["state"]) == ["COMPLETE", "COMPLETE"]
    assert trials["value"].notna().all() and 0 <= best["best_value"] <= 1
    assert best["best_value"] == trials["value"].max()
    assert set(best["best_params"]) == {
        d["param"] for d in ecg["tuning"]["search_space"]["cnn"]
    }
    # A second run continues the same study: it already holds n_trials.
    again, _ = tune_cnn(beats, windows, ecg["cnn"], features, labels, tuning)
    assert len(again) == 2


def test_objective_averages_the_databases_without_pooling_beats():
    from medlstm.pipelines.ecg_tuning.study import objective_value

    metrics = {
        "macro_f1": 0.6,
        "by_database": {"mitdb": {"macro_f1": 0.6}, "svdb": {"macro_f1": 0.8}},
    }
    assert objective_value(metrics, "macro_f1") == pytest.approx(0.7)
    assert objective_value({"accuracy": 0.9}, "accuracy") == 0.9


def test_sqlite_and_journal_storages_hold_a_study(tmp_path, monkeypatch):
    from medlstm.pipelines.ecg_tuning.storage import open_storage

    monkeypatch.chdir(tmp_path)
    for url in (
        "sqlite:///nested/optuna.db",
        f"journal:///{tmp_path}/absolute/optuna.log",
    ):
        storage = open_storage(url, heartbeat_s=None)
        study = optuna.create_study(study_name="s", storage=storage)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        again = optuna.load_study(study_name="s", storage=open_storage(url, None))
        assert len(again.trials) == 2
    assert (tmp_path / "nested" / "optuna.db").exists()
    assert (tmp_path / "absolute" / "optuna.log").exists()
    with pytest.raises(ValueError, match="journal:///relative"):
        open_storage("journal://x.log", None)


def test_workers_opening_a_new_sqlite_storage_together_all_get_it(tmp_path):
    import subprocess
    import sys

    from medlstm.pipelines.ecg_tuning import storage

    # The workers load the storage module (stdlib and optuna only) from its file, not
    # through the package, whose pipeline imports torch and Kedro: four processes get
    # to the new storage within a moment rather than after seconds of imports each.
    code = (
        "import importlib.util, sys, optuna\n"
        "spec = importlib.util.spec_from_file_location('storage', sys.argv[2])\n"
        "storage = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(storage)\n"
        "s = optuna.create_study(study_name='s', load_if_exists=True,\n"
        "    storage=storage.open_storage(sys.argv[1], heartbeat_s=60))\n"
        "s.optimize(lambda t: t.suggest_float('x', 0, 1), n_trials=1)\n"
    )
    url = f"sqlite:///{tmp_path / 'new.db'}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url, storage.__file__],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 4

import re
from pathlib import Path

import pytest

from medlstm.core.parallel import ParallelParams
from medlstm.core.params import (
    check_complete_block,
    check_known_keys,
    nest_dotted,
    parsed,
    project_config,
)
from medlstm.core.training import TrainingParams

KNOWN = ("lr", "epochs", "batch_size")


def test_a_block_of_known_keys_passes():
    assert check_known_keys({"lr": 0.1, "epochs": 2}, KNOWN, "m.training") is None
    assert check_known_keys({}, KNOWN, "m.training") is None


def test_every_unknown_key_is_named_by_its_path_sorted_with_the_known_ones():
    block = {"lr": 0.1, "zeta": 1, "alpha": 2, "epochs": 3}
    with pytest.raises(ValueError) as error:
        check_known_keys(block, KNOWN, "m.training")
    assert str(error.value) == (
        "Unknown parameter(s) m.training.alpha, m.training.zeta; "
        "known: batch_size, epochs, lr."
    )


def test_keys_yaml_reads_as_numbers_are_named_too():
    with pytest.raises(ValueError, match=r"m\.1, m\.b; known: a\.$"):
        check_known_keys({1: "x", "b": 2, "a": 3}, ["a"], "m")


@pytest.mark.parametrize("block", [["lr", 0.1], "lr: 0.1", 3, None])
def test_a_block_that_is_not_a_mapping_is_refused_by_name(block):
    kind = type(block).__name__
    with pytest.raises(ValueError, match=rf"'m\.training' must be a mapping.*{kind}"):
        check_known_keys(block, KNOWN, "m.training")


def test_a_hint_is_added_only_for_the_key_it_is_about():
    hints = {"precision": "now set in 'm.training.precision'"}
    with pytest.raises(ValueError) as error:
        check_known_keys({"precision": "bf16", "gama": 2}, ["gamma"], "m.loss", hints)
    assert str(error.value) == (
        "Unknown parameter(s) m.loss.gama, m.loss.precision "
        "(now set in 'm.training.precision'); known: gamma."
    )
    with pytest.raises(ValueError) as error:
        check_known_keys({"gama": 2}, ["gamma"], "m.loss", hints)
    assert "now set" not in str(error.value)


def test_a_string_given_as_the_known_keys_is_a_programming_error():
    with pytest.raises(TypeError, match=re.escape("'lr'")):
        check_known_keys({"lr": 1}, "lr", "m")


def test_dotted_paths_nest_into_blocks_and_blocks_pass_through():
    flat = {"p.model.hidden": 8, "p.training.epochs": 2, "seed": 1}
    assert nest_dotted(flat) == {
        "p": {"model": {"hidden": 8}, "training": {"epochs": 2}},
        "seed": 1,
    }
    # A block already nested is one key whose value is kept whole, so nesting twice
    # changes nothing: a caller may pass either form.
    assert nest_dotted(nest_dotted(flat)) == nest_dotted(flat)


def test_project_config_merges_an_environment_over_base():
    from pathlib import Path

    from medlstm.core.params import project_config

    root = Path(__file__).parents[2]
    base, base_catalog = project_config(root)
    full, full_catalog = project_config(root, "full")
    assert base["ecg_autoencoder"]["split"]["scheme"] == "inter_patient_svdb"
    assert full["ecg_autoencoder"]["split"]["scheme"] == "inter_patient"
    # Keys the environment does not name keep their base values.
    assert (
        full["ecg_autoencoder"]["rhythm"]["sequence_length"]
        == (base["ecg_autoencoder"]["rhythm"]["sequence_length"])
    )
    assert full_catalog["ecg_raw_records"]["path"] == "../shared/data/mitdb"
    assert (
        base_catalog["ecg_raw_records"]["path"]
        != full_catalog["ecg_raw_records"]["path"]
    )


def test_a_block_lacking_keys_is_refused_naming_them_and_the_file_that_has_them():
    check_complete_block({"lr": 1, "epochs": 2, "batch_size": 3}, KNOWN, "x.training")
    with pytest.raises(ValueError) as error:
        check_complete_block({"lr": 1}, KNOWN, "lstm_forecast.training")
    assert str(error.value) == (
        "Parameter block 'lstm_forecast.training' lacks ['epochs', 'batch_size']; "
        "every key of it is in conf/base/parameters_lstm_forecast.yml."
    )


def test_parsed_hands_back_a_built_block_itself():
    built = TrainingParams.from_dict({"epochs": 3}, where="m.training")
    assert parsed(TrainingParams, built, "m.training") is built


def test_parsed_builds_a_mapping_naming_a_bad_key_by_its_path():
    assert parsed(TrainingParams, {"epochs": 3}, "m.training").epochs == 3
    with pytest.raises(ValueError, match=r"'m\.training\.lr' must be > 0"):
        parsed(TrainingParams, {"lr": -1.0}, "m.training")


def test_parsed_gives_the_path_only_to_a_reader_that_takes_one():
    from medlstm.pipelines.ecg_autoencoder.detection import DetectionParams

    parameters, _ = project_config(Path(__file__).resolve().parents[2])
    block = parameters["ecg_autoencoder"]["detection"]
    assert parsed(DetectionParams, block, "ignored") == DetectionParams.from_dict(block)
    with pytest.raises(ValueError, match=r"'ecg_autoencoder\.detection\.min_rr_s'"):
        parsed(DetectionParams, {**block, "min_rr_s": -0.1})
    with pytest.raises(ValueError, match=r"'x\.parallel\.backend'"):
        parsed(
            ParallelParams,
            {"backend": "?", "n_workers": 1, "scheduler_address": None},
            "x.parallel",
        )

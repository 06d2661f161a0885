"""Noisy copies of the training records, so that the rhythm model sees noise in training.

A model trained on clean beats alone calls electrode motion ventricular: on EC57's
noise stress records the beats bent by noise, and the noise spikes the detector
takes for beats, look like nothing it has seen. Each MIT-BIH training record gets one
copy with noise of the MIT-BIH Noise Stress Test Database added the way EC57 adds it
(`noise_stress.noise_stress_record`: clean for 5 minutes, then 2-minute stretches
with and without noise), at an SNR drawn per record. The copy's beats are those the
QRS detector finds, as at inference; each takes the label of the reference beat it
matches, and a detection that matches none (noise taken for a beat) the label
``false_detection_label``.

The noise stress benchmark gives MLII the noise record's first channel from its
start; the copies take the second channel, half a record later
(`training_noise`), so that no test stretch holds the noise samples training saw.

Off in conf/base: on validation the copies cut the false V calls under noise about
3x but cost clean V beats (docs/experiments/2026-12-noise_stress.md).
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from medlstm.core.params import check_complete_block, check_known_keys
from medlstm.datasets.wfdb_records import WfdbRecord
from medlstm.pipelines.ecg_autoencoder.detection import (
    UNMATCHED,
    segment_detected_record,
)
from medlstm.pipelines.ecg_autoencoder.ingestion import window_arrays
from medlstm.pipelines.ecg_autoencoder.noise_stress import (
    LEARNING_S,
    noise_stress_record,
)
from medlstm.pipelines.ecg_autoencoder.rhythm import TRAINING_SPLITS, train_rhythm
from medlstm.pipelines.ecg_autoencoder.segmentation import SegmentationParams

logger = logging.getLogger(__name__)

WHERE = "ecg_autoencoder.rhythm.noisy_copies"
DATABASE = "mitdb"  # the noise records' rate (360 Hz) and lead pairing are MIT-BIH's


@dataclass(frozen=True)
class NoisyCopyParams:
    """``ecg_autoencoder.rhythm.noisy_copies``; every key from conf/base."""

    enabled: bool
    sources: tuple[str, ...]
    snr_db: tuple[float, ...]
    false_detection_label: str
    seed: int

    @classmethod
    def from_dict(cls, block: Mapping[str, Any], classes: list[str]) -> NoisyCopyParams:
        """Checked parameters; errors name the key. ``classes``: the label classes
        (``false_detection_label`` must be one of them)."""
        keys = [f.name for f in dataclasses.fields(cls)]
        check_known_keys(block, keys, WHERE)
        check_complete_block(block, keys, WHERE)
        if not isinstance(block["enabled"], bool):
            raise ValueError(f"Parameter '{WHERE}.enabled' must be true or false.")
        sources = tuple(str(s) for s in block["sources"] or ())
        snrs = tuple(float(s) for s in block["snr_db"] or ())
        if block["enabled"] and not (sources and snrs):
            raise ValueError(
                f"Parameters '{WHERE}.sources' and '{WHERE}.snr_db' must each name at "
                "least one value when noisy copies are enabled."
            )
        label = str(block["false_detection_label"])
        if label not in classes:
            raise ValueError(
                f"Parameter '{WHERE}.false_detection_label' ({label!r}) must be one of "
                f"the classes {classes} (ecg_autoencoder.ingestion.label_mapping)."
            )
        return cls(block["enabled"], sources, snrs, label, int(block["seed"]))


def training_noise(noise: WfdbRecord) -> WfdbRecord:
    """The noise as the copies use it: channels in reverse order (MLII, a record's
    first lead, gets the second channel) and rolled by half its length."""
    signals = {
        lead: np.roll(x, len(x) // 2) for lead, x in reversed(noise.signals.items())
    }
    return dataclasses.replace(noise, signals=signals)


def noisy_copy(
    record: WfdbRecord,
    noise: WfdbRecord,
    source: str,
    snr_db: float,
    p: SegmentationParams,
    detection: dict[str, Any],
    false_label: str,
) -> tuple[pd.DataFrame, np.ndarray]:
    """One noisy copy of ``record`` with ``noise`` (as `training_noise` makes it): its
    detected beats (record ``<id>~<source><snr>``) and windows; detections matching no
    reference beat labelled ``false_label``."""
    built = noise_stress_record(record, noise, snr_db)
    name = f"{record.record_id}~{source}{snr_db:g}"
    noisy = dataclasses.replace(built.record, record_id=name)
    with warnings.catch_warnings():  # a noisy stretch may warn; the copy is counted
        warnings.simplefilter("ignore")
        beats, windows, _ = segment_detected_record(
            noisy, p, detection, keep_unmatched=True
        )
    beats.loc[beats["label"] == UNMATCHED, "label"] = false_label
    return beats, windows


def noisy_training_copies(
    beats: pd.DataFrame,
    records: Mapping[str, WfdbRecord],
    noise_records: Mapping[str, WfdbRecord],
    ingestion: dict[str, Any],
    databases: dict[str, dict[str, Any]],
    detection: dict[str, Any],
    params: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """One noisy copy of every MIT-BIH training record of the split ``beats`` when
    ``params.enabled``; none (an empty table) otherwise.

    Record ``i`` (in id order) takes noise source ``sources[i % len(sources)]`` and an
    SNR drawn from ``snr_db`` (seeded by ``params.seed``). Validation and test
    records are never copied; nor is a record no longer than EC57's clean first
    5 minutes (it would get no noise), with a warning naming it.

    Args:
        beats: The split beat table (``record``, ``database``, ``split``...).
        records: MIT-BIH ``{record_id: WfdbRecord}`` (a lazy mapping is read a
            record at a time).
        noise_records: The noise records by name (``em``, ``ma``, ``bw``).
        ingestion: ``ecg_autoencoder.ingestion``.
        databases: ``ecg_autoencoder.databases`` (MIT-BIH's leads and prefix).
        detection: ``ecg_autoencoder.detection``.
        params: ``ecg_autoencoder.rhythm.noisy_copies``.

    Returns:
        The copies' beat table (the columns of ``beats``, ``split`` ``train``) and
        their windows (``windows``, ``record``, ``sample``), row ``i`` belonging to
        beat ``i``.

    Raises:
        ValueError: naming the parameter, for a noise source that is not among
            ``noise_records``.
    """
    p = NoisyCopyParams.from_dict(params, list(ingestion["label_mapping"]))
    cfg = databases[DATABASE]
    seg = SegmentationParams.for_database(ingestion, cfg)
    frames, arrays = [beats.iloc[:0]], [np.zeros((0, seg.window), np.float32)]
    if p.enabled:
        missing = sorted(set(p.sources) - set(noise_records))
        if missing:
            raise ValueError(
                f"Parameter '{WHERE}.sources' names {missing}, which the catalog "
                f"entry ecg_noise_records does not hold (it has {sorted(noise_records)})."
            )
        noises = {name: training_noise(noise_records[name]) for name in p.sources}
        prefix = str(cfg.get("record_prefix") or "")
        training = beats["split"].isin(TRAINING_SPLITS) & (
            beats["database"] == DATABASE
        )
        ids = sorted(beats.loc[training, "record"].unique())
        rng = np.random.default_rng(p.seed)
        too_short = []
        for i, rid in enumerate(ids):
            source = p.sources[i % len(p.sources)]
            snr = float(rng.choice(p.snr_db))
            record = records[rid.removeprefix(prefix)]
            record = dataclasses.replace(record, record_id=rid)
            if record.n_samples / record.fs <= LEARNING_S:
                too_short.append(rid)
                continue
            copy, copy_windows = noisy_copy(
                record,
                noises[source],
                source,
                snr,
                seg,
                detection,
                p.false_detection_label,
            )
            frames.append(copy.assign(database=DATABASE, split="train")[beats.columns])
            arrays.append(copy_windows.astype(np.float32, copy=False))
        if too_short:
            logger.warning(
                "No noisy copy of %d training record(s) %s: they last no longer than "
                "the clean first %g s of EC57's protocol.",
                len(too_short), too_short[:5], LEARNING_S,
            )  # fmt: skip
        logger.info(
            "Noisy copies of %d training records: %d beats.",
            len(frames) - 1, sum(len(f) for f in frames[1:]),
        )  # fmt: skip
    out = pd.concat(frames, ignore_index=True)
    return out, window_arrays(out, np.concatenate(arrays))


def train_rhythm_with_copies(
    beats: pd.DataFrame,
    windows: dict[str, Any],
    copy_beats: pd.DataFrame,
    copy_windows: dict[str, np.ndarray],
    params: dict[str, Any],
    features: dict[str, Any],
    label_mapping: dict[str, list[str]],
) -> tuple[nn.Module, list[dict[str, float]]]:
    """`rhythm.train_rhythm` on the split's beats and the noisy copies
    (`noisy_training_copies`; none when they are off) appended as training records.
    The windows are read into memory, as the rhythm model reads them."""
    if len(copy_beats):
        beats = pd.concat([beats, copy_beats[beats.columns]], ignore_index=True)
        windows = window_arrays(
            beats,
            np.concatenate([np.asarray(windows["windows"]), copy_windows["windows"]]),
        )
    return train_rhythm(beats, windows, params, features, label_mapping)

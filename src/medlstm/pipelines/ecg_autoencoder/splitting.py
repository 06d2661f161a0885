"""Train / validation / test splits of the beat table, by record unless told otherwise.

- ``inter_patient`` (default): de Chazal et al. (2004), DS1 for training and DS2
  for testing; validation is whole DS1 records, never DS2. With the MIT-BIH
  Supraventricular Arrhythmia Database (SVDB) in the beat table, its fixed
  validation part joins validation and its external test part joins the test set;
  its training part is not used.
- ``inter_patient_svdb``: as ``inter_patient``, with SVDB's training part added to
  training.
- ``curated_test``: a list of test records, the rest for training and validation.
- ``intra_patient``: a stratified random split of beats. The same patients are in
  training and test, so its results are optimistic; every report says so.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from medlstm.core.params import check_known_keys

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
EXCLUDED = "excluded"
UNUSED = "train_unused"
PATIENT_WISE = ("inter_patient", "inter_patient_svdb", "curated_test")
SCHEMES = ("inter_patient", "inter_patient_svdb", "curated_test", "intra_patient")
SVDB_PARTS = ("train", "val", "test")


def check_records_disjoint(beats: pd.DataFrame) -> None:
    """Raise if any record has beats in more than one of train / val / test."""
    used = beats[beats["split"].isin(SPLITS)]
    parts = used.groupby("record")["split"].nunique()
    leaked = sorted(parts[parts > 1].index)
    if leaked:
        where = {
            r: sorted(used.loc[used["record"] == r, "split"].unique()) for r in leaked
        }
        raise ValueError(
            f"Patient-wise split violated: records in more than one part: {where}."
        )


def _records(values: list[Any] | None) -> list[str]:
    return sorted(str(v) for v in (values or []))


def _pick_validation(
    pool: list[str], params: dict[str, Any], seed: int, scheme: str
) -> list[str]:
    """Validation records: the configured list (checked against the pool) or a
    seeded random ``fraction`` of the pool."""
    val = params.get("records")
    if val is not None:
        val = _records(val)
        outside = sorted(set(val) - set(pool))
        if outside:
            raise ValueError(
                f"Parameter 'ecg_autoencoder.split.validation.records' holds {outside}, "
                f"which are not training records of the {scheme} split ({pool})."
            )
        return val
    n = max(1, round(float(params.get("fraction", 0.2)) * len(pool)))
    if n >= len(pool):
        raise ValueError(
            f"Cannot hold out {n} validation records from {len(pool)} training records."
        )
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(pool, size=n, replace=False).tolist())


def _by_record(
    beats: pd.DataFrame,
    train_pool: list[str],
    test: list[str],
    params: dict[str, Any],
    scheme: str,
    svdb: dict[str, list[str]] | None = None,
) -> tuple[pd.Series, dict[str, Any]]:
    """Whole records to train / val / test; ``svdb`` parts (already chosen by the
    scheme) add training, validation and test records that are never picked from."""
    svdb = svdb or {}
    present = set(beats["record"])
    listed = set(train_pool) | set(test) | {r for p in svdb.values() for r in p}
    missing = sorted(listed - present)
    if missing:
        logger.warning("Split %s: records %s are not in the data.", scheme, missing)
    train_pool = [r for r in train_pool if r in present]
    test = [r for r in test if r in present]
    overlap = sorted(set(train_pool) & set(test))
    if overlap:
        raise ValueError(
            f"Split {scheme}: records {overlap} are in both train and test."
        )
    val = _pick_validation(
        train_pool, params.get("validation", {}), int(params.get("seed", 42)), scheme
    )
    split = pd.Series(EXCLUDED, index=beats.index, dtype=object)
    for part, records in (
        ("train", train_pool + svdb.get("train", [])),
        ("val", val + svdb.get("val", [])),
        ("test", test + svdb.get("test", [])),
    ):
        split[beats["record"].isin(records)] = part
    return split, {"missing_records": missing}


def svdb_parts(params: dict[str, Any], scheme: str) -> dict[str, list[str]]:
    """The SVDB parts a scheme uses: its fixed ``split.svdb`` lists, checked to be
    disjoint; the training part only for ``inter_patient_svdb``."""
    cfg = params.get("svdb") or {}
    check_known_keys(cfg, SVDB_PARTS, "ecg_autoencoder.split.svdb")
    parts = {part: _records(cfg.get(part)) for part in SVDB_PARTS}
    for i, a in enumerate(SVDB_PARTS):
        for b in SVDB_PARTS[i + 1 :]:
            both = sorted(set(parts[a]) & set(parts[b]))
            if both:
                raise ValueError(
                    f"Parameter 'ecg_autoencoder.split.svdb': records {both} are in "
                    f"both {a} and {b}."
                )
    if scheme != "inter_patient_svdb":
        parts["train"] = []
    return parts


def _intra_patient(
    beats: pd.DataFrame, params: dict[str, Any]
) -> tuple[pd.Series, dict[str, Any]]:
    """Per-class random split of beats (stratified; deterministic for a seed)."""
    cfg = params.get("intra_patient", {})
    fractions = {"val": float(cfg.get("val_fraction", 0.1))}
    fractions["test"] = float(cfg.get("test_fraction", 0.3))
    if not 0 < fractions["val"] + fractions["test"] < 1:
        raise ValueError(
            "intra_patient val_fraction + test_fraction must be in (0, 1)."
        )
    rng = np.random.default_rng(int(params.get("seed", 42)))
    split = pd.Series("train", index=beats.index, dtype=object)
    for _, rows in beats.groupby("label", sort=True):
        idx = rng.permutation(rows.index.to_numpy())
        n_test = round(fractions["test"] * len(idx))
        n_val = round(fractions["val"] * len(idx))
        split[idx[:n_test]] = "test"
        split[idx[n_test : n_test + n_val]] = "val"
    return split, {}


def cap_training_beats(
    split: pd.Series, labels: pd.Series, cap: int | None, seed: int
) -> pd.Series:
    """Mark training beats beyond ``cap`` per class as ``train_unused`` (seeded).

    Majority-class undersampling of the training set only: it shortens epochs and
    rebalances classes; validation and test keep every beat.
    """
    if cap is None:
        return split
    if cap < 1:
        raise ValueError(f"'max_train_beats_per_class' must be >= 1, got {cap}.")
    rng = np.random.default_rng(seed)
    out = split.copy()
    train = split == "train"
    for _, index in labels[train].groupby(labels[train], sort=True).groups.items():
        if len(index) > cap:
            dropped = rng.choice(
                np.asarray(index), size=len(index) - cap, replace=False
            )
            out[dropped] = UNUSED
    return out


def assign_splits(
    beats: pd.DataFrame, params: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Add a ``split`` column (train / val / test / excluded) to the beat table.

    Args:
        beats: The beat table from ingestion.
        params: The ``ecg_autoencoder.split`` parameters.

    Returns:
        The beat table with ``split`` (train / val / test / excluded, and
        train_unused for training beats over ``max_train_beats_per_class``), and a
        report of the scheme, the records in each part and the beat counts per class.

    Raises:
        ValueError: On an unknown scheme, a record in two parts of a patient-wise
            split, or an empty part.
    """
    scheme = params.get("scheme", "inter_patient")
    if scheme not in SCHEMES:
        raise ValueError(
            f"Parameter 'ecg_autoencoder.split.scheme' is {scheme!r}; expected one "
            f"of {SCHEMES}."
        )
    mitdb_only = beats
    if "database" in beats.columns and scheme in ("curated_test", "intra_patient"):
        # These schemes are defined on MIT-BIH alone; other databases are excluded.
        mitdb_only = beats[beats["database"] == "mitdb"]
    if scheme in ("inter_patient", "inter_patient_svdb"):
        cfg = params["inter_patient"]
        split, extra = _by_record(
            beats,
            _records(cfg["train"]),
            _records(cfg["test"]),
            params,
            scheme,
            svdb_parts(params, scheme),
        )
    elif scheme == "curated_test":
        test = _records(params["curated_test"]["test_records"])
        excluded = set(_records(params["curated_test"].get("excluded_records")))
        pool = sorted(set(mitdb_only["record"]) - set(test) - excluded)
        split, extra = _by_record(beats, pool, test, params, scheme)
    else:
        split, extra = _intra_patient(mitdb_only, params)
        split = split.reindex(beats.index, fill_value=EXCLUDED)
    split = cap_training_beats(
        pd.Series(split.to_numpy(), index=beats.index),
        beats["label"],
        params.get("max_train_beats_per_class"),
        int(params.get("seed", 42)),
    )
    out = beats.assign(split=split.to_numpy())
    if scheme in PATIENT_WISE:
        check_records_disjoint(out)
    empty = [s for s in SPLITS if not (out["split"] == s).any()]
    if empty:
        raise ValueError(f"Split {scheme}: no beats in {empty}.")
    report = {
        "scheme": scheme,
        "patient_wise": scheme in PATIENT_WISE,
        "optimistic": scheme not in PATIENT_WISE,
        "records": {
            s: sorted(out.loc[out["split"] == s, "record"].unique().tolist())
            for s in (*SPLITS, EXCLUDED)
        },
        "beats": {
            s: out.loc[out["split"] == s, "label"].value_counts().sort_index().to_dict()
            for s in (*SPLITS, UNUSED, EXCLUDED)
        },
        **extra,
    }
    logger.info(
        "Split %s: %s beats in train / val / test.",
        scheme, [int((out["split"] == s).sum()) for s in SPLITS],
    )  # fmt: skip
    return out, report


def partition_by_burden(
    burden: pd.Series, shares: dict[str, int], seed: int
) -> dict[str, list[str]]:
    """Records dealt into parts, stratified by their burden of one class.

    Records are sorted by ``burden`` (then id), cut into consecutive blocks of
    ``sum(shares)`` records, and each block is shuffled (seeded) and dealt out: the
    first ``shares[part]`` records to the first part, and so on. So every part gets
    records from the whole range of burdens. A last, incomplete block is dealt in
    the same order.

    Args:
        burden: Record id -> burden (e.g. the fraction of S beats).
        shares: Part name -> records per block, e.g. ``{"train": 2, "val": 1,
            "test": 1}``.
        seed: Seed of the shuffles.

    Returns:
        Part name -> sorted record ids; the parts are disjoint and cover every record.
    """
    if not shares or min(shares.values()) < 1:
        raise ValueError(f"Every part needs a share >= 1, got {shares}.")
    order = sorted(burden.index.astype(str), key=lambda r: (float(burden[r]), r))
    block = sum(shares.values())
    deal = [part for part, n in shares.items() for _ in range(n)]
    rng = np.random.default_rng(seed)
    parts: dict[str, list[str]] = {part: [] for part in shares}
    for start in range(0, len(order), block):
        members = rng.permutation(order[start : start + block])
        for part, record in zip(deal, members, strict=False):
            parts[part].append(str(record))
    return {part: sorted(records) for part, records in parts.items()}

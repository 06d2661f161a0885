"""Derive the shipped MIT-BIH excerpts: the first minutes of every record.

The excerpt lets a fresh clone (and CI) run ``kedro run --pipeline=ecg_autoencoder``
without the full database. Records are cut, never altered: the digital samples,
lead names, gains, header comments and every annotation (symbols, rhythm notes)
before the cut are copied as they are, and the result is a valid WFDB record.
``--leads`` keeps only the named leads (the ones the pipeline reads), which halves
the size; a record with none of them keeps all its leads.

Usage::

    python -m medlstm.excerpts.mitdb --source ../shared/data/mitdb \\
        --dest data/01_raw/mitdb_excerpt --minutes 10
    python -m medlstm.excerpts.mitdb --database svdb --source ../shared/data/svdb \\
        --dest data/01_raw/svdb_excerpt --minutes 10 --leads ECG1
    python -m medlstm.excerpts.mitdb --database nstdb \\
        --source ../shared/data/nstdb_noise --dest data/01_raw/nstdb_noise_excerpt \\
        --minutes 10 --records em ma
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from pathlib import Path

import numpy as np
import wfdb

logger = logging.getLogger(__name__)

DATABASES = {
    "mitdb": {
        "title": "MIT-BIH Arrhythmia Database",
        "folder": "mitdb",
        "format": "format 212 at 360 Hz",
        "citation": """\
- Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia Database.
  IEEE Eng in Med and Biol 20(3):45-50 (May-June 2001). (PMID: 11446209)""",
        "url": "https://physionet.org/content/mitdb/1.0.0/",
    },
    "svdb": {
        "title": "MIT-BIH Supraventricular Arrhythmia Database",
        "folder": "svdb",
        "format": "format 212 at 128 Hz",
        "citation": """\
- Greenwald SD. Improved detection and classification of arrhythmias in
  noise-stressed electrocardiograms using multivariate analysis. PhD thesis,
  MIT Dept. of Electrical Engineering and Computer Science (1990).""",
        "url": "https://physionet.org/content/svdb/1.0.0/",
    },
    "nstdb": {
        "title": "MIT-BIH Noise Stress Test Database",
        "folder": "nstdb_noise",
        "format": "format 212 at 360 Hz",
        "citation": """\
- Moody GB, Muldrow WE, Mark RG. A noise stress test for arrhythmia detectors.
  Computers in Cardiology 11:381-384 (1984).""",
        "url": "https://physionet.org/content/nstdb/1.0.0/",
    },
}

ATTRIBUTION = """\
# {title} excerpt

The first {minutes:g} minute(s) of each of the {n_records} records of the
{title} 1.0.0 (PhysioNet), cut by `medlstm.excerpts.mitdb`
and otherwise unchanged: digital samples in {format}, header comments{annotations}.
Leads: {leads_kept}.

    python -m medlstm.excerpts.mitdb --database {database} \\
        --source ../shared/data/{folder} --dest data/01_raw/{folder}_excerpt \\
        --minutes {minutes:g}{records_option}{leads_option}

`SHA256SUMS.txt` lists the checksums of the files written.

## Licence and citation

The {title} is made available under the Open Data Commons Attribution License
v1.0 (ODC-By, https://opendatacommons.org/licenses/by/1-0/). This excerpt is a
derivative database under the same licence. When you use it, cite:

{citation}
- Goldberger AL, Amaral LAN, Glass L, Hausdorff JM, Ivanov PCh, Mark RG, Mietus JE,
  Moody GB, Peng C-K, Stanley HE. PhysioBank, PhysioToolkit, and PhysioNet: Components
  of a New Research Resource for Complex Physiologic Signals.
  Circulation 101(23):e215-e220 (2000).

Source: {url}
"""


ANNOTATIONS = """,
and all reference annotations before the cut (only annotator numbers, the NUM field,
outside 0-127, which the writer cannot store, are written as 0)"""


def cut_record(
    source_dir: Path,
    record_id: str,
    dest_dir: Path,
    n_samples: int,
    leads: list[str] | None = None,
) -> int:
    """Write the first ``n_samples`` of a record and its annotations to ``dest_dir``.

    Args:
        source_dir: Folder with the original ``.hea``/``.dat``/``.atr`` files.
        record_id: Record name, e.g. ``"100"``.
        dest_dir: Output folder (must exist).
        n_samples: Number of samples to keep (the whole record if it is shorter).
        leads: Lead names to keep, by header name; ``None`` keeps every lead. A
            record with none of them keeps every lead, so that it stays a record
            the pipeline can name and skip (MIT-BIH 102 and 104 have no MLII).

    Returns:
        The number of annotations kept (0 for a record without ``.atr``, such as
        the noise records).
    """
    name = str(source_dir / record_id)
    kept = None
    if leads:
        kept = [s for s in wfdb.rdheader(name).sig_name if s in leads] or None
    record = wfdb.rdrecord(name, physical=False, sampto=n_samples, channel_names=kept)
    record.wrsamp(write_dir=str(dest_dir))
    if not (source_dir / f"{record_id}.atr").is_file():
        return 0
    ann = wfdb.rdann(name, "atr", sampto=n_samples)
    # rdann's sampto is inclusive; an annotation must lie inside the cut signal.
    keep = np.flatnonzero(ann.sample < record.sig_len)
    for field in ("sample", "subtype", "chan", "num"):
        setattr(ann, field, getattr(ann, field)[keep])
    for field in ("symbol", "aux_note"):
        setattr(ann, field, [getattr(ann, field)[i] for i in keep])
    # wfdb writes annotator numbers 0-127 only; SVDB stores a few others (805: -42).
    # They number annotators, not beats: such a field is written as 0 and counted.
    out_of_range = (ann.num < 0) | (ann.num > 127)
    if out_of_range.any():
        logger.warning(
            "Record %s: %d annotator numbers (NUM) outside 0-127 written as 0.",
            record_id,
            int(out_of_range.sum()),
        )
        ann.num = np.where(out_of_range, 0, ann.num)
    ann.wrann(write_fs=False, write_dir=str(dest_dir))
    return len(keep)


def write_excerpt(
    source: Path,
    dest: Path,
    minutes: float,
    records: list[str] | None = None,
    database: str = "mitdb",
    leads: list[str] | None = None,
) -> list[str]:
    """Cut every record of ``source`` (or ``records``) to its first ``minutes``,
    keeping ``leads`` only (all leads when ``None``; see ``cut_record``).

    Also writes ``README.md`` (attribution and licence) and ``SHA256SUMS.txt``.

    Returns:
        The record ids written, sorted.
    """
    if minutes <= 0:
        raise ValueError(f"--minutes must be > 0, got {minutes}.")
    if database not in DATABASES:
        raise ValueError(
            f"--database must be one of {sorted(DATABASES)}, got {database!r}."
        )
    ids = sorted(records or (p.stem for p in source.glob("*.hea")))
    if not ids:
        raise FileNotFoundError(f"{source}: no WFDB headers (*.hea) found.")
    dest.mkdir(parents=True, exist_ok=True)
    for rid in ids:
        fs = wfdb.rdheader(str(source / rid)).fs
        n_kept = cut_record(source, rid, dest, round(minutes * 60 * fs), leads)
        logger.info("Record %s: %d annotations kept.", rid, n_kept)
    (dest / "README.md").write_text(
        ATTRIBUTION.format(
            minutes=minutes,
            n_records=len(ids),
            database=database,
            leads_kept=(
                f"{', '.join(leads)} only (a record without it keeps all its leads)"
                if leads
                else "all"
            ),
            records_option=f" --records {' '.join(records)}" if records else "",
            leads_option=f" --leads {' '.join(leads)}" if leads else "",
            annotations=ANNOTATIONS if any(dest.glob("*.atr")) else "",
            **DATABASES[database],
        ),
        encoding="utf-8",
    )
    sums = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}"
        for p in sorted(dest.iterdir())
        if p.suffix in {".hea", ".dat", ".atr"}
    ]
    (dest / "SHA256SUMS.txt").write_text("\n".join(sums) + "\n", encoding="utf-8")
    return ids


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="MIT-BIH folder")
    parser.add_argument("--dest", type=Path, required=True, help="output folder")
    parser.add_argument("--minutes", type=float, default=1.0, help="minutes to keep")
    parser.add_argument("--records", nargs="*", help="record ids (default: all)")
    parser.add_argument("--database", choices=sorted(DATABASES), default="mitdb")
    parser.add_argument(
        "--leads", nargs="*", help="lead names to keep (default: all leads)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ids = write_excerpt(
        args.source, args.dest, args.minutes, args.records, args.database, args.leads
    )
    logger.info("Wrote %d records to %s.", len(ids), args.dest)


if __name__ == "__main__":
    main()

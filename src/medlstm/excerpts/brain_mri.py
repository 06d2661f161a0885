"""Derive the shipped brain-tumour MRI excerpt: a few dozen small images per class.

The excerpt lets a fresh clone (and CI) run ``kedro run --pipeline=brain_tumor_bilstm``
without the full dataset. Images keep their folder layout, file name and colour mode
(L or RGB) and are downsized with Lanczos filtering, then stored as JPEG. For each
class a few Testing images that have an exact, mirrored or near-duplicate in Training
are taken together with that Training image, so the duplicate audit has real cases to
find; the rest are drawn at random (seeded).

Usage::

    python -m medlstm.excerpts.brain_mri --source ../shared/data/brain_tumor_mri \\
        --dest data/01_raw/brain_mri_excerpt --per-class 20
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medlstm.pipelines.brain_tumor_bilstm.audit import near_duplicate_pairs
from medlstm.pipelines.brain_tumor_bilstm.ingestion import SPLITS, preprocess_image

logger = logging.getLogger(__name__)

THRESHOLD = 0.98  # the pipeline's default audit.threshold

ATTRIBUTION = """\
# Brain Tumor MRI Dataset excerpt

{n_images} images ({per_class} per class and split) of the Brain Tumor MRI Dataset by
Masoud Nickparvar (Kaggle), downsized to {size}x{size} pixels (Lanczos) and stored as
JPEG (quality {quality}) by `medlstm.excerpts.brain_mri`, keeping folder layout, file
names and colour mode:

    python -m medlstm.excerpts.brain_mri --source ../shared/data/brain_tumor_mri \\
        --dest data/01_raw/brain_mri_excerpt --per-class {per_class} --size {size} \\
        --duplicates-per-class {duplicates} --seed {seed}

The dataset was compiled by its author from three earlier collections (figshare,
SARTAJ, Br35H). Its published Training/Testing split holds exact, mirrored and
near-duplicate copies across the two splits; the excerpt deliberately keeps these
cross-split pairs (Testing image ~ Training image, Pearson r of 32x32 thumbnails):

{pairs}

`SHA256SUMS.txt` lists the checksums of the files written.

## Licence

The Brain Tumor MRI Dataset is published under CC0 1.0 (public domain dedication) on
its Kaggle page, https://www.kaggle.com/datasets/masoudnickparvar/brain-tumor-mri-dataset.
This excerpt is released under CC0 1.0 as well.
"""


def list_images(source: Path) -> list[tuple[str, str, Path]]:
    """``(split, class folder, file)`` for every non-hidden file, sorted."""
    found = []
    for split in SPLITS:
        for folder in sorted(p for p in (source / split).iterdir() if p.is_dir()):
            if folder.name.startswith("."):
                continue
            found += [
                (split, folder.name, f)
                for f in sorted(folder.iterdir())
                if f.is_file() and not f.name.startswith(".")
            ]
    if not found:
        raise FileNotFoundError(
            f"No images under {source}/{{Training,Testing}}/<class>/."
        )
    return found


def _kind_of_copy(
    i: int, j: int, hashes: list[str], mirrored: set[tuple[int, int]]
) -> str:
    if hashes[i] == hashes[j]:
        return "exact"
    return "mirrored" if (min(i, j), max(i, j)) in mirrored else "near"


def _round_robin(pools: list[list[Any]], n: int) -> list[Any]:
    """Up to ``n`` items taken from each pool in turn."""
    picked = []
    while len(picked) < n and any(pools):
        for pool in pools:
            if pool and len(picked) < n:
                picked.append(pool.pop())
    return picked


def choose(
    files: Sequence[tuple[str, str, Path]],
    per_class: int,
    duplicates_per_class: int,
    seed: int,
) -> tuple[list[int], list[tuple[int, int, float, str]]]:
    """Indices of the excerpt's files and the cross-split duplicate pairs planted in it.

    Per class, up to ``duplicates_per_class`` Testing images with a Training
    duplicate are taken with their nearest Training image (exact copies, mirrored
    copies and other near-duplicates in turn); random files fill each class and
    split up to ``per_class``.
    """
    images, hashes = [], []
    for _, _, path in files:
        with Image.open(path) as image:
            array, digest = preprocess_image(image, 64)
        images.append(array)
        hashes.append(digest)
    training = np.array([split == "Training" for split, _, _ in files])
    pairs, best, nearest = near_duplicate_pairs(
        np.stack(images), threshold=THRESHOLD, reference=training
    )
    mirrored = set(
        pairs.loc[pairs["mirrored"], ["a", "b"]].itertuples(index=False, name=None)
    )
    folders = sorted({folder for _, folder, _ in files})
    rng = random.Random(seed)
    chosen: set[int] = set()
    planted = []
    for folder in folders:
        candidates: dict[str, list[tuple[int, int, float, str]]] = {
            "exact": [],
            "mirrored": [],
            "near": [],
        }
        for i, (split, f, _) in enumerate(files):
            j = int(nearest[i])
            # A copy under another label is a data error, not an example to plant.
            if (
                split == "Testing"
                and f == folder
                and best[i] >= THRESHOLD
                and files[j][1] == folder
            ):
                kind = _kind_of_copy(i, j, hashes, mirrored)
                candidates[kind].append((i, j, float(best[i]), kind))
        pools = [rng.sample(c, len(c)) for c in candidates.values()]
        for i, j, r, kind in _round_robin(pools, duplicates_per_class):
            chosen |= {i, j}
            planted.append((i, j, r, kind))
    for split in SPLITS:
        for folder in folders:
            members = [
                i for i, (s, f, _) in enumerate(files) if s == split and f == folder
            ]
            missing = per_class - len(chosen.intersection(members))
            rest = [i for i in members if i not in chosen]
            chosen |= set(rng.sample(rest, max(0, min(missing, len(rest)))))
    return sorted(chosen), planted


def write_excerpt(
    files: Sequence[tuple[str, str, Path]],
    chosen: Sequence[int],
    dest: Path,
    size: int,
    quality: int,
) -> list[Path]:
    """Downsize each chosen file to ``size`` x ``size`` (its mode kept) as JPEG."""
    written = []
    for i in chosen:
        split, folder, path = files[i]
        target = dest / split / folder / (path.stem + ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            small = image.convert(
                "L" if image.mode in ("L", "I;16", "I", "F") else "RGB"
            )
            small = small.resize((size, size), Image.Resampling.LANCZOS)
        small.save(target, format="JPEG", quality=quality)
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--duplicates-per-class", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.dest.exists() and any(args.dest.iterdir()):
        raise FileExistsError(f"{args.dest} is not empty; remove it first.")

    files = list_images(args.source)
    chosen, planted = choose(
        files, args.per_class, args.duplicates_per_class, args.seed
    )
    written = write_excerpt(files, chosen, args.dest, args.size, args.quality)
    name = {i: f"{files[i][0]}/{files[i][1]}/{files[i][2].stem}.jpg" for i in chosen}
    pairs = "\n".join(
        f"- {name[i]} ~ {name[j]}: {kind}, r = {r:.4f}" for i, j, r, kind in planted
    )
    sums = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(args.dest).as_posix()}"
        for p in sorted(written)
    ]
    (args.dest / "SHA256SUMS.txt").write_text("\n".join(sums) + "\n")
    (args.dest / "README.md").write_text(
        ATTRIBUTION.format(
            n_images=len(written),
            per_class=args.per_class,
            size=args.size,
            quality=args.quality,
            duplicates=args.duplicates_per_class,
            seed=args.seed,
            pairs=pairs or "(none found)",
        )
    )
    total = sum(p.stat().st_size for p in written)
    logger.info(
        "Wrote %d images (%.0f KB) to %s.", len(written), total / 1024, args.dest
    )


if __name__ == "__main__":
    main()

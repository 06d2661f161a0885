"""The excerpt generator: sizes, modes, and planted cross-split duplicates."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from medlstm.excerpts.brain_mri import main
from tests.pipelines.brain_tumor_bilstm.factories import write_tree


def test_excerpt_keeps_layout_and_plants_cross_split_copies(tmp_path):
    source = write_tree(tmp_path / "src", per_class=4, size=96)
    copy = source / "Testing" / "glioma" / "glioma_0.png"
    twin = source / "Training" / "glioma" / "glioma_1.png"
    Image.open(twin).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(
        copy
    )  # mirrored copy
    Image.open(source / "Training/notumor/notumor_0.png").convert("RGB").save(
        source / "Training/notumor/notumor_0.png"
    )
    dest = tmp_path / "excerpt"

    main(
        [
            "--source",
            str(source),
            "--dest",
            str(dest),
            "--per-class",
            "2",
            "--size",
            "32",
            "--duplicates-per-class",
            "1",
        ]
    )

    files = sorted(dest.glob("*/*/*.jpg"))
    per_folder = {(f.parts[-3], f.parts[-2]) for f in files}
    assert len(per_folder) == 8
    assert all(Image.open(f).size == (32, 32) for f in files)
    readme = (dest / "README.md").read_text()
    assert (
        "Testing/glioma/glioma_0.jpg ~ Training/glioma/glioma_1.jpg: mirrored" in readme
    )
    assert "CC0 1.0" in readme
    mirrored = np.asarray(Image.open(dest / "Testing/glioma/glioma_0.jpg"), dtype=float)
    original = np.asarray(
        Image.open(dest / "Training/glioma/glioma_1.jpg"), dtype=float
    )
    assert np.corrcoef(mirrored[:, ::-1].ravel(), original.ravel())[0, 1] > 0.98
    sums = dict(
        line.split("  ")[::-1]
        for line in (dest / "SHA256SUMS.txt").read_text().splitlines()
    )
    some = files[0]
    assert (
        sums[some.relative_to(dest).as_posix()]
        == hashlib.sha256(some.read_bytes()).hexdigest()
    )


def test_excerpt_refuses_to_overwrite(tmp_path):
    source = write_tree(tmp_path / "src", per_class=1)
    (tmp_path / "excerpt").mkdir()
    (tmp_path / "excerpt" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        main(["--source", str(source), "--dest", str(tmp_path / "excerpt")])

"""Benchmark smri_cnn_lstm: preprocessing throughput and training memory on the CPU.

1. Preprocessing: volumes per second through ``read_volume`` + ``preprocess_volume``
   (read .nii.gz, reorient, min-max, central 32 slices, in-plane resize), with 1 and
   2 reader threads, on synthetic 64x64x40 int16 volumes and, when
   ../shared/data/brats_samples exists, on real BraTS 2015 volumes (240x240x155
   float32) and the TCGA case (int16, 26 slices).
2. Training: peak resident memory (RSS) and speed of training steps at batch 4 for
   each architecture, at the base size (32x32 in-plane, channels 8-16-32) and the
   full size (64x64, channels 16-32-64). Each configuration runs in a fresh process,
   since peak RSS is a high-water mark of the whole process.

Run from the project root (numbers in docs/smri_cnn_lstm.md)::

    nice python benchmarks/bench_smri_cnn_lstm.py            # everything
    nice python benchmarks/bench_smri_cnn_lstm.py --skip-training
    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 \\
        nice python benchmarks/bench_smri_cnn_lstm.py --skip-preprocessing
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from medlstm.core.machine import machine_line

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "brats_samples"
SIZES = {
    "base": {"size": 32, "channels": [8, 16, 32], "hidden_size": 32},
    "full": {"size": 64, "channels": [16, 32, 64], "hidden_size": 64},
}


def _volumes_per_second(
    files: list[Path], workers: int, size: int, repeats: int
) -> float:
    from medlstm.datasets.nifti_patients import read_volume
    from medlstm.pipelines.smri_cnn_lstm.ingestion import preprocess_volume

    def one(path: Path) -> None:
        preprocess_volume(read_volume(path), 32, (size, size))

    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, files))
        best = max(best, len(files) / (time.perf_counter() - started))
    return best


def bench_preprocessing(repeats: int) -> None:
    from medlstm.datasets.nifti_patients import is_nifti
    from medlstm.synthetic.brats import CohortConfig, write_cohort

    sets = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_cohort(Path(tmp) / "c", CohortConfig(patients=6, unseen=0))
        sets["synthetic 64x64x40 int16 .nii.gz"] = [
            p for p in (Path(tmp) / "c").rglob("*.nii.gz") if "_seg" not in p.name
        ]
        if SAMPLES.is_dir():
            sets["BraTS 2015 240x240x155 float32 .nii.gz"] = sorted(
                p
                for p in (SAMPLES / "deepmedic_brats2015").rglob(
                    "*_subtrMeanDivStd.nii.gz"
                )
            )
            sets["TCGA 26 slices int16 .nii.gz"] = sorted(
                p for p in (SAMPLES / "TCGA-FG-6692").iterdir() if is_nifti(p)
            )
        print("preprocessing (read + reorient + min-max + crop/pad 32 + resize):")
        for name, files in sets.items():
            for size in (32, 64):
                rates = [_volumes_per_second(files, w, size, repeats) for w in (1, 2)]
                print(
                    f"  {name:40s} -> 32x{size}x{size}: {len(files):3d} volumes, "
                    f"{rates[0]:6.1f} volumes/s (1 thread), {rates[1]:6.1f} (2 threads)"
                )


def _current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def train_child(extractor: str, scale: str, steps: int) -> dict[str, float]:
    """Train ``steps`` batches of 4 patients; report RSS and speed (runs in a subprocess).

    Only torch and the model are imported, so the "before" figure is torch itself.
    """
    from medlstm.models.cnn3d_lstm import CNN3DLSTM

    setting = SIZES[scale]
    shape = (32, setting["size"], setting["size"])
    torch.manual_seed(0)
    x = torch.rand(4, 4, *shape)
    y = torch.tensor([0, 1, 0, 1])
    model = CNN3DLSTM(
        extractor,
        shape,
        channels=setting["channels"],
        hidden_size=setting["hidden_size"],
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = _current_rss_mib()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "rss_before_mib": before,
        "peak_rss_mib": peak,
        "patients_per_s": 4 / float(np.median(times[1:] or times)),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def bench_training(steps: int) -> None:
    print(
        f"training at batch 4 on CPU ({torch.get_num_threads()} threads), {steps} steps:"
    )
    for scale in SIZES:
        for extractor in ("flatten", "gap", "se"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", extractor, scale, str(steps)],
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"  {scale:4s} {extractor:7s} {r['parameters']:>9,d} parameters: peak RSS "
                f"{r['peak_rss_mib']:6.0f} MiB (before the first step {r['rss_before_mib']:4.0f}), "
                f"{r['patients_per_s']:5.1f} patients/s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-preprocessing", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        extractor, scale, steps = args.child
        print(json.dumps(train_child(extractor, scale, int(steps))))
        return
    print(machine_line(), flush=True)
    if not args.skip_preprocessing:
        bench_preprocessing(args.repeats)
    if not args.skip_training:
        bench_training(args.steps)


if __name__ == "__main__":
    main()

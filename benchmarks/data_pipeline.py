"""Images per second of the data pipeline with and without the decoded-image cache, on a JPEG fixture dataset.

    python benchmarks/data_pipeline.py [--images 2000] [--size 128] [--source 384x320] [--epochs 3]

Writes a Food-101-layout fixture (CoOp split file + JPEGs of --source pixels, roughly the real photos' size) to a
temporary directory, then times one pass over the training split (decode/read, then the uint8 -> float batches the
engine makes) in three ways:

* no cache: every epoch decodes and resizes every JPEG (what a plain ``ImageFolder``/``DataLoader`` pipeline does);
* cache, first epoch: decode once and write ``<key>.npy``;
* cache, later epochs: memory-map the file (the OS page cache keeps it in RAM across epochs and jobs).

Prints images/s for each and the ratio of a later cached epoch to an uncached one.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

BATCH = 128


def _epoch(images: torch.Tensor) -> None:
    """What the engine does per batch: index, convert to float in [0, 1]."""
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    for start in range(0, len(images), BATCH):
        images[order[start : start + BATCH]].float().div_(255)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000, help="training images in the fixture")
    parser.add_argument("--size", type=int, default=128, help="VR input size (128 for the CoOp-split sets)")
    parser.add_argument("--source", default="384x320", help="fixture JPEG size WxH")
    parser.add_argument("--epochs", type=int, default=3, help="epochs timed per mode")
    args = parser.parse_args()

    from vrbench.datasets.coop import file_list
    from vrbench.datasets.files import load_files
    from vrbench.testing import write_coop_dataset

    width, height = (int(v) for v in args.source.lower().split("x"))
    classes = 101
    per_class = max(1, args.images // classes)
    with tempfile.TemporaryDirectory(prefix="vrbench-bench-") as tmp:
        root, cache = Path(tmp) / "data", Path(tmp) / "cache"
        os.environ["VRBENCH_CACHE_DIR"] = str(cache)
        os.environ.pop("VRBENCH_CACHE", None)
        write_coop_dataset("food101", root, per_class=(per_class, 0, 0), num_classes=classes,
                           image_size=(width, height))
        files = file_list("food101", "train", root)
        n = len(files)
        print(f"fixture: {n} JPEGs of {width}x{height} px -> {args.size} px, {torch.get_num_threads()} torch threads, "
              f"{os.cpu_count()} CPUs")

        def timed(use_cache: bool) -> tuple[float, float]:
            """(images/s of getting the split's pixels, images/s of the whole epoch including batching)."""
            start = time.perf_counter()
            data = load_files(files, args.size, use_cache=use_cache)
            data.images.clone()  # touch every byte, so a lazy map is really read
            loaded = time.perf_counter()
            _epoch(data.images)
            return n / (loaded - start), n / (time.perf_counter() - start)

        uncached = [timed(False) for _ in range(args.epochs)]
        first = timed(True)
        later = [timed(True) for _ in range(args.epochs)]
        size_mb = sum(p.stat().st_size for p in cache.glob("*.npy")) / 1e6
        best_uncached = max(uncached, key=lambda r: r[1])
        best_later = max(later, key=lambda r: r[1])
        print(f"{'':38s} {'pixels ready':>14s} {'whole epoch':>14s}   (images/s)")
        for label, (ready, epoch) in (("no cache (decode every epoch)", best_uncached),
                                      ("cache, first epoch (decode + write)", first),
                                      ("cache, later epochs (mmap)", best_later)):
            print(f"{label:38s} {ready:14.0f} {epoch:14.0f}")
        print(f"cache file: {size_mb:.1f} MB")
        print(f"speed-up, pixels ready: {best_later[0] / best_uncached[0]:.0f}x; "
              f"whole epoch incl. batching: {best_later[1] / best_uncached[1]:.1f}x")


if __name__ == "__main__":
    main()

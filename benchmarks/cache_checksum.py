"""Measure what the decoded-image cache's checksum costs, and what that means at ImageNet scale.

A cache entry is checked (CRC-32 per ~64 MiB chunk, in threads) the first time a process maps it, and when it is
written. This times ``chunk_checksums`` on an entry of ``--mb`` MiB (hot in memory, so it measures the checksum,
not the disk) and extrapolates to ImageNet's 1,281,167 training images at 32 and 224 pixels:

    python benchmarks/cache_checksum.py --mb 256
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from vrbench.datasets.cache import chunk_checksums

IMAGENET_TRAIN = 1_281_167


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256, help="entry size to time, in MiB")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    side = 32
    images = args.mb * 2**20 // (3 * side * side)
    array = np.random.default_rng(0).integers(0, 256, size=(images, 3, side, side), dtype=np.uint8)
    chunk_checksums(array[:64])  # warm up the thread pool's first use
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        chunk_checksums(array)
        best = min(best, time.perf_counter() - start)
    rate = array.nbytes / best
    print(f"checksum of a {array.nbytes / 2**20:.0f} MiB entry: {best:.3f} s, {rate / 1e6:,.0f} MB/s "
          f"({os.cpu_count()} CPUs visible, threads: {min(8, os.cpu_count() or 1)})")
    for size in (32, 224):
        total = IMAGENET_TRAIN * 3 * size * size
        print(f"ImageNet train at {size} px: {total / 1e9:,.1f} GB, checked in about {total / rate:,.0f} s once per "
              "job process (plus reading it from disk if it is not in the page cache)")


if __name__ == "__main__":
    main()

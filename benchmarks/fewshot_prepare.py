"""Preparing a 16-shot ImageNet job, before and after label-first selection, side by side in one run.

The fixture has ImageNet's layout and class count (``--classes`` x ``--per-class`` tiny JPEGs, one validation image
per class). "before" is the previous path: decode the whole training split through the cache, then draw the shots
from its labels. "after" is the job's path now (``load_prompt_data``): draw from the file list's labels, decode only
the chosen images. Each runs with its own empty cache. The figures that matter are the decoded-image counts and
the cache bytes (exact); times depend on the machine. The last lines extrapolate the cache bytes to the real
ImageNet (1,281,167 training and 50,000 test images) with the same entry-size formula.

    python benchmarks/fewshot_prepare.py            # 1,000 classes x 20 images at 224 px (~3 GB of temporary cache)
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from vrbench.datasets import DATASETS, files
from vrbench.datasets.fewshot import sample_fewshot
from vrbench.datasets.space import human_bytes
from vrbench.engine.clip_data import load_prompt_data
from vrbench.footprint import entry_bytes
from vrbench.testing import write_imagenet_scale

IMAGENET_TRAIN, IMAGENET_TEST = 1_281_167, 50_000


def cache_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.glob("*.npy"))


def before(root: Path, size: int, shots: int, seed: int) -> list[int]:
    """The previous path: the whole training split decoded (and cached), then the draw, then the test split."""
    full = DATASETS.get("imagenet").load("train", size, root, resize="clip")
    positions, _ = sample_fewshot(full.labels.tolist(), None, shots, seed)
    full.subset(torch.tensor(positions))
    DATASETS.get("imagenet").load("test", size, root, resize="clip")
    return positions


def after(root: Path, size: int, shots: int, seed: int) -> list[int]:
    config = {"dataset": "imagenet", "subsample": "all", "shots": shots, "seed": seed}
    return load_prompt_data(config, root, size, False, "clip", needs_train=True).record["fewshot_positions"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--shots", type=int, default=16)
    parser.add_argument("--size", type=int, default=224, help="CLIP ViT-B/16's input size")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vrbench-fewshot-bench-"))
    try:
        write_imagenet_scale(work / "data", args.classes, args.per_class)
        print(f"fixture: {args.classes} classes x {args.per_class} training images + {args.classes} test images; "
              f"{args.shots}-shot job at {args.size} px")
        print(f"{'path':8} {'decoded images':>15} {'cache on disk':>15} {'seconds':>8}")
        drawn = {}
        for name, prepare in (("before", before), ("after", after)):
            cache = work / f"cache-{name}"
            os.environ["VRBENCH_CACHE_DIR"] = str(cache)
            decoded, start = files.decoded_images(), time.perf_counter()
            drawn[name] = prepare(work / "data", args.size, args.shots, args.seed)
            seconds = time.perf_counter() - start
            used = cache_bytes(cache)
            print(f"{name:8} {files.decoded_images() - decoded:>15,} {human_bytes(used):>15} {seconds:>8.1f}")
            shutil.rmtree(cache)  # one path's cache at a time on disk
        assert drawn["before"] == drawn["after"], "the two paths drew different shots"
        print("same few-shot positions: yes")
        chosen = args.shots * 1000
        full = entry_bytes(IMAGENET_TRAIN, 224) + entry_bytes(IMAGENET_TEST, 224)
        now = entry_bytes(chosen, 224) + entry_bytes(IMAGENET_TEST, 224)
        print(f"real ImageNet, {args.shots}-shot at 224 px: cache before {human_bytes(full)} "
              f"({IMAGENET_TRAIN:,} + {IMAGENET_TEST:,} images), after {human_bytes(now)} "
              f"({chosen:,} + {IMAGENET_TEST:,} images; the test entry is shared by every job at that size)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

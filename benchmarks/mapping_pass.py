"""The label-mapping pass against the test pass, per image, timed back to back on one real job.

    python benchmarks/mapping_pass.py [--rounds 6]

Builds the engine's padding+ILM job of benchmarks/engine_throughput.py (EfficientNet-Lite0, digits 32 px on a 96-px
canvas, 600 train / 360 test, batch 32, 2 threads), estimates its first mapping, and then alternates the mapping pass
(`collect_train_logits`, over the training split), the test pass over the training split and the test pass over the
test split, in reversed order every other round (so that no pass always follows the same one), printing the median
images/s of each. Both passes stack batches the same way, so per image they should cost the same;
engine_throughput.py measures them inside the epoch, where their neighbours differ.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vrbench.engine.loop import Job  # noqa: E402
from vrbench.store.rundir import write_config  # noqa: E402
from vrbench.suite import parse_suite  # noqa: E402

SUITE = """
name: mapping-pass
grid: {input: padding, mapping: ilm, backbone: efficientnet_lite0, dataset: digits, seed: 0}
defaults: {epochs: 3, batch_size: 32, lr: 0.01, milestones: [], subset: {train: 600, test: 360}}
overrides: [{match: {dataset: digits}, set: {image_size: 32, canvas: 96}}]
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(2)
    (spec,) = parse_suite(SUITE).jobs
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / spec.run_id
        write_config(directory, spec.run_id, spec.method, spec.config, {"device": "cpu", "threads": 2})
        job = Job(directory)
        job.build()
        job.first_start()
        job.epoch_start(0)
        rates: dict[str, list[float]] = {"mapping pass (train split)": [], "test pass (train split)": [],
                                         "test pass (test split)": []}
        passes = (lambda: job.collect_train_logits(), lambda: job.evaluate(job.splits.train),
                  lambda: job.evaluate(job.splits.test))
        sizes = (len(job.splits.train), len(job.splits.train), len(job.splits.test))
        order = list(zip(rates, passes, sizes, strict=True))
        for round_ in range(args.rounds):
            for name, run, size in order if round_ % 2 == 0 else reversed(order):
                start = time.perf_counter()
                run()
                rates[name].append(size / (time.perf_counter() - start))
    for name, values in rates.items():
        print(f"{name:<28} {statistics.median(values):7.1f} images/s (median of {args.rounds})")


if __name__ == "__main__":
    main()

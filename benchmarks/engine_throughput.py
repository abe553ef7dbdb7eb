"""Throughput of vrbench's training loop, phase by phase, against the official ILM-VP loop's anchors.

Usage:  python benchmarks/engine_throughput.py [--canvas 96] [--train 600] [--test 360] [--repeats 3]

It builds a real job (EfficientNet-Lite0 with its packaged weights, digits at 32 px padded into the canvas,
padding VR + ILM, batch 32) through the same `Job` class the workers use, then times the three phases of an
epoch: the label-mapping pass over the training set, the training pass and the test pass. The anchors are the
official ILM-VP epoch loop measured on the same kind of machine (design.md: 185 / 78 / 211 img/s at a 96-px
canvas), so the printed ratios say how much faster (>1) or slower (<1) vrbench's loop is.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vrbench.engine.loop import Job
from vrbench.jobs import make_job
from vrbench.store.rundir import write_config
from vrbench.suite import parse_suite

ANCHORS = {"mapping pass": 185.0, "training": 78.0, "test": 211.0}  # img/s, official ILM-VP loop, 96-px canvas


def build_job(directory: Path, canvas: int, train: int, test: int, threads: int | None) -> Job:
    suite = parse_suite(f"""
name: bench
grid: {{input: padding, mapping: ilm, backbone: efficientnet_lite0, dataset: digits, seed: 0}}
defaults: {{epochs: 1, batch_size: 32, subset: {{train: {train}, test: {test}}}, canvas: {canvas}}}
""")
    spec = suite.jobs[0]
    job = make_job(spec.config, spec.selection)
    run = directory / job.run_id
    write_config(run, job.run_id, job.method, job.config, {"device": "cpu", "threads": threads})
    built = Job(run)
    built.build()
    return built


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--canvas", type=int, default=96)
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--test", type=int, default=360)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        job = build_job(Path(tmp), args.canvas, args.train, args.test, args.threads)
        job.mapping.on_epoch_start(0, job.collect_train_logits)  # warm-up and a first mapping
        phases = {
            "mapping pass": (lambda: job.collect_train_logits(), args.train),
            "training": (lambda: job.train_epoch(0), args.train),
            "test": (lambda: job.evaluate(job.splits.test), args.test),
        }
        print(f"EfficientNet-Lite0, digits 32 px on a {args.canvas}-px canvas, batch 32, "
              f"{torch.get_num_threads()} threads, torch {torch.__version__}")
        print(f"{'phase':<14}{'img/s (median)':>16}{'anchor':>10}{'ratio':>8}")
        for name, (function, images) in phases.items():
            rates = [images / timed(function) for _ in range(args.repeats)]
            rate = statistics.median(rates)
            anchor = ANCHORS[name]
            print(f"{name:<14}{rate:>16.1f}{anchor:>10.1f}{rate / anchor:>8.2f}")


if __name__ == "__main__":
    main()

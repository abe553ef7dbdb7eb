"""What the default tracker costs a job: TensorBoard's writer as the loop drives it, without the training.

    python benchmarks/tracking_cost.py [--epochs 200]

Starts the TensorBoard tracker on a run directory (hyperparameters written once), logs ``--epochs`` metrics.jsonl
rows through it (seven scalars and one flush each, as vrbench.engine.loop does after each checkpoint), finishes it,
and prints the start time (the first `import torch.utils.tensorboard` included), the time per epoch and the bytes of
the event file. Compare the time per epoch with an epoch's seconds in any metrics.jsonl.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vrbench.tracking import RunInfo  # noqa: E402
from vrbench.tracking.tensorboard_tracker import TensorBoardTracker  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=200)
    args = parser.parse_args()
    config = {"input": "padding", "mapping": "ilm", "backbone": "resnet18", "dataset": "cifar10", "seed": 0,
              "epochs": args.epochs, "lr": 0.01, "batch_size": 128, "milestones": [0.5, 0.72], "gamma": 0.1,
              "image_size": 32, "canvas": 224, "subset": None, "val_fraction": 0.0}
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder) / "runs" / "0123456789abcdef"
        directory.mkdir(parents=True)
        tracker = TensorBoardTracker()
        tick = time.perf_counter()
        tracker.start(RunInfo(directory, directory.name, "padding+ilm", config, "bench", 0), None)
        started = time.perf_counter() - tick
        tick = time.perf_counter()
        for epoch in range(1, args.epochs + 1):
            tracker.log_epoch({"epoch": epoch, "train_loss": 1.0 / epoch, "train_acc": 50.0, "val_acc": None,
                               "test_acc": 40.0 + epoch / 10, "lr": 0.01, "seconds": 30.0})
        per_epoch = (time.perf_counter() - tick) / args.epochs
        tracker.finish({"epochs": args.epochs, "final_acc": 60.0, "best_test_acc": 61.0})
        size = sum(p.stat().st_size for p in directory.glob("events.out.tfevents.*"))
    print(f"start {started:.3f} s (imports included), {per_epoch * 1000:.2f} ms per epoch, "
          f"event file {size:,} bytes for {args.epochs} epochs ({size / args.epochs:.0f} bytes per epoch)")


if __name__ == "__main__":
    main()

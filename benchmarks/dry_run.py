"""`vrbench run SUITE --dry-run` on a 200,000-job grid: wall time and peak memory of the real command.

    python benchmarks/dry_run.py [--seeds 667] [--formats table,csv,json]

Writes a suite of 2 inputs x 5 mappings x 3 backbones x 10 datasets x SEEDS seeds (667 seeds: 200,100 jobs) and
runs the real command in a fresh process per output format (`--dry-run`, `--dry-run --format csv`, `--dry-run
--format json`), output to /dev/null, reporting each one's wall time and peak RSS (from the kernel's rusage of the
child). Before (the whole rich table, every job's state read from the results directory): 6 min 33 s and 2.2 GB
reported for 200,000 jobs, 40 s for 20,000. Target: 200,000 jobs within 30 s. Also times the expansion alone
(load_suite in this process) to show where the rest goes.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SUITE = """name: dry-run-benchmark
grid:
  input: [padding, full]
  mapping: [rlm, flm, ilm, blm, blmpp]
  backbone: [efficientnet_lite0, efficientnet_lite1, efficientnet_lite2]
  dataset: [digits, animal_shapes, cifar10, cifar100, svhn, gtsrb, flowers102, dtd, eurosat, oxfordpets]
  seed: {seeds}
defaults: {{epochs: 2, subset: {{train: 100, test: 50}}}}
"""


def timed_command(args: list[str], cwd: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of a child process running the vrbench CLI."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    tick = time.perf_counter()
    with open("/dev/null", "w") as sink:
        done = subprocess.run([sys.executable, "-m", "vrbench.cli", *args], cwd=cwd, stdout=sink,
                              stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - tick
    if done.returncode != 0:
        raise SystemExit(f"vrbench {' '.join(args)} failed: {done.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of the children is the largest so far: a later, smaller child does not show; run large first
    return seconds, max(peak, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=667)
    parser.add_argument("--formats", default="table,csv,json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        suite = Path(scratch) / "suite.yaml"
        suite.write_text(SUITE.format(seeds=list(range(args.seeds))))
        from vrbench.suite import load_suite

        tick = time.perf_counter()
        jobs = len(load_suite(suite).jobs)
        expansion = time.perf_counter() - tick
        print(f"{jobs:,} jobs; expansion alone (load_suite, in this process): {expansion:.1f} s")
        for fmt in args.formats.split(","):
            extra = [] if fmt == "table" else ["--format", fmt]
            seconds, peak = timed_command(["run", str(suite), "--dry-run", *extra, "--results",
                                           str(Path(scratch) / "results")], ROOT)
            print(f"--dry-run{' --format ' + fmt if extra else ''}: {seconds:.1f} s, peak RSS {peak:.0f} MiB "
                  "(children so far)")


if __name__ == "__main__":
    main()

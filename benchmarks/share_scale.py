"""Cold start at scale: `vrbench collect` from scratch, `vrbench export` and `vrbench import` of 10,000 runs.

    python benchmarks/share_scale.py [--runs 10000] [--epochs 130] [--dir DIR]

Writes N finished run directories in the real format (the same grid and writers as benchmarks/report_scale.py:
config.json, env.json, metrics.jsonl with 130 epochs, mapping.json, result.json), then times, each in a fresh
`vrbench` process: building the index from nothing (`collect`), exporting every run to a .tar.gz bundle, importing
that bundle into an empty results directory (checks, staging, renames and indexing), and importing it again
(every run already there: nothing may be written). Targets (issue 22): collect <= 10 s, import <= 30 s.
Prints wall and CPU seconds; CPU (user + sys) is what a busy shared machine inflates least.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report_scale import timed, write_runs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=130)
    parser.add_argument("--dir", type=Path, default=None, help="reuse or keep the results here (default: a temp dir)")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="vrbench-share-scale-"))
    results, imported, bundle = base / "results", base / "imported", base / "bundle.tar.gz"
    vrbench = [sys.executable, "-c", "from vrbench.cli import main; main()"]
    if not (results / "runs").is_dir():
        start = time.perf_counter()
        write_runs(results, args.runs, args.epochs)
        print(f"wrote {args.runs} run directories ({args.epochs} epochs each) in {time.perf_counter() - start:.1f} s")
    (results / "vrbench.duckdb").unlink(missing_ok=True)
    shutil.rmtree(imported, ignore_errors=True)
    rows = [
        ("vrbench collect (index from scratch)", timed([*vrbench, "collect", "--results", str(results)])),
        ("vrbench export -o bundle.tar.gz", timed([*vrbench, "export", "-o", str(bundle), "--results", str(results)])),
        ("vrbench import (empty results dir)", timed([*vrbench, "import", str(bundle), "--results", str(imported)])),
        ("vrbench import (again: all skipped)", timed([*vrbench, "import", str(bundle), "--results", str(imported)])),
    ]
    size = bundle.stat().st_size / 1e6
    print(f"\n{args.runs} runs x {args.epochs} epochs; bundle {size:.1f} MB; wall / CPU seconds:")
    for name, (wall, cpu) in rows:
        print(f"  {name:<40} {wall:6.1f} / {cpu:5.1f}")
    load = os.getloadavg()
    print(f"\nload average: {load[0]:.1f} (1 min), {os.cpu_count()} CPUs; files in {base}")


if __name__ == "__main__":
    main()

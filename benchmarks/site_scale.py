"""`vrbench site` over a large results directory: 10,000 runs in the real run-directory format.

    python benchmarks/site_scale.py [--runs 10000] [--epochs 130] [--changed 100] [--dir DIR] [--suite S ...]

Writes N finished runs exactly as benchmarks/report_scale.py does (10 methods x 4 backbones x 12 datasets x seeds,
through vrbench.testing.runs), indexes them with `vrbench collect`, then times the real `vrbench site` command (a
fresh process each time): a first build into an empty folder, a rebuild with nothing changed, and a rebuild after
--changed runs got another result (their result.json rewritten and re-indexed first, not timed). Prints the pages
written each time and the site's size: its own bytes, and the run files it hard-links (or copies, on another file
system) from the results directory.

With --suite (repeatable, e.g. suites/cvpr23.yaml suites/icml24.yaml), every job of those suites is among the N
runs (a finished run with the suite's own config, vrbench.testing.runs.write_suite_results) and the site is built
with those suites: a page per published table of their papers and one per suite. The changed runs are then taken
from the suites' runs, so the rebuild redraws published tables.

Each build prints the load average when it ended and its context switches: voluntary ones are waits (disk,
locks), involuntary ones are the process pushed off a CPU by others; on a busy machine wall time far above CPU
time with few voluntary switches is a queue for the CPUs, not I/O.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from report_scale import timed, write_runs  # noqa: E402

from vrbench.store.rundir import RESULT, atomic_write_json  # noqa: E402

VRBENCH = [sys.executable, "-c", "from vrbench.cli import main; main()"]  # the `vrbench` entry point


def site(results: Path, out: Path, suites: list[Path]) -> tuple[float, float, str, str]:
    """(wall seconds, CPU seconds, what the command said, load and context switches) of one `vrbench site`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    options = [item for suite in suites for item in ("--suite", str(suite))]
    said = subprocess.run([*VRBENCH, "site", "--results", str(results), "--out", str(out), *options], check=True,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    waits = (f"load {os.getloadavg()[0]:.1f}, context switches: {after.ru_nvcsw - before.ru_nvcsw} voluntary, "
             f"{after.ru_nivcsw - before.ru_nivcsw} involuntary")
    return wall, cpu, said.strip().splitlines()[-1], waits


def change_runs(results: Path, count: int, run_ids: list[str] | None = None) -> None:
    """``count`` runs (the first of ``run_ids``, else of the folder) get another result (final and best accuracy 1
    point higher, or lower near 100), as a re-run or an import would."""
    directories = [results / "runs" / run_id for run_id in run_ids] if run_ids else \
        sorted((results / "runs").iterdir())
    for directory in directories[:count]:
        result = json.loads((directory / RESULT).read_text())
        step = 1.0 if max(result["final_acc"], result["best_test_acc"] or 0.0) <= 99.0 else -1.0
        result.update(final_acc=result["final_acc"] + step, best_test_acc=result["best_test_acc"] + step)
        atomic_write_json(directory / RESULT, result)


def size(out: Path) -> tuple[int, int, int]:
    """(files, the site's own bytes, bytes of files hard-linked from the run directories)."""
    files, own, linked = 0, 0, 0
    for directory, _, names in os.walk(out):
        for name in names:
            stat = os.stat(os.path.join(directory, name))
            files += 1
            if stat.st_nlink > 1:
                linked += stat.st_size
            else:
                own += stat.st_size
    return files, own, linked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=130)
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--dir", type=Path, default=None, help="reuse or keep the results here (default: a temp dir)")
    parser.add_argument("--suite", type=Path, action="append", default=[],
                        help="a suite whose every job is among the runs, and which the site is built with")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="vrbench-site-scale-"))
    results, out = base / "results", base / "site"
    suite_ids: list[str] = []
    if args.suite:
        from vrbench.suite import load_suite

        suite_ids = sorted({job.run_id for suite in args.suite for job in load_suite(suite).jobs})
    if not (results / "runs").is_dir():
        start = time.perf_counter()
        if args.suite:
            from vrbench.testing.runs import write_suite_results

            written: set[str] = set()
            for number, suite in enumerate(args.suite):  # a job in two suites is written once
                seen = frozenset(written)
                written.update(write_suite_results(suite, results, rng_seed=number,
                                                   select=lambda job, seen=seen: job.run_id not in seen))
        write_runs(results, args.runs - len(suite_ids), args.epochs)
        print(f"wrote {args.runs} run directories ({len(suite_ids)} of them the suites' jobs; {args.epochs} epochs "
              f"each, the suites' jobs their own) in {time.perf_counter() - start:.1f} s")
    wall, cpu = timed([*VRBENCH, "collect", "--results", str(results)])
    print(f"vrbench collect: {wall:.1f} s wall, {cpu:.1f} s CPU (not part of the site's times)")
    if out.exists():
        subprocess.run(["rm", "-rf", "--", str(out)], check=True)
    print(f"load average before the builds: {os.getloadavg()[0]:.1f} (1 min), {os.cpu_count()} CPUs")
    rows = [("first build (empty --out)", *site(results, out, args.suite))]
    files, own, linked = size(out)
    rows.append(("rebuild, nothing changed", *site(results, out, args.suite)))
    change_runs(results, args.changed, suite_ids)
    timed([*VRBENCH, "collect", "--results", str(results)])
    rows.append((f"rebuild, {args.changed} runs changed", *site(results, out, args.suite)))
    print(f"\n`vrbench site` over {args.runs} runs, a fresh process each time (wall / CPU seconds):")
    for name, wall, cpu, said, waits in rows:
        print(f"  {name:<30} {wall:6.1f} / {cpu:5.1f}   {said}\n  {'':<30} {waits}")
    print(f"\nsite: {files} files, {own / 1e6:.1f} MB of its own (pages, figures, search index, downloads) + "
          f"{linked / 1e6:.1f} MB of run files hard-linked from the results (copied on another file system)")
    load = os.getloadavg()
    print(f"load average during the run: {load[0]:.1f} (1 min), {os.cpu_count()} CPUs; results in {base}")


if __name__ == "__main__":
    main()

"""The harness's own overhead per job, for the local pool and for Slurm, on the smoke suite.

    python benchmarks/harness_overhead.py [--suite suites/smoke.yaml | --suite tiny [--jobs 6]]
                                          [--executors local,local-no-preload,slurm,slurm-packed]

Runs the suite (default: suites/smoke.yaml, the README's main command; `tiny`: one-epoch EfficientNet-Lite0 jobs on
64 digits) through the real `vrbench run` command, one job at a time so that wall time is a plain sum: local with
--slots 1, with and without the preloading fork server; Slurm with --array-parallelism 1 and all CPUs per job, one
array task per job (`slurm`) or every job in one task (`slurm-packed`: --jobs-per-task N, whose workers are forked
from one preloaded interpreter). Then

    overhead per job = (suite wall time - sum of the jobs' compute time) / jobs

where a job's compute time is what the engine timed as the method's work (`train_seconds` + `init_seconds` in
result.json: the epochs with training, mapping passes and evaluation, plus the first label-mapping pass before
epoch 1). Everything else counts as overhead, split per job using file timestamps:

* start: launch (config.json written, or the previous job's result.json, whichever is later) -> env.json
  written, i.e. process start, `import torch` and vrbench (for Slurm also scheduling the next array task and
  submitit's own process);
* setup: env.json -> result.json, minus the epochs: loading data and the backbone, writing results;
* launcher: the rest (the launcher's own start, claims, polling latency, DuckDB ingest), spread over the jobs.

Also times a bare `python -c "import torch"` for comparison. Needs no network; the Slurm part needs `sbatch`
(`sudo bash .ci/slurm-setup.sh` starts a one-node cluster) and is skipped with a message otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = """
name: overhead
grid: {{input: padding, mapping: [rlm, flm, ilm], backbone: efficientnet_lite0, dataset: digits, seed: {seeds}}}
defaults: {{epochs: 1, batch_size: 32, subset: {{train: 64, test: 40}}, canvas: 48}}
"""


def run_suite(executor: str, suite: Path, results: Path, jobs: int) -> float:
    command = [sys.executable, "-m", "vrbench.cli", "run", str(suite), "--results", str(results)]
    cpus = str(os.cpu_count() or 1)
    if executor == "local":
        command += ["--slots", "1"]
    elif executor == "local-no-preload":
        command += ["--slots", "1", "--no-preload"]
    else:
        command += ["--executor", "slurm", "--wait", "--array-parallelism", "1", "--cpus-per-job", cpus]
        if executor == "slurm-packed":
            command += ["--jobs-per-task", str(jobs)]
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, cwd=suite.parent)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{executor} run failed:\n{out.stdout}\n{out.stderr}")
    return wall


def measure(executor: str, suite: Path, jobs: int, workdir: Path) -> dict[str, float]:
    results = workdir / f"results-{executor}"
    wall = run_suite(executor, suite, results, jobs)
    compute, start, setup = [], [], []
    directories = sorted((results / "runs").iterdir(), key=lambda d: (d / "result.json").stat().st_mtime)
    previous_end = 0.0
    for directory in directories:  # one at a time: a job can start once its config exists and the last one ended
        result = json.loads((directory / "result.json").read_text())
        launched = max((directory / "config.json").stat().st_mtime, previous_end)
        began = (directory / "env.json").stat().st_mtime
        ended = previous_end = (directory / "result.json").stat().st_mtime
        compute.append(result["train_seconds"] + result.get("init_seconds", 0.0))
        start.append(began - launched)
        setup.append(ended - began - compute[-1])
    n = len(compute)
    overhead = (wall - sum(compute)) / n
    return {"jobs": n, "wall": wall, "compute": sum(compute), "overhead": overhead,
            "start": statistics.mean(start), "setup": statistics.mean(setup),
            "launcher": overhead - statistics.mean(start) - statistics.mean(setup)}


def import_seconds(module: str, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="suites/smoke.yaml", help="a suite file, or 'tiny' (see above)")
    parser.add_argument("--jobs", type=int, default=6, help="tiny suite only: jobs (rounded up to a multiple of 3)")
    parser.add_argument("--executors", default="local,local-no-preload,slurm,slurm-packed",
                        help="comma-separated: local (forked from a preloaded server), local-no-preload (a fresh "
                             "interpreter per job), slurm (a task per job), slurm-packed (one task, forked workers)")
    args = parser.parse_args()

    print(f"python -c 'import torch': {import_seconds('torch'):.2f} s; "
          f"'import vrbench.engine.loop' (what a worker imports): {import_seconds('vrbench.engine.loop'):.2f} s")
    rows = []
    with tempfile.TemporaryDirectory(prefix="vrbench-overhead-") as tmp:
        if args.suite == "tiny":
            suite = Path(tmp) / "tiny.yaml"
            suite.write_text(SUITE.format(seeds=list(range(-(-args.jobs // 3)))))
        else:
            suite = Path(args.suite).resolve()
        from vrbench.suite import load_suite

        jobs = len(load_suite(suite).jobs)
        print(f"suite {suite.name}: {jobs} jobs, one at a time")
        for executor in [e.strip() for e in args.executors.split(",") if e.strip()]:
            if executor.startswith("slurm") and shutil.which("sbatch") is None:
                print(f"{executor}: skipped (no sbatch on PATH; `sudo bash .ci/slurm-setup.sh` starts a one-node "
                      "cluster)")
                continue
            rows.append((executor, measure(executor, suite, jobs, Path(tmp))))
    header = ("executor", "jobs", "wall s", "compute s", "overhead s/job", "start", "setup", "launcher")
    print(" | ".join(header))
    for executor, m in rows:
        print(" | ".join([executor, str(m["jobs"]), f"{m['wall']:.1f}", f"{m['compute']:.1f}", f"{m['overhead']:.2f}",
                          f"{m['start']:.2f}", f"{m['setup']:.2f}", f"{m['launcher']:.2f}"]))


if __name__ == "__main__":
    main()

"""`vrbench report` over a large results directory: 10,000 runs in the real run-directory format.

    python benchmarks/report_scale.py [--runs 10000] [--prompt 0] [--epochs 130] [--dir DIR] [--repeat 3]

Writes N finished run directories through the store's own writers (vrbench.testing.runs: config.json, env.json,
metrics.jsonl, a one-to-one mapping.json and result.json, run ids hashed from the configs as for real jobs) over a
grid of 10 methods x 4 backbones x 12 of the papers' datasets x seeds (``--prompt K``: K of the N are
prompt-learning runs instead, base-to-novel base/new pairs and few-shot runs of 5 methods x 11 datasets x seeds,
so the prompt tables and their significance marks are timed too), builds the DuckDB index from scratch with
`vrbench collect`, and then times the real `vrbench report` command (a fresh process each time, index current) for
Markdown, HTML (with its figures, critical-difference diagrams included) and LaTeX, and `vrbench compare`, plus the
pieces of it in one process: the staleness check (the stat of every run file, compared with the stat keys the index
recorded), the report model (and within it the statistics of vrbench.report.significance), the figures. Prints the
figures; the README quotes them.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vrbench.jobs import run_id_of  # noqa: E402
from vrbench.report.model import DATASET_ORDER  # noqa: E402
from vrbench.testing.runs import index_mapping, learning_curve, write_finished_run  # noqa: E402

METHODS = [("padding", m) for m in ("rlm", "flm", "ilm", "blm", "blmpp")] + [
    ("full", "ilm"), ("narrow", "ilm"), ("medium", "ilm"), ("smm", "ilm"), ("resize", "linear_probe")]
BACKBONES = ("resnet18", "resnet50", "vit_b32", "efficientnet_lite0")


def write_runs(results: Path, count: int, epochs: int) -> None:
    rng = random.Random(0)
    datasets = DATASET_ORDER[:12]
    grid = itertools.product(range(10**6), datasets, BACKBONES, METHODS)  # seeds outermost: every cell fills up
    targets = [str(c) for c in range(10)]
    for index, (seed, dataset, backbone, (inp, mapping)) in enumerate(grid):
        if index == count:
            break
        config = {"protocol": "vr", "input": inp, "mapping": mapping, "backbone": backbone, "dataset": dataset,
                  "seed": seed, "epochs": epochs, "lr": 0.01, "batch_size": 256, "versions": {"engine": 1}}
        level = 40.0 + 5.0 * METHODS.index((inp, mapping)) + 3.0 * BACKBONES.index(backbone)
        write_finished_run(results, run_id_of(config), f"{inp}+{mapping}", config,
                           learning_curve(epochs, level + rng.uniform(-2, 2), rng),
                           index_mapping(1000, targets, rng))


PROMPT_METHODS = ("coop", "cocoop", "ivlp", "maple", "promptsrc")
PROMPT_DATASETS = ("imagenet", "caltech101", "oxford_pets", "stanford_cars", "flowers102", "food101", "fgvc_aircraft",
                   "sun397", "dtd", "eurosat", "ucf101")


def write_prompt_runs(results: Path, count: int, epochs: int) -> None:
    """``count`` prompt-learning runs: base2novel (base and new) and few-shot (1-16 shots), seeds outermost."""
    rng = random.Random(1)
    settings = [("base2novel", 16, "base"), ("base2novel", 16, "new"),
                *(("fewshot", shots, "all") for shots in (1, 2, 4, 8, 16))]
    grid = itertools.product(range(1, 10**6), PROMPT_DATASETS, PROMPT_METHODS, settings)
    for index, (seed, dataset, method, (protocol, shots, subsample)) in enumerate(grid):
        if index == count:
            break
        config = {"protocol": protocol, "method": method, "backbone": "clip_vit_b16", "dataset": dataset,
                  "seed": seed, "shots": shots, "subsample": subsample, "epochs": epochs, "lr": 0.002,
                  "batch_size": 32, "versions": {"engine": 1}}
        level = 60.0 + 3.0 * PROMPT_METHODS.index(method) + (5.0 if subsample == "base" else 0.0)
        history = learning_curve(epochs, level + rng.uniform(-2, 2), rng)
        write_finished_run(results, run_id_of(config), method, config, history)


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+sys) of one child process; CPU time is what a busy machine inflates least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def in_process(results: Path, out: Path) -> dict[str, float]:
    """The parts of an HTML report, timed in one process (imports already paid)."""
    from vrbench.report import load_model
    from vrbench.report.figures import build_figures
    from vrbench.report.html import render_html
    from vrbench.store.db import DB_NAME, is_current

    db = results / DB_NAME
    times = {}
    start = time.perf_counter()
    assert is_current(results, db)
    times["staleness check (stat every run file)"] = time.perf_counter() - start
    start = time.perf_counter()
    model = load_model(db)
    times["report model (DuckDB queries + statistics)"] = time.perf_counter() - start
    from vrbench.report.model import build_boards, load_cells, load_scores
    from vrbench.report.prompt import build_prompt_sections, load_prompt_runs
    from vrbench.report.significance import annotate, annotate_prompt
    from vrbench.store.db import connect

    con = connect(db, read_only=True)
    cells, scores, prompt_runs = load_cells(con), load_scores(con), load_prompt_runs(con)
    con.close()
    boards = build_boards(cells, None)
    start = time.perf_counter()
    annotate(boards, scores)
    times[f"  of which statistics (marks, bootstrap, ranks; {len(scores)} seed scores)"] = time.perf_counter() - start
    sections = build_prompt_sections(prompt_runs, None)
    start = time.perf_counter()
    annotate_prompt(sections)
    times[f"  of which prompt-table marks ({len(prompt_runs)} runs)"] = time.perf_counter() - start
    start = time.perf_counter()
    figures = build_figures(db, model)
    times[f"figures ({len(figures)}, matplotlib, incl. import)"] = time.perf_counter() - start
    start = time.perf_counter()
    render_html(model, figures)
    times["HTML page"] = time.perf_counter() - start
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--prompt", type=int, default=0, help="how many of the runs are prompt-learning runs")
    parser.add_argument("--epochs", type=int, default=130)
    parser.add_argument("--dir", type=Path, default=None, help="reuse or keep the results here (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="vrbench-report-scale-"))
    results = base / "results"
    vrbench = [sys.executable, "-c", "from vrbench.cli import main; main()"]  # the `vrbench` entry point
    if not (results / "runs").is_dir():
        start = time.perf_counter()
        write_runs(results, args.runs - args.prompt, args.epochs)
        write_prompt_runs(results, args.prompt, args.epochs)
        print(f"wrote {args.runs} run directories ({args.prompt} prompt-learning; {args.epochs} epochs each) in "
              f"{time.perf_counter() - start:.1f} s")
    fresh = not (results / "vrbench.duckdb").exists()
    wall, cpu = timed([*vrbench, "collect", "--results", str(results)])
    print(f"vrbench collect ({'index from scratch' if fresh else 'index already there'}): {wall:.1f} s wall, "
          f"{cpu:.1f} s CPU")
    rows = []
    for fmt in ("md", "html", "latex"):
        command = [*vrbench, "report", "--results", str(results), "--format", fmt, "--out", str(base / "reports")]
        times = [timed(command) for _ in range(args.repeat)]
        rows.append((f"vrbench report --format {fmt}", times))
    rows.append(("vrbench compare (table)", [timed([*vrbench, "compare", "padding+blm", "padding+ilm", "--results",
                                                    str(results)]) for _ in range(args.repeat)]))
    fresh_outs = [Path(tempfile.mkdtemp(prefix="fresh-", dir=base)) for _ in range(args.repeat)]
    rows.append(("... html, new --out (draws all)", [timed([*vrbench, "report", "--results", str(results), "--format",
                                                            "html", "--out", str(out)]) for out in fresh_outs]))
    print(f"\n{args.runs} runs, index current; a fresh `vrbench report` process each time, wall / CPU seconds "
          f"(an HTML report reuses the figures of the last one in --out when their data are unchanged):")
    for name, times in rows:
        print(f"  {name:<32} " + "  ".join(f"{wall:5.2f} / {cpu:4.2f}" for wall, cpu in times))
    print("\nin one process (figures drawn, no reuse):")
    for name, seconds in in_process(results, base / "reports").items():
        print(f"  {name:<50} {seconds:5.2f} s")
    load = os.getloadavg()
    print(f"\nload average during the run: {load[0]:.1f} (1 min), {os.cpu_count()} CPUs; results in {base}")


if __name__ == "__main__":
    main()

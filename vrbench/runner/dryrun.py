"""`vrbench run SUITE --dry-run`: what a suite would run, what it costs and what it needs, without running it.

One pass over the jobs, whatever the output: each job's estimated multiply-adds (vrbench/cost.py) and memory
(vrbench/footprint.py) are computed once, summed, and either

* ``table`` (the default): drawn as a rich table when the suite is small (``FULL_TABLE_JOBS``); a larger suite gets
  its first and last ``EDGE_ROWS`` rows, the number of jobs per value of each axis, and the totals, so that a
  200,000-job grid prints in seconds instead of drawing 200,000 rows (measured before: 6 min 33 s and 2.2 GB);
* ``csv`` or ``json`` (JSON Lines: one object per job): streamed one row at a time to stdout, every job, with raw
  numbers (bytes, TMAC); the totals go to stderr so that stdout stays machine-readable.

Nothing here imports torch; the results directory is not read (a dry run shows what the suite holds, `vrbench
status` what has run).
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from vrbench.cost import ASSUMED_TMACS_PER_SECOND, gpu_hours, job_tmacs
from vrbench.datasets.space import human_bytes
from vrbench.footprint import CacheKey, job_footprint
from vrbench.terminal import literal

FORMATS = ("table", "csv", "json")
FULL_TABLE_JOBS = 200  # up to this many jobs the table shows every one
EDGE_ROWS = 10  # a summarised table shows this many first and last jobs
AXIS_VALUES_SHOWN = 12  # an axis with more values than this is summarised as a count (and a range for numbers)
FIELDS = ("run_id", "method", "input", "mapping", "backbone", "dataset", "shots", "seed", "epochs", "lr",
          "batch_size", "tmac", "host_bytes", "cache_bytes", "gpu_bytes")
AXES = ("method", "backbone", "dataset", "shots", "seed")


@dataclass
class Totals:
    """What the whole suite costs and needs; ``rows_rendered`` counts the rows drawn or written (the work)."""

    jobs: int = 0
    tmac: float = 0.0
    peak_host: int = 0
    peak_gpu: int = 0
    cache: dict[CacheKey, int] = field(default_factory=dict)  # distinct decoded-image cache entries
    axes: dict[str, Counter] = field(default_factory=lambda: {axis: Counter() for axis in AXES})
    rows_rendered: int = 0

    @property
    def cache_bytes(self) -> int:
        return sum(self.cache.values())


def job_row(job) -> dict[str, Any]:
    """One job's row: its identity, settings and estimates (raw numbers)."""
    c = job.config
    needs = job_footprint(c)
    dataset = c["dataset"] + (f" ({c['subsample']})" if c.get("subsample") not in (None, "all") else "")
    return {"run_id": job.run_id, "method": job.method, "input": c.get("input"), "mapping": c.get("mapping"),
            "backbone": c["backbone"], "dataset": dataset, "shots": c.get("shots"), "seed": c["seed"],
            "epochs": c.get("epochs", 0), "lr": c.get("lr"), "batch_size": c.get("batch_size"),
            "tmac": job_tmacs(c), "host_bytes": needs.host, "cache_bytes": needs.cache_bytes,
            "gpu_bytes": needs.gpu, "_cache": needs.cache}


def _add(totals: Totals, row: dict[str, Any]) -> None:
    totals.jobs += 1
    totals.tmac += row["tmac"]
    totals.peak_host = max(totals.peak_host, row["host_bytes"])
    totals.peak_gpu = max(totals.peak_gpu, row["gpu_bytes"])
    totals.cache.update(row["_cache"])
    for axis in AXES:
        if row[axis] is not None:
            totals.axes[axis][row[axis]] += 1


def stream_rows(jobs: Iterable, out: TextIO, fmt: str) -> Totals:
    """Write every job as a CSV row or a JSON line, one at a time; the totals."""
    totals = Totals()
    writer = None
    if fmt == "csv":
        writer = csv.DictWriter(out, FIELDS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
    for job in jobs:
        row = job_row(job)
        _add(totals, row)
        if writer is not None:
            writer.writerow(row)
        else:
            out.write(json.dumps({key: row[key] for key in FIELDS}) + "\n")
        totals.rows_rendered += 1
    return totals


def _table_cells(row: dict[str, Any]) -> list[str]:
    shots = f" {row['shots']}-shot" if row["shots"] else ""
    tmac = row["tmac"]
    return [row["run_id"], literal(str(row["method"])), row["backbone"], literal(row["dataset"] + shots),
            str(row["seed"]), str(row["epochs"]), "-" if row["lr"] is None else f"{row['lr']:g}",
            "-" if row["batch_size"] is None else str(row["batch_size"]),
            f"{tmac:,.0f}" if tmac >= 10 else f"{tmac:.2f}", human_bytes(row["host_bytes"]),
            human_bytes(row["cache_bytes"]) if row["_cache"] else "-", human_bytes(row["gpu_bytes"])]


def render_table(jobs: list, title: str, console: Console) -> Totals:
    """The rich table: every job of a small suite; the first and last rows and the per-axis counts of a large one."""
    totals = Totals()
    summarised = len(jobs) > FULL_TABLE_JOBS
    head: list[list[str]] = []
    tail: deque[list[str]] = deque(maxlen=EDGE_ROWS if summarised else None)
    for index, job in enumerate(jobs):
        row = job_row(job)
        _add(totals, row)
        if not summarised or index < EDGE_ROWS:
            head.append(_table_cells(row))
        elif index >= len(jobs) - EDGE_ROWS:
            tail.append(_table_cells(row))
    shown = f" (the first and last {EDGE_ROWS}; `--format csv` or `--format json` lists every one)" if summarised \
        else ""
    table = Table(title=f"{literal(title)}{shown}", title_justify="left")
    table.add_column("run_id", no_wrap=True)
    for column in ("method", "backbone", "dataset", "seed", "epochs", "lr", "batch"):
        table.add_column(column)
    for column in ("est. TMAC", "host mem", "cache disk", "GPU mem (CUDA)"):
        table.add_column(column, justify="right")
    for cells in head:
        table.add_row(*cells)
    if summarised:
        table.add_row("…", f"{len(jobs) - 2 * EDGE_ROWS:,} more", *[""] * 10)
    for cells in tail:
        table.add_row(*cells)
    totals.rows_rendered = len(head) + len(tail)
    console.print(table)
    if summarised:
        for line in axis_summary(totals):
            console.print(line, highlight=False)
    return totals


def axis_summary(totals: Totals) -> list[str]:
    """One line per axis: jobs per value, or for many values their number (and range, for numbers)."""
    lines = []
    for axis, counts in totals.axes.items():
        if not counts:
            continue
        if len(counts) <= AXIS_VALUES_SHOWN:
            values = ", ".join(f"{literal(str(value))} {count:,}" for value, count in counts.items())
        else:
            numbers = all(isinstance(value, int) for value in counts)
            span = f" ({min(counts)}..{max(counts)})" if numbers else ""
            values = f"{len(counts):,} values{span}, {min(counts.values()):,} to {max(counts.values()):,} jobs each"
        lines.append(f"  {axis}: {values}")
    return lines


def totals_lines(totals: Totals) -> list[str]:
    return [f"{totals.jobs:,} jobs, estimated {totals.tmac:,.1f} TMAC in all: about {gpu_hours(totals.tmac):,.1f} "
            f"GPU-hours at an assumed {ASSUMED_TMACS_PER_SECOND:g} TMAC/s (see vrbench/cost.py)",
            f"estimated needs (vrbench/footprint.py; docs/cluster.md picks --slots from them): decoded-image cache "
            f"{human_bytes(totals.cache_bytes)} on disk in all (shared entries counted once); per job at most "
            f"{human_bytes(totals.peak_host)} host memory and {human_bytes(totals.peak_gpu)} GPU memory on CUDA"]


def print_dry_run(jobs: list, title: str, fmt: str, console: Console, err_console: Console,
                  out: TextIO | None = None) -> Totals:
    """The dry run in ``fmt`` (table, csv or json); the totals follow the table, or go to stderr after a stream."""
    if fmt == "table":
        totals = render_table(jobs, title, console)
        for line in totals_lines(totals):
            console.print(line, highlight=False)
        return totals
    totals = stream_rows(jobs, out or sys.stdout, fmt)
    for line in totals_lines(totals):
        err_console.print(line, highlight=False)
    return totals

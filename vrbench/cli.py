"""The `vrbench` command line.

Cheap commands (`--help`, `ls`, `status`, `report`, `collect`) never import torch; only the worker
processes that `run` starts do.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vrbench.errors import VrbenchError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Benchmark harness and leaderboard runner for visual reprogramming and CLIP prompt learning.")
# Piped output (CI logs, grep) gets a wide console so tables are never cut to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

ResultsOpt = Annotated[Path, typer.Option("--results", "-r", help="results directory (run dirs + vrbench.duckdb)")]
DEFAULT_RESULTS = Path("results")
DB_NAME = "vrbench.duckdb"


def data_root_from(option: Path | None) -> Path:
    """--data-root, else $VRBENCH_DATA, else ./data."""
    if option is not None:
        return option
    if os.environ.get("VRBENCH_DATA"):
        return Path(os.environ["VRBENCH_DATA"])
    return Path("data")


def _fail(exc: VrbenchError) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


@app.command()
def run(
    suite: Annotated[Path, typer.Argument(help="suite YAML, e.g. suites/smoke.yaml")],
    results: ResultsOpt = DEFAULT_RESULTS,
    data_root: Annotated[Path | None, typer.Option(help="dataset root (default: $VRBENCH_DATA, else ./data)")] = None,
    device: Annotated[Device, typer.Option(help="auto: the GPU when one is visible, else the CPU")] = Device.auto,
    slots: Annotated[int, typer.Option(min=1, help="jobs to run at once")] = 1,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads per job (default: cores / slots)")] = None,
    download: Annotated[bool, typer.Option(help="let loaders try to download missing datasets")] = False,
    timeout_min: Annotated[float | None, typer.Option(help="kill and fail a job after this many minutes")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the expanded job table and exit")] = False,
) -> None:
    """Run every pending job of a suite, each in its own process, then index the results in DuckDB."""
    from vrbench.runner.display import RunDisplay
    from vrbench.runner.local import LocalRunner, RunOptions
    from vrbench.suite import load_suite

    try:
        loaded = load_suite(suite)
        if dry_run:
            _print_jobs(loaded.jobs, results, show_state=False, title=f"{loaded.name}: {len(loaded.jobs)} jobs")
            return
        options = RunOptions(results=results, data_root=data_root_from(data_root), device=device.value, slots=slots,
                             threads=threads, download=download, timeout_min=timeout_min)
        console.print(f"suite [bold]{loaded.name}[/]: {len(loaded.jobs)} jobs -> {results}/runs", highlight=False)
        with RunDisplay(len(loaded.jobs), console) as display:
            summary = LocalRunner(loaded.jobs, options, display).run()
        _ingest(results)
    except VrbenchError as exc:
        raise _fail(exc) from None
    console.print(f"finished: {len(summary.done)} ran, {len(summary.skipped)} already done, "
                  f"{len(summary.failed)} failed, {len(summary.elsewhere)} busy elsewhere", highlight=False)
    if summary.interrupted:
        console.print("interrupted: re-run the same command to resume from the last checkpoints")
        raise typer.Exit(130)
    if summary.failed:
        console.print(f"[red]{len(summary.failed)} job(s) failed[/]; see `vrbench status {suite}`")
        raise typer.Exit(1)


def _ingest(results: Path) -> None:
    from vrbench.store.db import ingest

    stats = ingest(results, results / DB_NAME)
    console.print(f"indexed in {results / DB_NAME}: {stats.summary()}", highlight=False)
    for problem in stats.problems:  # damaged files are reported, never deleted
        err_console.print(f"[yellow]warning:[/] {problem}", highlight=False)


@app.command()
def status(
    suite: Annotated[Path, typer.Argument(help="suite YAML")],
    results: ResultsOpt = DEFAULT_RESULTS,
) -> None:
    """List each job of a suite as done, running, pending, failed (with its error) or stale."""
    from vrbench.suite import load_suite

    try:
        loaded = load_suite(suite)
    except VrbenchError as exc:
        raise _fail(exc) from None
    _print_jobs(loaded.jobs, results, show_state=True, title=f"{loaded.name}: {len(loaded.jobs)} jobs")


def _print_jobs(jobs, results: Path, show_state: bool, title: str) -> None:
    from collections import Counter

    from vrbench.runner.local import describe_states

    table = Table(title=title, title_justify="left")
    table.add_column("run_id", no_wrap=True)
    for column in ("input", "mapping", "backbone", "dataset", "seed", "epochs", "lr", "batch"):
        table.add_column(column)
    if show_state:
        table.add_column("status", no_wrap=True)
        table.add_column("detail", overflow="fold")
    counts: Counter[str] = Counter()
    colours = {"done": "green", "failed": "red", "running": "cyan", "stale": "yellow", "corrupt": "red"}
    for job, state in describe_states(jobs, results):
        c = job.config
        row = [job.run_id, c["input"], c["mapping"], c["backbone"], c["dataset"], str(c["seed"]), str(c["epochs"]),
               f"{c['lr']:g}", str(c["batch_size"])]
        if show_state:
            counts[state.status] += 1
            colour = colours.get(state.status, "white")
            row += [f"[{colour}]{state.status}[/]", state.detail]
        table.add_row(*row)
    console.print(table)
    if show_state:
        console.print("  ".join(f"{name}: {count}" for name, count in sorted(counts.items())))


class Format(str, Enum):
    md = "md"
    html = "html"


@app.command()
def report(
    results: ResultsOpt = DEFAULT_RESULTS,
    format: Annotated[Format, typer.Option("--format", "-f", help="md (for a README) or html")] = Format.md,
    out: Annotated[Path, typer.Option(help="output directory")] = Path("reports"),
    suite: Annotated[Path | None, typer.Option(help="only the jobs of this suite")] = None,
    paper: Annotated[str | None, typer.Option(help="reference table to compare with, e.g. ilm_vp_cvpr23")] = None,
    group_by: Annotated[str, typer.Option(help="extra row keys, e.g. device,precision")] = "",
    heatmap: Annotated[list[str] | None, typer.Option(help="draw this run's label mapping (HTML; repeatable)")] = None,
) -> None:
    """Write the leaderboard (ours next to the published numbers) to reports/index.md or index.html."""
    from vrbench.report import build_report

    try:
        run_ids = None
        if suite is not None:
            from vrbench.suite import load_suite

            loaded = load_suite(suite)
            run_ids = {job.run_id for job in loaded.jobs}
            paper = paper or loaded.reference.get("paper")
        _ingest(results)
        keys = tuple(key.strip() for key in group_by.split(",") if key.strip())
        path = build_report(results / DB_NAME, out, fmt=format.value, run_ids=run_ids, paper=paper, group_by=keys,
                            heatmaps=tuple(heatmap or ()))
    except VrbenchError as exc:
        raise _fail(exc) from None
    console.print(f"wrote {path}")


@app.command()
def collect(results: ResultsOpt = DEFAULT_RESULTS) -> None:
    """(Re)build the DuckDB index from the run directories; safe to run any time."""
    try:
        _ingest(results)
    except VrbenchError as exc:
        raise _fail(exc) from None


class Listing(str, Enum):
    methods = "methods"
    backbones = "backbones"
    datasets = "datasets"
    suites = "suites"


@app.command("ls")
def ls(what: Annotated[Listing, typer.Argument(help="what to list")]) -> None:
    """List the registered methods, backbones, datasets, or the suites in ./suites."""
    table = Table(title=what.value, title_justify="left")
    if what is Listing.methods:
        from vrbench.methods import INPUTS, MAPPINGS

        for column in ("axis", "name", "version", "hyperparameters", "description"):
            table.add_column(column)
        for axis, registry in (("input", INPUTS), ("mapping", MAPPINGS)):
            for entry in registry:
                params = ", ".join(f"{k}={v}" for k, v in entry.params.items()) or "-"
                table.add_row(axis, entry.name, str(entry.version), params, entry.description)
    elif what is Listing.backbones:
        from vrbench.backbones import BACKBONES

        for column in ("name", "input", "classes", "mean/std", "weights", "offline"):
            table.add_column(column)
        for b in BACKBONES:
            table.add_row(b.name, str(b.input_size), str(b.num_classes), f"{b.mean[0]}/{b.std[0]}", b.weights,
                          "yes" if b.offline else "no")
    elif what is Listing.datasets:
        from vrbench.datasets import DATASETS

        for column in ("name", "classes", "train", "test", "VR size", "source", "offline"):
            table.add_column(column)
        for d in DATASETS:
            table.add_row(d.name, str(d.num_classes), str(d.train_size), str(d.test_size), str(d.vr_image_size),
                          d.source, "yes" if d.offline else "no")
    else:
        import yaml

        for column in ("suite", "name", "description"):
            table.add_column(column)
        for path in sorted(Path("suites").glob("*.yaml")):
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError:
                data = {"description": "(malformed YAML: run `vrbench run --dry-run` on it for details)"}
            table.add_row(str(path), str(data.get("name", "")), str(data.get("description", "")))
    console.print(table)


def main() -> None:
    try:
        app()
    except VrbenchError as exc:  # pragma: no cover - commands catch their own; this is the last net
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()

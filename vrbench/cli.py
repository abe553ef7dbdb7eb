"""The `vrbench` command line.

Cheap commands (`--help`, `ls`, `status`, `report`, `collect`) never import torch; only the worker
processes that `run` starts do.
"""

from __future__ import annotations

import os
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vrbench.errors import ConfigError, MissingResourceError, VrbenchError
from vrbench.runner.lifetime import exit_code_for
from vrbench.terminal import escape, literal

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Benchmark harness and leaderboard runner for visual reprogramming and CLIP prompt learning.")
# Piped output (CI logs, grep) gets a wide console so tables are never cut to 80 columns.
def _mount_data_app() -> None:
    from vrbench.data_cli import data_app

    app.add_typer(data_app, name="data", help="List, prepare and verify datasets.")


_mount_data_app()
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

ResultsOpt = Annotated[Path, typer.Option("--results", "-r", help="results directory (run dirs + vrbench.duckdb)")]
DEFAULT_RESULTS = Path("results")


def data_root_from(option: Path | None) -> Path:
    """--data-root, else $VRBENCH_DATA, else `data_root:` in ~/.config/vrbench/config.yaml, else ./data."""
    from vrbench.datasets.roots import resolve_data_root

    return resolve_data_root(option).path


def _preflight(jobs, results: Path, data_root: Path) -> None:
    """Refuse to start when a dataset that pending jobs need is missing or broken: every problem at once."""
    from vrbench.datasets.verify import format_problems, verify_for_suite
    from vrbench.store.rundir import RESULT, run_dir

    pending = [job for job in jobs if not (run_dir(results, job.run_id) / RESULT).exists()]
    needed = {job.config["dataset"] for job in pending}
    problems = [p for p in verify_for_suite(sorted(needed), data_root) if p.severity == "error"]
    if problems:
        raise MissingResourceError("the suite's datasets are not ready, nothing was started:\n"
                                   + format_problems(problems))
    _preflight_clip_weights({job.config["backbone"] for job in pending})


def _preflight_clip_weights(backbones: set[str]) -> None:
    """CLIP weights that are not on disk: refuse to start when the hub is switched off (HF_HUB_OFFLINE=1), where
    every job would fail alike; otherwise say that the workers will download them."""
    from vrbench.backbones import BACKBONES

    clip = sorted(b.name for b in map(BACKBONES.get, backbones) if b.is_clip and not b.offline)
    if not clip:
        return
    from vrbench.clip.models import missing_weights_advice, weights_on_disk

    missing = [name for name in clip if not weights_on_disk(name)]
    if not missing:
        return
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise MissingResourceError("nothing was started: " + " ".join(missing_weights_advice(n) for n in missing))
    err_console.print(f"[yellow]note:[/] the weights of {', '.join(missing)} are not in the local cache; the first "
                      "worker to need them downloads them (offline machines: see docs/clip.md)", highlight=False)


def _fail(exc: VrbenchError) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(exc)}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class DryRunFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


class Executor(str, Enum):
    local = "local"
    slurm = "slurm"


# Options of one executor, with their defaults: giving another value with the other executor is an error.
SLURM_ONLY = {"partition": None, "gpus_per_job": None, "cpus_per_job": None, "mem_gb": None,
              "array_parallelism": None, "jobs_per_task": 1, "wait": False}
LOCAL_ONLY = {"slots": None, "gpus": None, "threads": None, "preload": None}


@app.command()
def run(
    suite: Annotated[Path, typer.Argument(help="suite YAML, e.g. suites/smoke.yaml")],
    results: ResultsOpt = DEFAULT_RESULTS,
    data_root: Annotated[Path | None, typer.Option(help="dataset root (default: $VRBENCH_DATA, else ./data)")] = None,
    device: Annotated[Device, typer.Option(help="auto: the GPU when one is visible, else the CPU")] = Device.auto,
    executor: Annotated[Executor, typer.Option(help="local: a pool of worker processes on this machine; "
                                               "slurm: Slurm job arrays (through submitit)")] = Executor.local,
    slots: Annotated[int | None, typer.Option(min=1, help="(local) jobs at once (default: one per visible GPU, "
                                              "else 1)")] = None,
    gpus: Annotated[str | None, typer.Option(help="(local) GPUs to hand out, one per slot, e.g. 0,1 (default: "
                                             "the visible ones)")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="(local) CPU threads per job (default: cores / "
                                                "slots)")] = None,
    preload: Annotated[bool | None, typer.Option("--preload/--no-preload", help="(local) fork each worker from "
                                                 "one process that imported torch once (saves ~1.2 s per job); "
                                                 "default: on for CPU slots, off for GPU slots")] = None,
    download: Annotated[bool, typer.Option(help="let loaders try to download missing datasets")] = False,
    timeout_min: Annotated[float | None, typer.Option(min=0.01, help="time limit per job in minutes (local: kill "
                                                      "and fail; slurm: requeue from the checkpoint)")] = None,
    partition: Annotated[str | None, typer.Option(help="(slurm) partition")] = None,
    gpus_per_job: Annotated[int | None, typer.Option(min=0, help="(slurm) GPUs per job")] = None,
    cpus_per_job: Annotated[int | None, typer.Option(min=1, help="(slurm) CPU cores per job")] = None,
    mem_gb: Annotated[float | None, typer.Option(min=0.01, help="(slurm) memory per job in GB")] = None,
    array_parallelism: Annotated[int | None, typer.Option(min=1, help="(slurm) array tasks running at once")] = None,
    jobs_per_task: Annotated[int, typer.Option(min=1, help="(slurm) jobs run one after another by each array "
                                               "task")] = 1,
    wait: Annotated[bool, typer.Option("--wait", help="(slurm) follow the jobs to the end with the live display "
                                       "and index the results (default: return after submitting)")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the expanded job table and exit")] = False,
    tracker: Annotated[list[str] | None, typer.Option(help="also log each job to wandb or mlflow (repeatable; "
                                                      "TensorBoard is always on; none: no tracker at all)")] = None,
    output: Annotated[DryRunFormat, typer.Option("--format", help="with --dry-run: table (large suites "
                                                 "summarised), or csv / json (JSON Lines) streaming every job")
                      ] = DryRunFormat.table,
    ignore_memory_check: Annotated[bool, typer.Option("--ignore-memory-check", help="start jobs whose estimated "
                                                      "memory exceeds this machine's")] = False,
) -> None:
    """Run every pending job of a suite, each in its own process, then index the results in DuckDB."""
    from vrbench.runner.display import RunDisplay
    from vrbench.suite import load_suite

    values = locals()
    try:
        foreign = SLURM_ONLY if executor is Executor.local else LOCAL_ONLY
        misplaced = sorted(name for name, default in foreign.items() if values[name] != default)
        if misplaced:
            flags = ", ".join(("--no-" if values[name] is False else "--") + name.replace("_", "-")
                              for name in misplaced)
            other = "slurm" if executor is Executor.local else "local"
            raise ConfigError(f"{flags} only apply to --executor {other}")
        if output is not DryRunFormat.table and not dry_run:
            raise ConfigError("--format csv|json goes with --dry-run")
        loaded = load_suite(suite)
        if dry_run:
            from vrbench.runner.dryrun import print_dry_run

            print_dry_run(loaded.jobs, f"{loaded.name}: {len(loaded.jobs)} jobs", output.value, console, err_console)
            return
        if not ignore_memory_check and executor is Executor.local:
            from vrbench.runner.memcheck import check_memory

            check_memory(loaded.jobs, results, device.value)
        if not download:
            _preflight(loaded.jobs, results, data_root_from(data_root))
        tracking = _tracking(loaded, tracker)
        from vrbench.runner.resources import Resources

        resources = {run_id: Resources(**values) for run_id, values in loaded.resources.items()}
        if executor is Executor.slurm:
            from vrbench.runner.slurm import SlurmOptions, SlurmRunner, describe_submission

            if device is Device.cuda and not gpus_per_job and not any(r.gpus_per_job for r in resources.values()):
                raise ConfigError("--device cuda with --executor slurm needs GPUs: add --gpus-per-job 1 (or "
                                  "resources: {gpus_per_job: 1} in the suite)")
            cli_resources = Resources(timeout_min=timeout_min, gpus_per_job=gpus_per_job, cpus_per_job=cpus_per_job,
                                      mem_gb=mem_gb, partition=partition)
            options = SlurmOptions(results=results, data_root=data_root_from(data_root), device=device.value,
                                   download=download, resources=cli_resources, array_parallelism=array_parallelism,
                                   jobs_per_task=jobs_per_task, wait=wait, job_name=f"vrbench-{loaded.name}",
                                   tracking=tracking)
            runner = SlurmRunner(loaded.jobs, options, resources=resources)
        else:
            from vrbench.runner.local import LocalRunner, RunOptions
            from vrbench.runner.placement import parse_gpu_list

            gpu_list = parse_gpu_list(gpus) if gpus is not None else None
            if gpu_list is not None and device is Device.cpu:
                raise ConfigError("--gpus and --device cpu contradict each other; drop one")
            options = RunOptions(results=results, data_root=data_root_from(data_root), device=device.value,
                                 slots=slots, threads=threads, gpus=gpu_list, download=download,
                                 timeout_min=timeout_min, preload=preload, tracking=tracking)
            runner = LocalRunner(loaded.jobs, options, resources=resources)
            console.print(f"suite [bold]{literal(loaded.name)}[/]: {len(loaded.jobs)} jobs -> {literal(results)}/runs "
                          f"on {len(runner.slots)} slot(s): " + "; ".join(s.label() for s in runner.slots),
                          highlight=False)
        follow = executor is Executor.local or wait
        if executor is Executor.slurm:
            console.print(f"suite [bold]{literal(loaded.name)}[/]: {len(loaded.jobs)} jobs -> {literal(results)}/runs "
                          "via Slurm",
                          highlight=False)
        if follow:
            with RunDisplay(len(loaded.jobs), console) as display:
                runner.listener = display
                summary = runner.run()
        else:
            summary = runner.run()
            describe_submission(runner, lambda text: console.print(escape(text), highlight=False))
        if summary.disk_full:
            raise typer.Exit(_stopped_by_full_disk(summary, results))
        _ingest(results)
    except VrbenchError as exc:
        raise _fail(exc) from None
    if not follow:
        console.print(f"submitted: {len(summary.submitted)}, {len(summary.skipped)} already done, "
                      f"{len(summary.elsewhere)} busy elsewhere; see `vrbench status {literal(suite)}`; "
                      "`vrbench collect` indexes the results", highlight=False)
        return
    console.print(f"finished: {len(summary.done)} ran, {len(summary.skipped)} already done, "
                  f"{len(summary.failed)} failed, {len(summary.elsewhere)} busy elsewhere", highlight=False)
    if summary.interrupted:
        if executor is Executor.slurm:
            console.print("stopped following: the Slurm jobs go on; see `vrbench status` and `vrbench collect`")
        else:
            console.print("interrupted: re-run the same command to resume from the last checkpoints")
        raise typer.Exit(exit_code_for(summary.signal or signal.SIGINT))  # 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP
    if summary.failed:
        console.print(f"[red]{len(summary.failed)} job(s) failed[/]; see `vrbench status {literal(suite)}`")
        raise typer.Exit(1)


def _tracking(loaded, requested: list[str] | None) -> dict:
    """The trackers each job logs to (suite's `tracker:` plus --tracker), with one warning per missing package."""
    from vrbench.tracking import missing_packages, resolve_trackers

    names = resolve_trackers(loaded.trackers, requested)
    for line in missing_packages(names):
        err_console.print(f"[yellow]warning:[/] {line}", highlight=False)
    return {"trackers": names, "suite": loaded.name}


def _stopped_by_full_disk(summary, results: Path) -> int:
    """One message for a run that a full disk stopped; exit code 1. Finished results are kept, the other jobs
    keep their last checkpoints, and the index is updated if there is room for it."""
    from vrbench.errors import DiskSpaceError

    kept = len(summary.done) + len(summary.skipped)
    try:
        _ingest(results, quiet=True)
        index = "the index is up to date"
    except DiskSpaceError:
        index = "the index had no room either and was removed (the next run rebuilds it)"
    err_console.print(f"[bold red]error:[/] {escape(summary.disk_full)}. The run stopped: {kept} finished job(s) are "
                      f"kept, the others keep their last checkpoints, {index}. Free some space there and re-run the "
                      "same command to finish the rest.", highlight=False, soft_wrap=True)
    return 1


def _ingest(results: Path, quiet: bool = False, only_if_stale: bool = False) -> None:
    """Bring the index up to date with the run directories; ``only_if_stale``: a read-only check first, and no
    ingestion (nor DuckDB's write lock) when the index is already current."""
    from vrbench.store.db import DB_NAME, ingest, refresh

    stats = refresh(results, results / DB_NAME) if only_if_stale else ingest(results, results / DB_NAME)
    if quiet or stats is None:
        return
    console.print(f"indexed in {literal(results / DB_NAME)}: {stats.summary()}", highlight=False)
    for problem in stats.problems:  # damaged files are reported, never deleted
        err_console.print(f"[yellow]warning:[/] {literal(problem)}", highlight=False)


@app.command()
def status(
    suite: Annotated[Path, typer.Argument(help="suite YAML")],
    results: ResultsOpt = DEFAULT_RESULTS,
) -> None:
    """List each job of a suite as done, running, pending, failed (with its error) or stale."""
    from vrbench.suite import load_suite

    try:
        loaded = load_suite(suite)
        _print_status(loaded.jobs, results, f"{loaded.name}: {len(loaded.jobs)} jobs")
    except VrbenchError as exc:  # e.g. a run directory that is a symbolic link
        raise _fail(exc) from None


def _print_status(jobs, results: Path, title: str) -> None:
    from collections import Counter

    from vrbench.runner.local import describe_states
    from vrbench.share.conflicts import notes

    table = Table(title=literal(title), title_justify="left")
    table.add_column("run_id", no_wrap=True)
    for column in ("method", "backbone", "dataset", "seed", "epochs", "lr", "batch"):
        table.add_column(column)
    table.add_column("status", no_wrap=True)
    table.add_column("detail", overflow="fold")
    counts: Counter[str] = Counter()
    colours = {"done": "green", "failed": "red", "running": "cyan", "queued": "blue", "stale": "yellow",
               "corrupt": "red"}
    conflicts = notes(results, {job.run_id for job in jobs})  # jobs with a second result (vrbench import)
    for job, state in describe_states(jobs, results):
        c = job.config
        dataset = c["dataset"] + (f" ({c['subsample']})" if c.get("subsample") not in (None, "all") else "")
        if c.get("shots"):
            dataset += f" {c['shots']}-shot"
        row = [literal(cell) for cell in (job.run_id, job.method, c["backbone"], dataset, c["seed"],
                                          c.get("epochs", 0), f"{c['lr']:g}" if "lr" in c else "-",
                                          c.get("batch_size", "-"))]
        counts[state.status] += 1
        colour = colours.get(state.status, "white")
        conflict = conflicts.get(job.run_id)
        counts["conflicts"] += conflict is not None
        flag = f"; [red]{literal(conflict)}[/]" if conflict else ""
        row += [f"[{colour}]{literal(state.status)}[/]", literal(state.detail) + flag]
        table.add_row(*row)
    console.print(table)
    console.print("  ".join(f"{name}: {count}" for name, count in sorted(counts.items()) if count))


class Format(str, Enum):
    md = "md"
    html = "html"
    latex = "latex"


@app.command()
def report(
    results: ResultsOpt = DEFAULT_RESULTS,
    format: Annotated[Format, typer.Option(
        "--format", "-f", help="md (for a README), html (figures, sortable tables) or latex (booktabs)")] = Format.md,
    out: Annotated[Path | None, typer.Option(help="output directory (default: RESULTS/reports; files of an older "
                                             "report there are replaced)")] = None,
    suite: Annotated[Path | None, typer.Option(help="only the jobs of this suite")] = None,
    paper: Annotated[str | None, typer.Option(help="reference table to compare with, e.g. ilm_vp_cvpr23")] = None,
    group_by: Annotated[str, typer.Option(help="extra row keys, e.g. device,precision")] = "",
    heatmap: Annotated[list[str] | None, typer.Option(help="draw this run's label mapping (HTML; repeatable)")] = None,
    with_paper: Annotated[bool, typer.Option(help="LaTeX: the published value beside ours")] = False,
    intervals: Annotated[bool, typer.Option(help="each cell's 95 % interval of the mean in the tables")] = False,
) -> None:
    """Write the leaderboard (ours next to the published numbers) to RESULTS/reports/index.md, .html or .tex."""
    from vrbench.report import write_report
    from vrbench.report.output import default_out_dir
    from vrbench.store.db import DB_NAME

    try:
        run_ids, reference_rows, labels = None, None, None
        if suite is not None:
            from vrbench.suite import load_suite

            loaded = load_suite(suite)
            run_ids = {job.run_id for job in loaded.jobs}
            labels = {job.run_id: job.method for job in loaded.jobs}  # the suite's row names, not the stored ones
            paper = paper or loaded.reference.get("paper")
            reference_rows = loaded.reference.get("rows")
        _ingest(results, only_if_stale=True)
        keys = tuple(key.strip() for key in group_by.split(",") if key.strip())
        written = write_report(results / DB_NAME, out or default_out_dir(results), fmt=format.value, run_ids=run_ids,
                               paper=paper, group_by=keys, heatmaps=tuple(heatmap or ()),
                               reference_rows=reference_rows, with_paper=with_paper, labels=labels,
                               intervals=intervals)
    except VrbenchError as exc:
        raise _fail(exc) from None
    from vrbench.report.terminal import print_written

    print_written(console, written)


class CompareFormat(str, Enum):
    table = "table"
    json = "json"


@app.command()
def compare(
    a: Annotated[str, typer.Argument(metavar="A", help="method A, e.g. padding+blm")],
    b: Annotated[str, typer.Argument(metavar="B", help="method B, e.g. padding+ilm")],
    results: ResultsOpt = DEFAULT_RESULTS,
    suite: Annotated[Path | None, typer.Option(help="only the jobs of this suite")] = None,
    rule: Annotated[str | None, typer.Option(
        help="selection rule: final, best_test or best_val (default: best_test; prompt learning: final)")] = None,
    backbone: Annotated[str | None, typer.Option(help="only runs on this backbone")] = None,
    format: Annotated[CompareFormat, typer.Option("--format", "-f", help="table or json")] = CompareFormat.table,
    protocol: Annotated[str | None, typer.Option(help="vr, base2novel, fewshot, cross_dataset or "
                                                 "domain_generalization (default: the one both have)")] = None,
    shots: Annotated[int | None, typer.Option(help="prompt learning: only runs with this many shots")] = None,
    subsample: Annotated[str | None, typer.Option(help="base2novel: base or new (novel) classes, or hm (the "
                                                "per-seed HM of the two)")] = None,
    source_dataset: Annotated[str | None, typer.Option(help="transfer: prompts trained on this dataset")] = None,
) -> None:
    """Is A better than B? Paired differences over shared seeds, per dataset and across datasets."""
    from vrbench.compare import Choice, as_json, compare_runs, print_table
    from vrbench.store.db import DB_NAME

    try:
        run_ids = None
        if suite is not None:
            from vrbench.suite import load_suite

            run_ids = {job.run_id for job in load_suite(suite).jobs}
        _ingest(results, quiet=format is CompareFormat.json, only_if_stale=True)
        result, selection = compare_runs(results / DB_NAME, a, b, rule, backbone, run_ids,
                                         Choice(protocol, shots, subsample, source_dataset))
    except VrbenchError as exc:
        raise _fail(exc) from None
    if format is CompareFormat.json:
        print(as_json(result, a, b, selection, backbone))
    else:
        print_table(result, a, b, selection, console)


@app.command()
def site(
    out: Annotated[Path, typer.Option(help="the site's folder (created; a folder vrbench did not build is refused)")],
    results: ResultsOpt = DEFAULT_RESULTS,
    suite: Annotated[list[Path] | None, typer.Option(help="a page per published table of this suite's paper and "
                                                     "one of all its runs (repeatable; default: one table of "
                                                     "every run)")] = None,
) -> None:
    """Write the static leaderboard site (docs/site.md); pages whose data did not change are not rewritten."""
    from vrbench.site.command import site_command

    try:
        _ingest(results, only_if_stale=True)
        console.print(site_command(results, out, suite or []), highlight=False)
    except VrbenchError as exc:
        raise _fail(exc) from None


@app.command()
def collect(results: ResultsOpt = DEFAULT_RESULTS) -> None:
    """(Re)build the DuckDB index from the run directories; safe to run any time.

    Jobs whose Slurm task ended without a result are first recorded as failed (with the Slurm state), so the
    index lists them and a re-run resumes them.
    """
    from vrbench.runner.status import reconcile

    try:
        ended = reconcile(results)
        if ended:
            console.print(f"recorded {len(ended)} job(s) whose Slurm task ended without a result: "
                          + ", ".join(ended), highlight=False)
        _ingest(results)
    except VrbenchError as exc:
        raise _fail(exc) from None


@app.command("export")
def export_(
    out: Annotated[Path, typer.Option("--out", "-o", help="bundle file (.tar, or .tar.gz / .tgz compressed)")],
    results: ResultsOpt = DEFAULT_RESULTS,
    suite: Annotated[Path | None, typer.Option(help="only the done jobs of this suite")] = None,
    run_id: Annotated[list[str] | None, typer.Option("--run-id", help="only this run (repeatable)")] = None,
    with_checkpoints: Annotated[bool, typer.Option(help="include checkpoint.pt files")] = False,
) -> None:
    """Pack finished runs (config, env, metrics, mapping, result) with a checksummed manifest (docs/leaderboard.md)."""
    from vrbench.share.commands import export_runs

    try:
        console.print(export_runs(out, results, suite, run_id, with_checkpoints), highlight=False)
    except VrbenchError as exc:
        raise _fail(exc) from None


@app.command("import")
def import_(
    bundles: Annotated[list[Path], typer.Argument(help="bundle files written by `vrbench export`")],
    results: ResultsOpt = DEFAULT_RESULTS,
) -> None:
    """Merge bundles by run id: new runs added, identical ones skipped, a different result kept beside ours."""
    from rich.markup import escape

    from vrbench.share.commands import import_bundles

    try:
        lines, warnings, refused = import_bundles(bundles, results)
    except VrbenchError as exc:
        raise _fail(exc) from None
    for line in lines:
        console.print(escape(line), highlight=False)
    for warning in warnings:  # member and file names are the bundle's: never markup
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    for refusal in refused:
        err_console.print(f"[bold red]error:[/] {escape(refusal)}", highlight=False, soft_wrap=True)
    if refused:
        raise typer.Exit(2)


class Listing(str, Enum):
    methods = "methods"
    backbones = "backbones"
    datasets = "datasets"
    suites = "suites"
    references = "references"


@app.command()
def doctor(
    results: ResultsOpt = DEFAULT_RESULTS,
    data_root: Annotated[Path | None, typer.Option(help="dataset root (default: $VRBENCH_DATA, else ./data)")] = None,
    suite: Annotated[Path | None, typer.Option(help="also require this suite's datasets and weights")] = None,
    min_free_gb: Annotated[float | None, typer.Option(min=0, help="free disk below which the results directory "
                                                      "or the cache counts as full (default 2)")] = None,
    gpu_check: Annotated[bool, typer.Option("--gpu-check", help="also run short jobs on each visible GPU: fp16 "
                                            "against fp32, speed, memory, the CPU-only switches")] = False,
) -> None:
    """What this machine can run: versions, devices, disk, datasets, weights, Slurm, switches (exit 1: problems)."""
    from vrbench.doctor import run_doctor

    raise typer.Exit(run_doctor(console, results, data_root, suite, min_free_gb, gpu_check))


@app.command("ls")
def ls(what: Annotated[Listing, typer.Argument(help="what to list")],
       coverage: Annotated[bool, typer.Option("--coverage", help="references: per published table, how many "
                                              "cells a suite job reproduces, and why the others have none")] = False,
       suite: Annotated[list[Path] | None, typer.Option(help="with --coverage: the suite(s) to check (default: "
                                                         "every ./suites/*.yaml that names a reference paper)")
                        ] = None) -> None:
    """List the registered methods, backbones or datasets, the published reference tables, or ./suites.

    Methods, backbones and datasets that come from a plugin name its package.
    """
    if coverage or suite:
        if what is not Listing.references or not coverage:
            raise _fail(ConfigError("--coverage and --suite go with `vrbench ls references --coverage`"))
        _print_coverage(suite or [])
        return
    try:
        table = _listing(what)
    except VrbenchError as exc:
        raise _fail(exc) from None
    console.print(table)


def _listing(what: Listing) -> Table:
    table = Table(title=what.value, title_justify="left")
    if what is Listing.methods:
        from vrbench.methods import INPUTS, MAPPINGS

        for column in ("axis", "name", "version", "source", "hyperparameters", "description"):
            table.add_column(column)
        from vrbench.methods.clip_catalog import CLIP_METHODS

        for axis, registry in (("input", INPUTS), ("mapping", MAPPINGS), ("method", CLIP_METHODS)):
            for entry in registry:  # "method": the CLIP prompt-learning axis (its defaults are the recipe)
                settings = {**entry.params, **getattr(entry, "late_params", {})}
                if axis == "method":
                    settings.update(getattr(entry, "defaults", {}))
                params = ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in settings.items())
                _add_row(table, axis, entry.name, str(entry.version), _source(registry, entry.name), params or "-",
                              entry.description)
    elif what is Listing.backbones:
        from vrbench.backbones import BACKBONES

        for column in ("name", "input", "classes", "mean/std", "weights", "offline", "source"):
            table.add_column(column)
        for b in BACKBONES:
            classes = "text" if b.is_clip else str(b.num_classes)  # CLIP classifies against class-name embeddings
            _add_row(table, b.name, str(b.input_size), classes, f"{b.mean[0]}/{b.std[0]}", b.weights,
                          "yes" if b.offline else "no", _source(BACKBONES, b.name))
    elif what is Listing.datasets:
        from vrbench.datasets import DATASETS

        for column in ("name", "classes", "train", "test", "VR size", "source", "offline", "provided by"):
            table.add_column(column)
        for d in DATASETS:
            _add_row(table, d.name, str(d.num_classes), str(d.train_size), str(d.test_size), str(d.vr_image_size),
                          d.source, "yes" if d.offline else "no", _source(DATASETS, d.name))
    elif what is Listing.references:
        from collections import Counter

        from vrbench.report.references import load_references

        for column in ("paper", "rows", "tables (rows)", "confidence"):
            table.add_column(column, overflow="fold")
        for stem, rows in load_references().items():
            tables = Counter(row.table for row in rows)
            confidence = Counter(row.confidence for row in rows)
            _add_row(table, stem, str(len(rows)), "; ".join(f"{t} ({n})" for t, n in tables.items()) or "(none yet)",
                          ", ".join(f"{c}: {n}" for c, n in confidence.items()) or "-")
    else:
        import yaml

        for column in ("suite", "name", "description"):
            table.add_column(column)
        for path in sorted(Path("suites").glob("*.yaml")):
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError:
                data = {"description": "(malformed YAML: run `vrbench run --dry-run` on it for details)"}
            _add_row(table, str(path), str(data.get("name", "")), str(data.get("description", "")))
    return table


def _add_row(table: Table, *cells: object) -> None:
    """A row of names and descriptions from registries, plugins and suite files: shown as typed, never as markup."""
    table.add_row(*map(literal, cells))


def _source(registry, name: str) -> str:
    """'built-in', or the plugin package and version (or local module and code digest) an entry comes from."""
    source = registry.source(name)
    if source.builtin:
        return "built-in"
    return f"{source.module} (local, {source.version})" if source.module else f"{source.package} {source.version}"


def _print_coverage(suite_paths: list[Path]) -> None:
    """`ls references --coverage`: one line per published table, then every uncovered row with its reason."""
    import yaml

    from vrbench.report.coverage import NO_PUBLISHED_VALUES, coverage, summarize_uncovered
    from vrbench.report.references import known_papers
    from vrbench.suite import load_suite

    if not suite_paths:
        for path in sorted(Path("suites").glob("*.yaml")):
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError:
                continue  # `vrbench run --dry-run` on it explains; the other suites still count
            if isinstance(data, dict) and (data.get("reference") or {}).get("paper"):
                suite_paths.append(path)
    try:
        suites = [load_suite(path) for path in suite_paths]
    except VrbenchError as exc:
        raise _fail(exc) from None
    papers = sorted({s.reference.get("paper") for s in suites} - {None}) if suite_paths and suites else []
    if not suite_paths:
        papers = known_papers()
    console.print("suites: " + literal(", ".join(str(p) for p in suite_paths) or "(none found in ./suites)"),
                  highlight=False)
    table = Table(title="published cells covered by a suite job", title_justify="left")
    for column in ("paper", "table", "cells", "covered", "not covered"):
        table.add_column(column, overflow="fold")
    results = coverage(suites, papers)
    for stem in papers:
        if stem in NO_PUBLISHED_VALUES and not any(t.paper == stem for t in results):
            _add_row(table, stem, "(all)", "0", "-", NO_PUBLISHED_VALUES[stem])
    for t in results:
        _add_row(table, t.paper, t.table, str(len(t.cells)), str(len(t.covered)), str(len(t.uncovered)))
    console.print(table)
    for t in results:
        for row, reason, n in summarize_uncovered(t):
            console.print(literal(f"  {t.paper} · {t.table} · {row}: {n} cell(s) not covered: {reason}"),
                          highlight=False)


def main() -> None:
    try:
        app()
    except VrbenchError as exc:  # pragma: no cover - commands catch their own; this is the last net
        err_console.print(f"[bold red]error:[/] {escape(exc)}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()

"""``build_report``: read the index, build the report model, write index.md / index.html / index.tex and cells.csv
(and, for HTML, the figures as figures/*.png beside the page that embeds them)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from vrbench.errors import ConfigError, ResultsError
from vrbench.report.labels import use_labels
from vrbench.report.markdown import render_markdown
from vrbench.report.model import (
    SOURCE_GROUP,
    ReportModel,
    build_boards,
    collect_footnotes,
    count_runs,
    has_plugin_runs,
    load_cells,
    load_conflicts,
    load_failed,
    load_scores,
)
from vrbench.report.output import record_report, report_key, unrecorded_report_files
from vrbench.report.prompt import PROMPT_RULE, build_prompt_sections, load_prompt_runs
from vrbench.report.references import PAPER_RULE, check_paper
from vrbench.store.db import check_schema, connect
from vrbench.store.rundir import atomic_write_bytes, atomic_write_text

FORMATS: dict[str, str] = {"md": "index.md", "html": "index.html", "latex": "index.tex"}
FIGURES_DIR = "figures"


def load_model(db_path: Path, run_ids: set[str] | None = None, paper: str | None = None,
               group_by: tuple[str, ...] = (), reference_rows: dict | None = None,
               labels: dict[str, str] | None = None, show_intervals: bool = False) -> ReportModel:
    """Everything a report shows, read through one read-only connection; ``labels`` (run id -> row name, from the
    suite being reported) replace the method names stored in the index."""
    check_paper(paper)
    con = connect(db_path, read_only=True)
    try:
        check_schema(con, db_path)
        use_labels(con, labels)
        if SOURCE_GROUP not in group_by and has_plugin_runs(con, run_ids):
            group_by = (*group_by, SOURCE_GROUP)  # plugin rows name their package and version
        cells = load_cells(con, run_ids, tuple(group_by))
        scores = load_scores(con, run_ids, tuple(group_by))
        prompt_runs = load_prompt_runs(con, run_ids, tuple(group_by))
        failed = load_failed(con, run_ids)
        n_done, n_failed = count_runs(con, run_ids)
        conflicts = load_conflicts(con, run_ids)
    finally:
        con.close()
    from vrbench.report.significance import annotate, annotate_prompt

    boards = annotate(build_boards(cells, paper, reference_rows), scores)
    sections = annotate_prompt(build_prompt_sections(prompt_runs, paper, reference_rows))
    return ReportModel(
        generated_at=datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0), n_done=n_done,
        n_failed=n_failed, paper=paper, group_by=tuple(group_by), boards=boards, failed=failed,
        footnotes=collect_footnotes(boards, sections), prompt_sections=sections, show_intervals=show_intervals,
        conflicts=conflicts,
    )


def cells_csv(model: ReportModel) -> str:
    """Machine-readable cells: one line per (rule, row, dataset), with the matched published value if any."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rule", "method", "backbone", *model.group_by, "dataset", "n", "mean", "std", "min", "max",
                     "paper", "paper_table", "paper_method", "paper_value", "paper_std", "paper_rule", "diff",
                     "ci_low", "ci_high", "not_worse_than_best"])
    for board in model.boards:
        for row in board.rows:
            for dataset in board.datasets:
                cell = row.cells.get(dataset)
                if cell is None:
                    continue
                ref = cell.ref
                interval = cell.interval or (None, None)
                writer.writerow([
                    board.rule, row.method, row.backbone, *row.groups, dataset, cell.n, _num(cell.mean),
                    _num(cell.std), _num(cell.min), _num(cell.max),
                    *((ref.paper_stem, ref.table, ref.method, ref.value_text, _num(ref.std), PAPER_RULE,
                       _num(cell.diff)) if ref else ("",) * 7),
                    _num(interval[0]), _num(interval[1]), "" if cell.not_worse is None else int(cell.not_worse),
                ])
    return out.getvalue()


def prompt_cells_csv(model: ReportModel) -> str:
    """The prompt-learning tables, one line per number: seed means (with n, std, min, max and the 95 % t-interval
    ``ci_low``/``ci_high``, empty for one seed), HMs and averages (``over`` = "k/K" for an average over k of the K
    datasets it should cover; no interval: they are not means over seeds), with the published value and the mark
    (``not_worse_than_best``, docs/statistics.md)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["protocol", "rule", "method", "backbone", *model.group_by, "setting", "row", "column", "n",
                     "mean", "std", "min", "max", "over", "paper", "paper_table", "paper_method", "paper_value",
                     "paper_std", "diff", "ci_low", "ci_high", "not_worse_than_best"])
    for section in model.prompt_sections:
        for table in section.tables:
            for row in table.rows:
                for column in table.columns:
                    value = row.values.get(column)
                    if value is None:
                        continue
                    cell, ref = value.cell, value.ref
                    interval = (cell.interval if cell is not None else None) or (None, None)
                    writer.writerow([
                        section.protocol, PROMPT_RULE, row.method, row.backbone, *row.groups, row.setting, row.name,
                        column, "" if cell is None else cell.n, _num(value.mean),
                        _num(None if cell is None else cell.std), _num(None if cell is None else cell.min),
                        _num(None if cell is None else cell.max),
                        "" if value.over is None else f"{value.over[0]}/{value.over[1]}",
                        *((ref.paper_stem, ref.table, ref.method, ref.value_text, _num(ref.std), _num(value.diff))
                          if ref else ("",) * 6),
                        _num(interval[0]), _num(interval[1]),
                        "" if value.not_worse is None else int(value.not_worse),
                    ])
    return out.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _write_figures(directory: Path, figures: list) -> list[str]:
    """The PNGs the page embeds, plus their manifest; PNGs of figures the report no longer has are removed."""
    from vrbench.report.figures import MANIFEST, manifest

    directory.mkdir(exist_ok=True)
    for figure in figures:
        atomic_write_bytes(directory / f"{figure.key}.png", figure.png)
    keep = {f"{figure.key}.png" for figure in figures}
    old = directory / MANIFEST
    if old.exists():
        import json

        try:
            for key in json.loads(old.read_text(encoding="utf-8")):
                if re.fullmatch(r"[a-z0-9-]+", key) and f"{key}.png" not in keep:  # never a path elsewhere
                    (directory / f"{key}.png").unlink(missing_ok=True)
        except (OSError, ValueError, TypeError):
            pass  # a damaged manifest only costs the clean-up
    atomic_write_text(directory / MANIFEST, manifest(figures))
    return [f"{directory.name}/{name}" for name in sorted(keep | {MANIFEST})]


@dataclass(frozen=True)
class WrittenReport:
    """What ``write_report`` did: the page, every file it wrote and the older report's files it removed (paths
    relative to ``out_dir``), files of a report no manifest records (left in place), and the model it showed."""

    path: Path
    out_dir: Path
    written: list[str]
    removed: list[str]
    unrecorded: list[str]
    model: ReportModel


def build_report(db_path: Path, out_dir: Path, fmt: str = "md", run_ids: set[str] | None = None,
                 paper: str | None = None, group_by: tuple[str, ...] = (), heatmaps: tuple[str, ...] = (),
                 reference_rows: dict | None = None, with_paper: bool = False,
                 labels: dict[str, str] | None = None, intervals: bool = False) -> Path:
    """``write_report``, returning only the page's path."""
    return write_report(db_path, out_dir, fmt, run_ids, paper, group_by, heatmaps, reference_rows, with_paper,
                        labels, intervals).path


def write_report(db_path: Path, out_dir: Path, fmt: str = "md", run_ids: set[str] | None = None,
                 paper: str | None = None, group_by: tuple[str, ...] = (), heatmaps: tuple[str, ...] = (),
                 reference_rows: dict | None = None, with_paper: bool = False,
                 labels: dict[str, str] | None = None, intervals: bool = False) -> WrittenReport:
    """Write ``out_dir/index.md``, ``index.html`` or ``index.tex`` (and ``cells.csv`` beside it, plus
    ``prompt_cells.csv`` when prompt-learning runs are selected, and ``figures/*.png`` for HTML); return its path.

    ``run_ids`` restricts the report to those runs (e.g. one suite's jobs); ``paper`` (a reference CSV stem such
    as ``ilm_vp_cvpr23``) takes published values from that paper only; ``group_by`` adds row-key columns such as
    ``device`` or ``precision``; ``heatmaps`` lists run ids whose final label mapping the HTML page draws
    (their run directories are looked up beside the database); ``with_paper`` puts the published values beside
    ours in the LaTeX tables (Markdown and HTML always show them); ``labels`` (run id -> row name) name the rows
    as the suite being reported does (``vrbench report --suite``); ``intervals`` prints each cell's 95 % interval
    in the tables (cells.csv always has it). Files are written with the user's umask.
    Files an older report wrote into ``out_dir`` and this one did not are then removed (``report.output``).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"Unknown report format {fmt!r}: choose one of {', '.join(FORMATS)}.")
    if heatmaps and fmt != "html":
        raise ConfigError("label-mapping heatmaps are drawn in HTML reports: add --format html")
    if with_paper and fmt != "latex":
        raise ConfigError("--with-paper is for --format latex: Markdown and HTML reports always show the published "
                          "values")
    model = load_model(Path(db_path), run_ids, paper, tuple(group_by), reference_rows, labels,
                       show_intervals=intervals)
    figures = []
    if fmt == "html":
        from vrbench.report.figures import build_figures
        from vrbench.report.html import render_html

        figures = build_figures(Path(db_path), model, run_ids, previous=Path(out_dir) / FIGURES_DIR, labels=labels)
        text = render_html(model, figures)
        if heatmaps:
            from vrbench.report.heatmap import insert_heatmaps, render_heatmap

            text = insert_heatmaps(text, [render_heatmap(Path(db_path).parent, run_id) for run_id in heatmaps])
    elif fmt == "latex":
        from vrbench.report.latex import render_latex

        text = render_latex(model, with_paper)
    else:
        text = render_markdown(model)
    out_dir = Path(out_dir)
    csv_text = cells_csv(model)
    prompt_text = prompt_cells_csv(model) if model.prompt_sections else None
    key = report_key(str(Path(db_path).resolve()), sorted(run_ids) if run_ids is not None else None, paper,
                     list(model.group_by), csv_text, prompt_text, model.n_done, model.n_failed)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / FORMATS[fmt]
        written = [FORMATS[fmt], "cells.csv"]
        if figures:
            written += _write_figures(out_dir / FIGURES_DIR, figures)
        atomic_write_text(path, text)
        atomic_write_text(out_dir / "cells.csv", csv_text)
        if prompt_text is not None:
            atomic_write_text(out_dir / "prompt_cells.csv", prompt_text)
            written.append("prompt_cells.csv")
        removed = record_report(out_dir, fmt, key, written)
    except OSError as exc:
        raise ResultsError(f"Cannot write the report to {out_dir}: {exc.strerror or exc}. "
                           "Choose a writable directory with --out.") from exc
    return WrittenReport(path, out_dir, written, removed, unrecorded_report_files(out_dir, written), model)

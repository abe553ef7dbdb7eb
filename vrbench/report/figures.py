"""Figures of the HTML report, drawn with matplotlib (Agg, no pyplot state) as PNG bytes.

Learning curves per dataset, a per-dataset comparison of the methods, the gap to the published values, and the
label mapping of each method's best run. The data come from the index (one read-only connection) and the run
directories (mapping.json); matplotlib is imported only here, when an HTML report is rendered, so `--help` and the
Markdown report never pay for it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vrbench.errors import ResultsError
from vrbench.report.heatmap import MappingMatrix, mapping_matrix
from vrbench.report.labels import use_labels
from vrbench.report.model import PROMPT_PROTOCOLS, Board, ReportModel, Row, _dataset_key, _filter
from vrbench.report.references import PAPER_RULE
from vrbench.store.db import check_schema, connect
from vrbench.store.rundir import MAPPING, run_dir

if TYPE_CHECKING:
    import duckdb

MAX_LINES = 10  # methods per learning-curve panel and per comparison panel (the best by mean)
MAX_HEATMAPS = 12  # methods whose best run's mapping is drawn
MAX_HEATMAP_TICKS = 40  # class names on a heatmap axis; beyond that the axis is left unlabelled
DPI = 100
FIGURES_VERSION = "2"  # bump when a drawing changes, so cached figures are drawn again
MANIFEST = "figures.json"
MAPPING_PREFIX = "mapping-"  # keys of the label-mapping figures (the page puts them after the tables)


@dataclass(frozen=True)
class Figure:
    """One figure: ``key`` names the file (figures/<key>.png) and the page anchor (fig-<key>)."""

    key: str
    title: str
    caption: str
    alt: str
    png: bytes
    digest: str = ""  # of the data drawn (see build_figures): an unchanged figure is not drawn twice


@dataclass(frozen=True)
class CurvePoint:
    epoch: int
    n: int
    mean: float
    std: float | None


Curves = dict[str, dict[str, list[CurvePoint]]]  # dataset -> row label -> points by epoch


def _curve_rows_sql(run_ids: set[str] | None) -> tuple[str, list[Any]]:
    """Test accuracy per epoch, mean and sample std over seeds (rounded to 6 decimals: DuckDB's parallel sums
    differ in the last bits from one query to the next), per (dataset, method · backbone): leaderboard runs only
    (prompt-learning runs train on other class subsets than they test)."""
    where, params = _filter(run_ids, "r.run_id")
    sql = f"""SELECT r.dataset AS dataset, r.method || ' · ' || r.backbone AS label, e.epoch AS epoch, count(*) AS n,
                     round(avg(e.test_acc), 6) AS mean, round(stddev_samp(e.test_acc), 6) AS std
              FROM epochs e JOIN runs r ON r.run_id = e.run_id
              WHERE r.status = 'done' AND e.test_acc IS NOT NULL
                AND (r.protocol IS NULL OR NOT list_contains(?, r.protocol)) AND {where}
              GROUP BY ALL"""
    return sql, [list(PROMPT_PROTOCOLS), *params]


def load_curves(con: duckdb.DuckDBPyConnection, run_ids: set[str] | None) -> Curves:
    """The learning curves of the leaderboard runs (see _curve_rows_sql), by dataset and row label."""
    sql, params = _curve_rows_sql(run_ids)
    curves: Curves = {}
    for dataset, label, epoch, n, mean, std in con.execute(f"{sql} ORDER BY ALL", params).fetchall():
        curves.setdefault(dataset, {}).setdefault(label, []).append(CurvePoint(epoch, n, mean, std))
    return curves


def curves_fingerprint(con: duckdb.DuckDBPyConnection, run_ids: set[str] | None) -> tuple[int, str]:
    """(number of curve points, a digest of all of them), computed inside DuckDB: a report whose learning curves
    are unchanged learns so without fetching 60,000 points into Python (10,000 runs of 130 epochs)."""
    sql, params = _curve_rows_sql(run_ids)
    count, digest = con.execute(
        f"""SELECT count(*), md5(coalesce(string_agg(concat_ws('|', dataset, label, epoch, n, mean,
                                                             coalesce(CAST(std AS VARCHAR), '-')),
                                                   chr(10) ORDER BY dataset, label, epoch), ''))
            FROM ({sql})""", params).fetchone()
    return count, digest


def best_runs(con: duckdb.DuckDBPyConnection, run_ids: set[str] | None) -> list[tuple[str, str]]:
    """(method, run_id) of every done leaderboard run, best first within each method (best test accuracy, then
    final accuracy, then run id)."""
    where, params = _filter(run_ids, "run_id")
    return con.execute(
        f"""SELECT method, run_id FROM runs
            WHERE status = 'done' AND (protocol IS NULL OR NOT list_contains(?, protocol)) AND {where}
            ORDER BY method, coalesce(best_test_acc, final_acc) DESC NULLS LAST, final_acc DESC NULLS LAST,
                     run_id""", [list(PROMPT_PROTOCOLS), *params]).fetchall()


def build_figures(db_path: Path, model: ReportModel, run_ids: set[str] | None = None,
                  previous: Path | None = None, labels: dict[str, str] | None = None) -> list[Figure]:
    """Every figure the report's data allow, in page order; none when nothing has finished.

    ``previous`` is a figures directory written before (``figures/`` of the report): a figure whose data have not
    changed since is read back from it instead of drawn again, so re-running a report over the same runs does not
    pay for matplotlib at all. ``labels`` name the rows as the model's tables do (see report/labels.py).
    """
    cache = _read_manifest(previous)
    board = _comparison_board(model)
    results = Path(db_path).parent
    con = connect(db_path, read_only=True)
    try:
        check_schema(con, db_path)
        use_labels(con, labels)
        plans: list[_Plan] = []
        points, curves_digest = curves_fingerprint(con, run_ids)
        if points:  # known unchanged from a digest computed in DuckDB; the points are fetched only to draw them
            plans.append(_Plan(LEARNING_CURVES, curves_digest, lambda: load_curves(con, run_ids), learning_curves))
        if board is not None:
            plans.append(_Plan.of("comparison", board, comparison))
            if board.has_references:
                plans.append(_Plan.of("paper-gap", board, paper_gap))
        plans += _cd_plans(model)
        for mapping in _best_mappings(results, best_runs(con, run_ids)):
            plans.append(_Plan.of(_safe_key(f"{MAPPING_PREFIX}{mapping.method}"), mapping, mapping_heatmap))
        entries = []  # (plan, digest, cached figure or None, data to draw it from or None)
        for plan in _unique_keys(plans):
            digest = _digest(plan.key, plan.fingerprint)
            figure = _cached(previous, cache.get(plan.key), plan.key, digest)
            # data are loaded while the connection is open, and drawn after it is closed
            entries.append((plan, digest, figure, None if figure else plan.load()))
    finally:
        con.close()
    return [figure or replace(plan.draw(data), key=plan.key, digest=digest)
            for plan, digest, figure, data in entries]


LEARNING_CURVES = "learning-curves"


def cd_key(rule: str) -> str:
    """The key of a leaderboard's critical-difference diagram."""
    return _safe_key(f"critical-difference-{rule}")


def _cd_plans(model: ReportModel) -> list[_Plan]:
    """A critical-difference diagram per leaderboard with ranks (vrbench.report.significance)."""
    from vrbench.report.cd_diagram import CDData, critical_difference

    return [_Plan.of(cd_key(b.rule), CDData(b.rule, b.summary.ranks), critical_difference)
            for b in model.boards if b.summary is not None]


@dataclass(frozen=True)
class _Plan:
    """A figure the report may draw: ``fingerprint`` stands for its data (a cached PNG with the same digest is
    reused), ``load`` fetches the data only when it must be drawn."""

    key: str
    fingerprint: str
    load: Callable[[], Any]
    draw: Callable[[Any], Figure]

    @classmethod
    def of(cls, key: str, data: Any, draw: Callable[[Any], Figure]) -> _Plan:
        """A plan whose data are already in memory: the fingerprint is their canonical form."""
        return cls(key, repr(_canonical(data)), lambda: data, draw)


def _digest(key: str, data: str) -> str:
    """What a cached figure must match: the drawing code's version, the figure and its data."""
    return hashlib.sha256(f"{FIGURES_VERSION}\n{key}\n{data}".encode()).hexdigest()


_SCALARS = (int, str, bool, type(None))
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _canonical(data: Any) -> Any:
    """``data`` as plain values with floats rounded to 6 decimals: DuckDB's parallel sums differ in the last bits
    from one query to the next, and such noise must not count as changed data. (Dispatch on the exact type, with
    dataclass fields looked up once per class: 10,000 runs' learning curves are 60,000 points to canonicalise.)"""
    kind = type(data)
    if kind is float:
        return round(data, 6)
    if kind in _SCALARS:
        return data
    if kind is dict:
        return tuple((k, _canonical(v)) for k, v in data.items())
    if kind is list or kind is tuple:
        return tuple(_canonical(v) for v in data)
    names = _FIELD_NAMES.get(kind)
    if names is None and dataclasses.is_dataclass(data) and not isinstance(data, type):
        names = _FIELD_NAMES.setdefault(kind, tuple(f.name for f in dataclasses.fields(data)))
    if names is not None:
        return (kind.__name__, *(_canonical(getattr(data, name)) for name in names))
    if isinstance(data, float):  # numpy floats
        return round(float(data), 6)
    return data


def _unique_keys(plans: list[_Plan]) -> list[_Plan]:
    """Two method names can reduce to one file name ('a+b', 'a-b'): number the later ones."""
    seen: set[str] = set()
    out = []
    for plan in plans:
        unique, number = plan.key, 1
        while unique in seen:
            number += 1
            unique = f"{plan.key}-{number}"
        seen.add(unique)
        out.append(replace(plan, key=unique))
    return out


def manifest(figures: list[Figure]) -> str:
    """figures/figures.json: what each PNG shows and the digest of the data it was drawn from."""
    return json.dumps({f.key: {"digest": f.digest, "title": f.title, "caption": f.caption, "alt": f.alt}
                       for f in figures}, indent=1, sort_keys=True) + "\n"


def _read_manifest(directory: Path | None) -> dict[str, Any]:
    if directory is None:
        return {}
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # absent or damaged: every figure is drawn again
    return data if isinstance(data, dict) else {}


def _cached(directory: Path | None, entry: Any, key: str, digest: str) -> Figure | None:
    if directory is None or not isinstance(entry, dict) or entry.get("digest") != digest:
        return None
    try:
        png = (directory / f"{key}.png").read_bytes()
    except OSError:
        return None
    if not png.startswith(b"\x89PNG"):
        return None
    return Figure(key, str(entry.get("title", "")), str(entry.get("caption", "")), str(entry.get("alt", "")), png,
                  digest)


def _best_mappings(results: Path, candidates: list[tuple[str, str]]) -> list[MappingMatrix]:
    """The mapping of the best run of each method that has one (runs without mapping.json are skipped)."""
    chosen: dict[str, str] = {}
    for method, run_id in candidates:
        if method not in chosen and len(chosen) < MAX_HEATMAPS and _has_mapping(results, run_id):
            chosen[method] = run_id
    return [mapping_matrix(results, run_id) for run_id in chosen.values()]


def _has_mapping(results: Path, run_id: str) -> bool:
    try:
        return (run_dir(results, run_id) / MAPPING).exists()
    except ResultsError:  # a directory name that is not a run id (copied by hand): no figure, no error
        return False


def _comparison_board(model: ReportModel) -> Board | None:
    """The papers' rule when present (published values compare like for like there), else the first board."""
    return next((b for b in model.boards if b.rule == PAPER_RULE), model.boards[0] if model.boards else None)


# --------------------------------------------------------------------------------------------- drawing


def _literal_text(draw: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw with every text shown as written: method names, labels and datasets come from suites and run files,
    and matplotlib would read ``$...$`` in them as mathtext (an unbalanced one aborted the whole HTML report)."""

    @functools.wraps(draw)
    def drawn(*args: Any, **kwargs: Any) -> Figure:
        from matplotlib import rc_context

        with rc_context({"text.parse_math": False, "text.usetex": False}), warnings.catch_warnings():
            # a control character in a name has no glyph: it is drawn as a box, which is all a warning would say
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
            return draw(*args, **kwargs)

    return drawn


def _new_figure(width: float, height: float, layout: str | None = "constrained") -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    figure = MplFigure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(figure)  # the Agg backend, without touching pyplot's global state
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _colours(labels: list[str]) -> dict[str, Any]:
    """One colour per method · backbone, the same in every panel."""
    from matplotlib import colormaps

    palette = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: palette(i % palette.N) for i, label in enumerate(sorted(labels))}


def _grid(count: int, columns: int = 3) -> tuple[int, int]:
    cols = min(columns, count)
    return math.ceil(count / cols), cols


CHAR_SMALL = 0.065  # inches per character of a "small" label (DejaVu Sans at 10 pt x 0.833), a safe upper bound


@dataclass(frozen=True)
class Margins:
    """Space around a grid of panels, in inches: fixed margins instead of a layout engine, because constrained
    layout measures every tick label of every panel and cost a third of a 12-panel figure's drawing time."""

    left: float
    right: float
    bottom: float
    top: float
    wgap: float  # between panels, left to right (the next panel's y tick labels and axis label)
    hgap: float  # between panels, top to bottom (x tick labels, axis label, the next panel's title)


def _panel_figure(rows: int, cols: int, panel: tuple[float, float], margins: Margins) -> Any:
    """A figure sized for rows x cols panels of ``panel`` (width, height) inches with ``margins``."""
    width = margins.left + cols * panel[0] + (cols - 1) * margins.wgap + margins.right
    height = margins.top + rows * panel[1] + (rows - 1) * margins.hgap + margins.bottom
    figure = _new_figure(width, height, layout=None)
    figure.subplots_adjust(left=margins.left / width, right=1 - margins.right / width,
                           bottom=margins.bottom / height, top=1 - margins.top / height,
                           wspace=margins.wgap / panel[0], hspace=margins.hgap / panel[1])
    return figure


@_literal_text
def learning_curves(curves: Curves) -> Figure:
    from matplotlib.ticker import MaxNLocator

    datasets = sorted(curves, key=_dataset_key)
    rows, cols = _grid(len(datasets))
    labels_all = list({label for per in curves.values() for label in per})
    legend_width = CHAR_SMALL * max(len(label) for label in labels_all) + 0.9
    figure = _panel_figure(rows, cols, (3.7, 2.5), Margins(left=0.75, right=legend_width, bottom=0.55, top=0.35,
                                                           wgap=0.85, hgap=0.85))
    colours = _colours(labels_all)
    cut = False
    for index, dataset in enumerate(datasets):
        axes = figure.add_subplot(rows, cols, index + 1)
        per = curves[dataset]
        ranked = sorted(per, key=lambda label: -per[label][-1].mean)
        cut = cut or len(ranked) > MAX_LINES
        for label in ranked[:MAX_LINES]:
            points = per[label]
            epochs = [p.epoch for p in points]
            means = [p.mean for p in points]
            axes.plot(epochs, means, color=colours[label], label=label, linewidth=1.6,
                      marker="o" if len(points) <= 12 else None, markersize=3)
            if any(p.std is not None for p in points):
                low = [p.mean - (p.std or 0.0) for p in points]
                high = [p.mean + (p.std or 0.0) for p in points]
                axes.fill_between(epochs, low, high, color=colours[label], alpha=0.18, linewidth=0)
        axes.set_title(dataset)
        axes.set_xlabel("epoch")
        axes.set_ylabel("test accuracy (%)")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
    handles, labels = _legend_entries(figure)
    figure.legend(handles, labels, loc="upper right", fontsize="small", frameon=False)
    caption = ("Test accuracy per epoch: the line is the mean over seeds, the band ± one sample standard deviation "
               "(no band for a single seed).")
    if cut:
        caption += f" Each panel shows the {MAX_LINES} methods with the highest final mean."
    return Figure(LEARNING_CURVES, "Learning curves", caption,
                  f"Learning curves of {len(labels)} methods on {', '.join(datasets)}", _png(figure))


def _legend_entries(figure: Any) -> tuple[list[Any], list[str]]:
    """Legend entries of all panels, each label once."""
    seen: dict[str, Any] = {}
    for axes in figure.axes:
        for handle, label in zip(*axes.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    ordered = sorted(seen)
    return [seen[label] for label in ordered], ordered


def _label(row: Row) -> str:
    """The row's name as the tables print it, with its --group-by values (two rows never share a label)."""
    return " · ".join((row.label, *row.groups))


@_literal_text
def comparison(board: Board) -> Figure:
    """Per dataset, the methods' mean ± std under the board's rule; published values as black diamonds."""
    datasets = board.datasets
    rows, cols = _grid(len(datasets))
    per_panel = [sorted((r for r in board.rows if d in r.cells), key=lambda r: -r.cells[d].mean)[:MAX_LINES]
                 for d in datasets]
    tallest = max(len(p) for p in per_panel)
    names = CHAR_SMALL * max(len(_label(r)) for panel in per_panel for r in panel) + 0.25  # y tick labels
    figure = _panel_figure(rows, cols, (3.0, 0.32 * tallest + 0.2),
                           Margins(left=names, right=0.25, bottom=0.55, top=0.35, wgap=names + 0.2, hgap=0.9))
    colours = _colours([_label(r) for r in board.rows])
    any_ref = False
    for index, (dataset, ranked) in enumerate(zip(datasets, per_panel, strict=True)):
        axes = figure.add_subplot(rows, cols, index + 1)
        ranked = ranked[::-1]  # best at the top
        y = list(range(len(ranked)))
        cells = [r.cells[dataset] for r in ranked]
        axes.barh(y, [c.mean for c in cells], xerr=[c.std or 0.0 for c in cells],
                  color=[colours[_label(r)] for r in ranked], error_kw={"elinewidth": 1, "capsize": 2})
        refs = [(i, c.ref.value) for i, c in enumerate(cells) if c.ref is not None]
        if refs:
            any_ref = True
            axes.scatter([v for _, v in refs], [i for i, _ in refs], marker="D", color="black", s=18, zorder=3,
                         label="published")
        axes.set_yticks(y, [_label(r) for r in ranked], fontsize="small")
        axes.set_title(dataset)
        axes.set_xlabel(f"test accuracy (%), {board.rule}")
        axes.set_xlim(0, 100)
        axes.grid(axis="x", alpha=0.3)
    caption = (f"Mean test accuracy over seeds under the {board.rule} rule, with ± one sample standard deviation; "
               f"the {MAX_LINES} best methods per dataset.")
    if any_ref:
        caption += " Black diamonds: the published values."
    return Figure("comparison", f"Methods per dataset ({board.rule})", caption,
                  f"Bar chart of the methods' accuracy on {', '.join(datasets)}", _png(figure))


@_literal_text
def paper_gap(board: Board) -> Figure:
    """Ours − paper per cell, red below the published value, blue above; blank where no value is published."""
    import numpy as np

    datasets = [d for d in board.datasets if any(r.cells.get(d) and r.cells[d].ref for r in board.rows)]
    rows = [r for r in board.rows if any(c.ref is not None for c in r.cells.values())]
    diffs = np.full((len(rows), len(datasets)), np.nan)
    for i, row in enumerate(rows):
        for j, dataset in enumerate(datasets):
            cell = row.cells.get(dataset)
            if cell is not None and cell.diff is not None:
                diffs[i, j] = cell.diff
    limit = max(1.0, float(np.nanmax(np.abs(diffs))))
    figure = _new_figure(max(4.0, 1.0 * len(datasets) + 3.0), 0.4 * len(rows) + 1.6)
    axes = figure.add_subplot()
    image = axes.imshow(np.ma.masked_invalid(diffs), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    for i in range(len(rows)):
        for j in range(len(datasets)):
            if not np.isnan(diffs[i, j]):
                axes.text(j, i, f"{diffs[i, j]:+.1f}", ha="center", va="center", fontsize="small",
                          color="white" if abs(diffs[i, j]) > 0.6 * limit else "black")
    axes.set_xticks(range(len(datasets)), datasets, rotation=30, ha="right")
    axes.set_yticks(range(len(rows)), [_label(r) for r in rows])
    figure.colorbar(image, ax=axes, label="ours − paper (accuracy points)")
    caption = (f"Our mean minus the published value under the {board.rule} rule, in accuracy points: blue above the "
               "paper, red below; blank where the paper has no value.")
    return Figure("paper-gap", "Gap to the published values", caption,
                  f"Heatmap of ours minus paper for {len(rows)} methods and {len(datasets)} datasets", _png(figure))


@_literal_text
def mapping_heatmap(m: MappingMatrix) -> Figure:
    import numpy as np

    values = np.array(m.values, dtype=float)
    n_rows, n_cols = values.shape
    x_ticks, y_ticks = n_cols <= MAX_HEATMAP_TICKS, n_rows <= MAX_HEATMAP_TICKS
    # Fixed margins from the label lengths instead of a layout engine: the heatmaps are the most numerous figures,
    # and measuring every tick label for constrained layout costs a third of their drawing time.
    char = 0.055  # inches per character of an x-small label
    left = 0.6 + (char * max(map(len, m.sources)) if y_ticks else 0.0)
    bottom = 0.6 + (char * max(map(len, m.targets)) if x_ticks else 0.0)
    width, height = left + min(12.0, 0.22 * n_cols) + 0.3, bottom + min(12.0, 0.2 * n_rows) + 0.3
    figure = _new_figure(width, height, layout=None)
    figure.subplots_adjust(left=left / width, right=1 - 0.3 / width, bottom=bottom / height, top=1 - 0.3 / height)
    axes = figure.add_subplot()
    axes.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    if x_ticks:
        axes.set_xticks(range(n_cols), m.targets, rotation=90, fontsize="x-small")
    if y_ticks:
        axes.set_yticks(range(n_rows), m.sources, fontsize="x-small")
    axes.set_xlabel(f"target class ({m.dataset})")
    axes.set_ylabel("source class")
    title = f"Label mapping of {m.method} (best run)"
    caption = (f"{m.method} · {m.backbone} · {m.dataset} · seed {m.seed}, run {m.run_id} (the method's best run by "
               f"test accuracy): {m.description}.")
    return Figure(_safe_key(f"{MAPPING_PREFIX}{m.method}"), title, caption, f"Label-mapping heatmap of run {m.run_id}",
                  _png(figure))


def _safe_key(key: str) -> str:
    """A file and anchor name made of [a-z0-9-] only (method names come from run files)."""
    return "".join(c if c.isalnum() and c.isascii() else "-" for c in key.lower())

"""Render a ReportModel as one self-contained HTML page: inline CSS, figures as data: URIs, and a few lines of
inline JavaScript that sort and filter the tables (without it the tables read the same, unsorted). No external
asset is ever referenced, so the page opens offline from a file.

jinja2 autoescaping is on, so method or dataset names from run files cannot inject markup.

The static site (:mod:`vrbench.site`) renders the same template (its pages extend it) from the same views, with
`Links` that point cells, rows and failed runs at its pages and figures at PNG files instead of data: URIs.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vrbench.report import formatting as f
from vrbench.report.model import Board, ReportModel
from vrbench.report.prompt import PromptSection, PromptTable, Value

if TYPE_CHECKING:
    from vrbench.report.figures import Figure

TEMPLATE = "report.html.j2"
TEMPLATES = Path(__file__).parent / "templates"


class Links:
    """Where a table's cells, row labels and failed runs link to: nowhere in the one-page report; the site
    overrides these to point at its cell, method and run pages (None = no link)."""

    def cell(self, method: str, backbone: str, dataset: str) -> str | None:
        return None

    def method(self, method: str) -> str | None:
        return None

    def run(self, run_id: str) -> str | None:
        return None


NO_LINKS = Links()


@lru_cache(maxsize=8)
def template_env(*directories: Path) -> Any:
    """The jinja2 environment of the report's templates, with ``directories`` searched first (the site's
    templates extend report.html.j2)."""
    import jinja2  # only HTML needs it

    return jinja2.Environment(loader=jinja2.FileSystemLoader([*map(str, directories), str(TEMPLATES)]),
                              autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, auto_reload=False)  # the site renders thousands of pages


def _cell_view(board: Board, model: ReportModel, dataset: str, row: Any, links: Links) -> dict[str, str] | None:
    cell = row.cells.get(dataset)
    if cell is None:
        return None
    interval = cell.interval
    view = {"ours": f.ours(cell, model.show_intervals), "paper": "", "sign": "", "value": repr(cell.mean),
            "mark": "top" if cell.not_worse else "",
            "title": f"min {f.acc(cell.min)}, max {f.acc(cell.max)}, n={cell.n}"
                     + ("" if interval is None else f", 95 % interval {f.bracketed(*interval)}")
                     + (f"; {cell.conflicts} job(s) with more than one result" if cell.conflicts else ""),
            "href": links.cell(row.method, row.backbone, dataset) or ""}
    if board.has_references:
        view["paper"] = f.paper(cell, board, model)
        if cell.diff is not None:
            view["sign"] = "pos" if cell.diff >= 0.05 else "neg" if cell.diff <= -0.05 else ""
            if cell.ref is not None and cell.ref.std is not None:
                view["title"] += f"; paper {f.paper_value(cell.ref)} ± {cell.ref.std}"
    return view


def _board_view(board: Board, model: ReportModel, links: Links, cd_figures: dict[str, str]) -> dict[str, Any]:
    return {
        "rule": board.rule, "caption": board.caption, "datasets": board.datasets, "group_by": model.group_by,
        "rows": [{"label": row.label, "groups": row.groups, "average": f.average(row, board),
                  "average_value": "" if row.average is None else repr(row.average),
                  "href": links.method(row.method) or "",
                  "cells": [_cell_view(board, model, d, row, links) for d in board.datasets]} for row in board.rows],
        "notes": [f.MARK_NOTE, *([f.INTERVAL_NOTE] if model.show_intervals else []), f.AVERAGE_NOTE,
                  *f.reference_notes(board, model.paper)],
        "summary": None if board.summary is None else {
            "header": f.AGGREGATE_HEADER, "notes": f.summary_notes(board.summary),
            "rows": [{"label": line[0], "cells": [{"text": text, "value": _leading_number(text)} for text in line[1:]]}
                     for line in f.aggregate_rows(board.summary)]},
        "cd_figure": cd_figures.get(board.rule, ""),
    }


def _leading_number(text: str) -> str:
    """The sort key of '70.1 [68.2, 71.9]' (empty for '—')."""
    head = text.split(" ")[0]
    return head if head.replace(".", "", 1).isdigit() else ""


def _value_view(table: PromptTable, model: ReportModel, value: Value, column: str, href: str) -> dict[str, str]:
    view = {"ours": f.value_ours(value, model.show_intervals), "paper": "", "sign": "", "missing": "",
            "value": repr(value.mean), "mark": "top" if value.not_worse else "",
            "title": "HM of the Base and Novel seed means" if column == "HM" else "mean of the dataset means",
            "href": href}
    if value.cell is not None:
        view["title"] = f"min {f.acc(value.cell.min)}, max {f.acc(value.cell.max)}, n={value.cell.n}"
    if table.has_references:
        view["paper"] = f.value_paper(value, model)
        if value.diff is not None:
            view["sign"] = "pos" if value.diff >= 0.05 else "neg" if value.diff <= -0.05 else ""
    return view


def _prompt_view(section: PromptSection, model: ReportModel, links: Links) -> dict[str, Any]:
    tables = []
    for table in section.tables:
        keys = ["Method · backbone", *model.group_by, *([table.name_header] if table.name_header else [])]
        rows = []
        for row in table.rows:
            cells = []
            for column in table.columns:
                value = row.values.get(column)
                # a per-dataset layout names the dataset in the row, a transfer layout in the column
                href = links.cell(row.method, row.backbone, row.name if row.name and not row.is_average else column)
                cells.append({"missing": f.prompt_missing(row, column)} if value is None
                             else _value_view(table, model, value, column, href or ""))
            rows.append({"key_cells": [row.label, *row.groups, *([row.name] if table.name_header else [])],
                         "cells": cells})
        tables.append({"caption": table.caption, "key_header": keys, "columns": table.columns, "rows": rows,
                       "notes": f.prompt_notes(table, model.paper)})
    return {"protocol": section.protocol, "title": section.title, "tables": tables}


def data_uri(figure: Figure) -> str:
    return "data:image/png;base64," + base64.b64encode(figure.png).decode("ascii")


def _figure_view(figure: Figure, src: Callable[[Figure], str]) -> dict[str, str]:
    return {"key": figure.key, "title": figure.title, "caption": figure.caption, "alt": figure.alt,
            "src": src(figure)}


def report_context(model: ReportModel, figures: list[Figure] | None = None, links: Links = NO_LINKS,
                   figure_src: Callable[[Figure], str] = data_uri) -> dict[str, Any]:
    """What report.html.j2 (and every template extending it) renders: the model as display strings."""
    from vrbench.report.figures import MAPPING_PREFIX, cd_key

    keys = {fig.key for fig in figures or ()}
    cd_figures = {b.rule: cd_key(b.rule) for b in model.boards if cd_key(b.rule) in keys}
    return dict(
        model=model, generated=f"{model.generated_at:%Y-%m-%d %H:%M}", not_run=f.NOT_RUN,
        boards=[_board_view(b, model, links, cd_figures) for b in model.boards],
        prompt_sections=[_prompt_view(s, model, links) for s in model.prompt_sections],
        failed=[{"method": r.method, "backbone": r.backbone, "dataset": f.failed_dataset(r),
                 "seed": "—" if r.seed is None else r.seed, "error": f.failed_error(r.error_type, r.first_line),
                 "run_id": r.run_id, "href": links.run(r.run_id) or ""} for r in model.failed],
        footnotes=[f.footnote_text(ref, model.cited_metrics(ref)) for ref in model.footnotes],
        how_to_read=f.how_to_read(model),
        conflicts_line=f.conflicts_line(model), conflict_note=f.CONFLICT_NOTE,
        conflicts=[{"method": c.method, "backbone": c.backbone, "dataset": c.dataset,
                    "seed": "—" if c.seed is None else c.seed, "run_id": c.run_id, "counted": c.counted,
                    "note": c.note, "href": links.run(c.run_id) or ""} for c in model.conflicts],
        figures=[_figure_view(fig, figure_src) for fig in figures or () if not fig.key.startswith(MAPPING_PREFIX)],
        mappings=[_figure_view(fig, figure_src) for fig in figures or () if fig.key.startswith(MAPPING_PREFIX)],
    )


def render_html(model: ReportModel, figures: list[Figure] | None = None) -> str:
    """The page; ``figures`` are embedded as data: URIs, so the file works offline and on its own."""
    return template_env().get_template(TEMPLATE).render(**report_context(model, figures))

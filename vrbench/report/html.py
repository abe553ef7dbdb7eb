"""Render a ReportModel as one self-contained HTML page (inline CSS, no scripts, no external assets).

jinja2 autoescaping is on, so method or dataset names from run files cannot inject markup.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from vrbench.report import formatting as f
from vrbench.report.model import Board, ReportModel

TEMPLATE = "report.html.j2"


def _cell_view(board: Board, model: ReportModel, dataset: str, row: Any) -> dict[str, str] | None:
    cell = row.cells.get(dataset)
    if cell is None:
        return None
    view = {"ours": f.ours(cell), "paper": "", "sign": "",
            "title": f"min {f.acc(cell.min)}, max {f.acc(cell.max)}, n={cell.n}"}
    if board.has_references:
        view["paper"] = f.paper(cell, board, model)
        if cell.diff is not None:
            view["sign"] = "pos" if cell.diff >= 0.05 else "neg" if cell.diff <= -0.05 else ""
            if cell.ref is not None and cell.ref.std is not None:
                view["title"] += f"; paper {f.paper_value(cell.ref)} ± {cell.ref.std}"
    return view


def _board_view(board: Board, model: ReportModel) -> dict[str, Any]:
    return {
        "rule": board.rule, "caption": board.caption, "datasets": board.datasets, "group_by": model.group_by,
        "rows": [{"label": row.label, "groups": row.groups, "average": f.average(row, board),
                  "cells": [_cell_view(board, model, d, row) for d in board.datasets]} for row in board.rows],
        "notes": [f.AVERAGE_NOTE, *f.reference_notes(board, model.paper)],
    }


def render_html(model: ReportModel) -> str:
    import jinja2  # only the HTML format needs it

    source = (resources.files("vrbench.report") / "templates" / TEMPLATE).read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(source).render(
        model=model, generated=f"{model.generated_at:%Y-%m-%d %H:%M}", not_run=f.NOT_RUN,
        boards=[_board_view(b, model) for b in model.boards],
        failed=[{"method": r.method, "backbone": r.backbone, "dataset": r.dataset,
                 "seed": "—" if r.seed is None else r.seed, "error": f.failed_error(r.error_type, r.first_line),
                 "run_id": r.run_id} for r in model.failed],
        footnotes=[f.footnote_text(ref) for ref in model.footnotes],
        how_to_read=f.how_to_read(model),
    )

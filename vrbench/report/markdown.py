"""Render a ReportModel as GitHub-flavoured Markdown (tables fit to paste into a README)."""

from __future__ import annotations

from vrbench.report import formatting as f
from vrbench.report.model import Board, ReportModel
from vrbench.report.prompt import PromptSection, PromptTable

_SPECIAL = str.maketrans({c: f"\\{c}" for c in "\\|<>*`[]"})


def md(text: object) -> str:
    """Escape a user-supplied value for a table cell: no pipes, HTML, emphasis, links or line breaks."""
    return " ".join(str(text).split()).translate(_SPECIAL)


def _table(header: list[str], rows: list[list[str]], align: list[str]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _board(board: Board, model: ReportModel) -> list[str]:
    header = ["Method · backbone", *(md(g) for g in model.group_by), *(md(d) for d in board.datasets), "average"]
    align = [":---"] * (1 + len(model.group_by)) + ["---:"] * (len(board.datasets) + 1)
    rows = []
    for row in board.rows:
        cells = []
        for dataset in board.datasets:
            cell = row.cells.get(dataset)
            if cell is None:
                cells.append(f.NOT_RUN)
                continue
            ours = f.ours(cell, model.show_intervals)
            ours = f"**{ours}**" if cell.not_worse else ours
            cells.append(f"{ours}; {f.paper(cell, board, model)}" if board.has_references else ours)
        rows.append([md(row.label), *(md(g) for g in row.groups), *cells, f.average(row, board)])
    out = [f"## Leaderboard: {board.rule}", "", f"*{board.caption}*", ""]
    out += _table(header, rows, align)
    out += ["", f"- {f.MARK_NOTE}", *([f"- {f.INTERVAL_NOTE}"] if model.show_intervals else []),
            f"- {f.AVERAGE_NOTE}"]
    out += [f"- {note}" for note in f.reference_notes(board, model.paper)]
    out += ["", *_summary(board)]
    return [*out, ""]


def _summary(board: Board) -> list[str]:
    """The across-datasets table under a leaderboard: aggregates with bootstrap intervals, average ranks."""
    if board.summary is None:
        return []
    rows = [[md(cell) for cell in line] for line in f.aggregate_rows(board.summary)]
    out = [f"## Across datasets: {board.rule}", ""]
    out += _table(list(f.AGGREGATE_HEADER), rows, [":---"] + ["---:"] * 4)
    return [*out, "", *(f"- {note}" for note in f.summary_notes(board.summary)), ""]


def _prompt_table(table: PromptTable, model: ReportModel) -> list[str]:
    keys = ["Method · backbone", *(md(g) for g in model.group_by), *([table.name_header] if table.name_header else [])]
    header = [*keys, *(md(c) for c in table.columns)]
    align = [":---"] * len(keys) + ["---:"] * len(table.columns)
    rows = []
    for row in table.rows:
        cells = []
        for column in table.columns:
            value = row.values.get(column)
            if value is None:
                cells.append(f.prompt_missing(row, column))
            else:
                ours = f.value_ours(value, model.show_intervals)
                ours = f"**{ours}**" if value.not_worse else ours
                cells.append(f"{ours}; {f.value_paper(value, model)}" if table.has_references else ours)
        name = [md(row.name)] if table.name_header else []
        rows.append([md(row.label), *(md(g) for g in row.groups), *name, *cells])
    out = [f"*{md(table.caption)}*", ""]
    out += _table(header, rows, align)
    out += [""] + [f"- {md(note)}" for note in f.prompt_notes(table, model.paper)]
    return [*out, ""]


def _prompt_section(section: PromptSection, model: ReportModel) -> list[str]:
    out = [f"## {section.title}", ""]
    for table in section.tables:
        out += _prompt_table(table, model)
    return out


def render_markdown(model: ReportModel) -> str:
    scope = f" (published values from {md(model.paper)})" if model.paper else ""
    out = ["# vrbench report", "",
           f"Generated {model.generated_at:%Y-%m-%d %H:%M} UTC from {model.n_runs} runs "
           f"({model.n_done} done, {model.n_failed} failed){scope}.", ""]
    if model.conflicts:
        out += [f"**{f.conflicts_line(model)}**", ""]
    if not model.boards and not model.prompt_sections:
        out += ["No finished run has an accuracy yet: run a suite, then `vrbench report` again.", ""]
    for board in model.boards:
        out += _board(board, model)
    for section in model.prompt_sections:
        out += _prompt_section(section, model)
    if model.failed:
        out += ["## Failed runs", ""]
        out += _table(["Method", "Backbone", "Dataset", "Seed", "Error", "Run"],
                      [[md(r.method), md(r.backbone), md(f.failed_dataset(r)), md("—" if r.seed is None else r.seed),
                        md(f.failed_error(r.error_type, r.first_line)), md(r.run_id)]
                       for r in model.failed],
                      [":---", ":---", ":---", "---:", ":---", ":---"])
        out += ["", "Each failed run's directory holds error.json with the full traceback; `vrbench status` "
                "lists them and a re-run retries them.", ""]
    if model.conflicts:
        out += ["## Conflicts", "", f.CONFLICT_NOTE, ""]
        out += _table(["Method", "Backbone", "Dataset", "Seed", "Run", "Counted", "Conflict"],
                      [[md(c.method), md(c.backbone), md(c.dataset), md("—" if c.seed is None else c.seed),
                        md(c.run_id), md(c.counted), md(c.note)] for c in model.conflicts],
                      [":---", ":---", ":---", "---:", ":---", ":---", ":---"])
        out += [""]
    if model.footnotes:
        out += ["## Published values", ""]
        out += [f"{i}. {f.footnote_text(ref, model.cited_metrics(ref))}"
                for i, ref in enumerate(model.footnotes, start=1)]
        out += [""]
    out += ["## How to read this", "", *(f"- {line}" for line in f.how_to_read(model))]
    return "\n".join(out) + "\n"

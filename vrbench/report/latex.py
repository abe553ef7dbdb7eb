"""Render a ReportModel as LaTeX tables (booktabs), ready to ``\\input`` into a paper.

One ``table`` per leaderboard and per prompt-learning table, laid out like the report's (and the papers') tables:
mean ± sample std over seeds, in bold every value not significantly worse than its column's best
(vrbench.report.significance; within each dataset for the per-dataset prompt-learning tables), and with
``with_paper`` the published value in parentheses beside ours, for the cells compared like for like
(the papers' selection rule). Needs only ``\\usepackage{booktabs}``.
"""

from __future__ import annotations

from collections.abc import Iterable

from vrbench.report.formatting import (
    AGGREGATE_HEADER,
    AVERAGE_NOTE,
    CONFLICT_NOTE,
    NO_VALUE,
    NOT_RUN,
    acc,
    aggregate_rows,
    conflicts_line,
    prompt_mark_note,
    prompt_missing,
    summary_notes,
)
from vrbench.report.model import Board, Cell, ReportModel
from vrbench.report.prompt import PromptSection, PromptTable, Value
from vrbench.report.references import PAPER_RULE, Reference
from vrbench.stats.paired import MARK_TEST

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
            ">": r"\textgreater{}", "|": r"\textbar{}", "±": r"$\pm$", "Δ": r"$\Delta$", "·": r"$\cdot$",
            "—": "--", "–": "--", "−": "-", "†": r"$^\dagger$", "×": r"$\times$", "…": r"\dots{}",
            "≥": r"$\geq$", "α": r"$\alpha$", "χ": r"$\chi$", "²": r"$^2$", "√": r"$\surd$",
            "≤": r"$\leq$", "’": "'", '"': "''", "“": "``", "”": "''"}
EPSILON = 1e-9


def tex(text: object) -> str:
    """Escape a value for LaTeX text mode (names come from run files: nothing may become a command)."""
    return "".join(_SPECIAL.get(c, c if c.isascii() else "?") for c in " ".join(str(text).split()))


def _number(mean: float, std: float | None, bold: bool) -> str:
    value = acc(mean)
    value = rf"\textbf{{{value}}}" if bold else value
    return value if std is None else rf"{value}$\pm${acc(std)}"


def _with_ref(text: str, ref: Reference | None) -> str:
    return text if ref is None else rf"{text} {{\footnotesize({tex(ref.value_text)})}}"


def _best(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _tabular(align: str, header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    lines += [" & ".join(row) + r" \\" for row in rows]
    return [*lines, r"\bottomrule", r"\end{tabular}"]


def _table(caption: str, label: str, tabular: list[str]) -> list[str]:
    return [r"\begin{table}[htbp]", r"\centering", r"\small", rf"\caption{{{caption}}}", rf"\label{{{label}}}",
            *tabular, r"\end{table}", ""]


PARTIAL_NOTE = r" A superscript $k/K$ marks an average over only $k$ of the $K$ datasets it should cover."


def _sources(refs: Iterable[Reference]) -> str:
    papers = sorted({ref.paper for ref in refs})
    return tex("; ".join(papers))


def _board(board: Board, model: ReportModel, with_paper: bool) -> list[str]:
    show_paper = with_paper and board.like_for_like and board.has_references
    best = {d: _best(r.cells[d].mean if d in r.cells else None for r in board.rows) for d in board.datasets}
    full = {id(r) for r in board.rows if len(r.cells) == len(board.datasets)}
    best_average = _best(r.average for r in board.rows if id(r) in full)
    rows = []
    for row in board.rows:
        cells = []
        for dataset in board.datasets:
            cell: Cell | None = row.cells.get(dataset)
            if cell is None:
                cells.append(tex(NOT_RUN))
                continue
            bold = cell.not_worse if cell.not_worse is not None else abs(cell.mean - (best[dataset] or 0.0)) < EPSILON
            text = _number(cell.mean, cell.std, bold)
            if model.show_intervals:
                interval = cell.interval
                text += " --" if interval is None else rf" [{acc(interval[0])}, {acc(interval[1])}]"
            text += r"$^{\ddagger}$" if cell.conflicts else ""
            cells.append(_with_ref(text, cell.ref) if show_paper else text)
        average = row.average
        if average is None:
            cells.append(tex(NO_VALUE))
        else:
            bold = id(row) in full and best_average is not None and abs(average - best_average) < EPSILON
            partial = "" if id(row) in full else rf"$^{{{len(row.cells)}/{len(board.datasets)}}}$"
            cells.append(_number(average, None, bold) + partial)
        rows.append([tex(row.method), tex(row.backbone), *(tex(g) for g in row.groups), *cells])
    header = ["Method", "Backbone", *(tex(g) for g in model.group_by), *(tex(d) for d in board.datasets), "Avg."]
    align = "l" * (2 + len(model.group_by)) + "r" * (len(board.datasets) + 1)
    caption = (rf"Test accuracy (\%). {tex(board.caption)} "
               r"Mean$\pm$sample std over seeds" + (r" and the 95\,\% t-interval of the mean (-- for one seed)"
                                                    if model.show_intervals else "")
               + tex(f"; in bold: not significantly worse than the best mean of the column ({MARK_TEST}).") + " "
               + r"Avg.: the best full row in bold. " + tex(AVERAGE_NOTE))
    if any(len(r.cells) < len(board.datasets) for r in board.rows):
        caption += PARTIAL_NOTE
    if any(c.conflicts for r in board.rows for c in r.cells.values()):
        caption += r" $^{\ddagger}$ A job of this cell has two results; the cell counts the first (see vrbench status)."
    if show_paper:
        caption += f" In parentheses: the published value ({_sources(_board_refs(board))})."
    elif with_paper and board.has_references:
        caption += tex(f" Published values are shown under the {PAPER_RULE} rule only (the papers' rule).")
    table = _table(caption, f"tab:vrbench-{board.rule.replace('_', '-')}", _tabular(align, header, rows))
    return table + _summary(board)


def _summary(board: Board) -> list[str]:
    """The across-datasets table of a leaderboard (aggregates with bootstrap intervals, average ranks)."""
    if board.summary is None:
        return []
    rows = [[tex(cell) for cell in line] for line in aggregate_rows(board.summary)]
    caption = tex(f"Across datasets ({board.rule}). " + " ".join(summary_notes(board.summary)))
    return _table(caption, f"tab:vrbench-{board.rule.replace('_', '-')}-across",
                  _tabular("lrrrr", [tex(h) for h in AGGREGATE_HEADER], rows))


def _board_refs(board: Board) -> list[Reference]:
    return [c.ref for r in board.rows for c in r.cells.values() if c.ref is not None]


def _prompt_table(table: PromptTable, model: ReportModel, with_paper: bool, label: str) -> list[str]:
    """In bold, as in Markdown and HTML, the values not significantly worse than the best of their column within
    each dataset block (rows sharing a name; vrbench.report.significance.annotate_prompt)."""
    show_paper = with_paper and table.has_references
    rows = []
    for row in table.rows:
        cells = []
        for column in table.columns:
            value: Value | None = row.values.get(column)
            if value is None:
                cells.append(tex(prompt_missing(row, column)))
                continue
            text = _number(value.mean, None if value.cell is None else value.cell.std, bool(value.not_worse))
            if value.over is not None:
                text += rf"$^{{{value.over[0]}/{value.over[1]}}}$"
            cells.append(_with_ref(text, value.ref) if show_paper else text)
        name = [tex(row.name)] if table.name_header else []
        setting = f" ({row.setting})" if row.setting else ""
        rows.append([tex(row.method + setting), tex(row.backbone), *(tex(g) for g in row.groups), *name, *cells])
    header = ["Method", "Backbone", *(tex(g) for g in model.group_by),
              *([tex(table.name_header)] if table.name_header else []), *(tex(c) for c in table.columns)]
    keys = 2 + len(model.group_by) + (1 if table.name_header else 0)
    align = "l" * keys + "r" * len(table.columns)
    caption = tex(table.caption) + r" Mean$\pm$sample std over seeds. " + tex(prompt_mark_note(table))
    if any(v.over is not None for r in table.rows for v in r.values.values()):
        caption += PARTIAL_NOTE
    if show_paper:
        caption += f" In parentheses: the published value ({_sources(table_refs(table))})."
    return _table(caption, label, _tabular(align, header, rows))


def table_refs(table: PromptTable) -> list[Reference]:
    return [v.ref for r in table.rows for v in r.values.values() if v.ref is not None]


def _prompt_section(section: PromptSection, model: ReportModel, with_paper: bool) -> list[str]:
    out = [f"% {section.title}"]
    for index, table in enumerate(section.tables, start=1):
        label = f"tab:vrbench-{section.protocol.replace('_', '-')}" + (f"-{index}" if len(section.tables) > 1 else "")
        out += _prompt_table(table, model, with_paper, label)
    return out


def render_latex(model: ReportModel, with_paper: bool = False) -> str:
    out = [f"% vrbench report, generated {model.generated_at:%Y-%m-%d %H:%M} UTC from {model.n_runs} runs "
           f"({model.n_done} done, {model.n_failed} failed).",
           r"% \input this file into a document that loads booktabs (\usepackage{booktabs}).", ""]
    if not model.boards and not model.prompt_sections:
        out.append("% No finished run has an accuracy yet: run a suite, then `vrbench report` again.")
    if model.conflicts:  # comments: the tables keep their layout, the .tex source says what to check
        out += [f"% {conflicts_line(model)}", f"% {CONFLICT_NOTE}"]
        out += [" ".join(f"% {c.method} / {c.backbone} / {c.dataset} / seed {c.seed}, run {c.run_id} (counted: "
                         f"{c.counted}): {c.note}".split()) for c in model.conflicts]
        out.append("")
    for board in model.boards:
        out += _board(board, model, with_paper)
    for section in model.prompt_sections:
        out += _prompt_section(section, model, with_paper)
    return "\n".join(out) + "\n"

"""The report's tables for the terminal: after `vrbench report`, the leaderboards' top rows as Markdown.

The lines are the Markdown report's own tables (same numbers, same order), cut to their best rows so a
3,000-run results directory still prints one screen; the full tables are in the written report.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from vrbench.report.markdown import _board, _prompt_table
from vrbench.report.model import ReportModel

if TYPE_CHECKING:
    from rich.console import Console

    from vrbench.report.build import WrittenReport

TOP_ROWS = 10


def _table_lines(lines: list[str]) -> list[str]:
    """The first Markdown table of ``lines`` (a leaderboard section also holds its across-datasets table)."""
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), len(lines))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def _cut(total: int, shown: int, page: str) -> list[str]:
    return [f"... {total - shown} more row(s) in {page}"] if total > shown else []


def terminal_tables(model: ReportModel, page: str, top: int = TOP_ROWS) -> str:
    """Each leaderboard (and prompt-learning table) with its first ``top`` rows, titled; ``page`` names the file
    that holds the rest. Empty when no run has an accuracy yet."""
    out: list[str] = []
    for board in model.boards:
        out += [f"Leaderboard: {board.rule} (test accuracy %, mean ± std over seeds)"]
        out += _table_lines(_board(replace(board, rows=board.rows[:top]), model))
        out += [*_cut(len(board.rows), top, page), ""]
    for section in model.prompt_sections:
        for table in section.tables:  # the caption's first sentence tells a section's tables apart
            out += [section.title + (f": {table.caption.split('. ')[0]}" if len(section.tables) > 1 else "")]
            out += _table_lines(_prompt_table(replace(table, rows=table.rows[:top]), model))
            out += [*_cut(len(table.rows), top, page), ""]
    return "\n".join(out).rstrip("\n")


def print_written(console: Console, written: WrittenReport) -> None:
    """Where the report went, what of an older report it replaced, then its tables' top rows."""
    say = {"highlight": False, "markup": False, "soft_wrap": True}
    others = [name for name in written.written if name != written.path.name and "/" not in name]
    figures = sum(1 for name in written.written if name.endswith(".png"))
    extra = ", ".join(others + ([f"{figures} figure(s) in figures/"] if figures else []))
    console.print(f"wrote {written.path}" + (f" (and {extra})" if extra else ""), **say)
    if written.removed:
        console.print(f"removed {len(written.removed)} file(s) of an older report there: "
                      + ", ".join(written.removed), **say)
    if written.unrecorded:
        console.print(f"note: {', '.join(written.unrecorded)} in {written.out_dir} come from a report vrbench did not "
                      "record (an older version?): left in place, they may show other results", **say)
    tables = terminal_tables(written.model, str(written.path))
    if tables:
        console.print("", **say)
        console.print(tables, **say)

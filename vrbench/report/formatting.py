"""Plain-text pieces shared by the Markdown and HTML reports, so both say exactly the same thing."""

from __future__ import annotations

from vrbench.report.model import Board, Cell, ReportModel, Row
from vrbench.report.references import PAPER_RULE, Reference

NOT_RUN = "not run"
NO_VALUE = "—"
MISMATCH_MARK = "†"


def acc(value: float) -> str:
    return f"{value:.1f}"


def signed(value: float) -> str:
    """Signed difference with one decimal; never prints "-0.0"."""
    text = f"{value:+.1f}"
    return "+0.0" if text == "-0.0" else text


def ours(cell: Cell) -> str:
    """'12.3 ± 0.4 (n=2)'; a single run has no spread: '12.3 (n=1)'."""
    if cell.std is None:
        return f"{acc(cell.mean)} (n={cell.n})"
    return f"{acc(cell.mean)} ± {acc(cell.std)} (n={cell.n})"


def paper_value(ref: Reference) -> str:
    """The published value as printed, marked '?' when the paper contradicts itself on it."""
    return ref.value_text + ("?" if ref.confidence == "uncertain" else "")


def paper(cell: Cell, board: Board, model: ReportModel) -> str:
    """'paper 65.5 [1], Δ +0.4'; under another rule than the papers' the label carries a dagger."""
    mark = "" if board.like_for_like else MISMATCH_MARK
    if cell.ref is None or cell.diff is None:
        return f"paper{mark} {NO_VALUE}"
    return f"paper{mark} {paper_value(cell.ref)} [{model.footnote(cell.ref)}], Δ{mark} {signed(cell.diff)}"


def average(row: Row, board: Board) -> str:
    value = row.average
    if value is None:
        return NO_VALUE
    if len(row.cells) < len(board.datasets):
        return f"{acc(value)} (over {len(row.cells)} of {len(board.datasets)})"
    return acc(value)


AVERAGE_NOTE = ("average = mean of the row's dataset means, over only the datasets that row has "
                "(\"over k of K\" when it lacks some; such averages are not comparable with full rows).")


def reference_notes(board: Board, paper_name: str | None) -> list[str]:
    """The legend for the paper side of a board."""
    if not board.has_references:
        return ["No published value exists for any cell in this table (embedded datasets and backbones, and "
                "methods or settings the papers do not report, have none)."]
    notes = [f"paper = published value [footnote], Δ = ours - paper in accuracy points; paper {NO_VALUE} = "
             "no published value for that method, backbone and dataset."]
    if not board.like_for_like:
        notes.append(f"{MISMATCH_MARK} The papers' numbers use the {PAPER_RULE} rule, not this table's "
                     f"{board.rule} rule: the comparison is not like for like (see the {PAPER_RULE} table).")
    if paper_name:
        notes.append(f"Published values are taken only from {paper_name}.")
    return notes


def footnote_text(ref: Reference) -> str:
    return (f"{ref.paper}, {ref.paper_stem}.csv, table \"{ref.table}\", row \"{ref.method}\", backbone "
            f"{ref.backbone}, metric {ref.metric}. Source: {ref.source}")


def failed_error(error_type: str, first_line: str, limit: int = 200) -> str:
    text = f"{error_type}: {first_line}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def how_to_read(model: ReportModel) -> list[str]:
    return [
        "Each cell is the mean ± sample standard deviation (ddof=1) of the test accuracy (%) over n runs (seeds); "
        "a single run shows no ±.",
        "The selection rule says which epoch's test accuracy a run contributes: final (last epoch), best_test "
        "(best test accuracy over epochs: the VR papers' rule, optimistic because it selects on the test set), "
        "best_val (epoch with the best validation accuracy).",
        f"Published values are compared with the {PAPER_RULE} column, the rule the papers used; they are shown "
        f"beside the other rules too, marked {MISMATCH_MARK}.",
        "Δ = ours - paper. Settings can still differ from the paper's (epochs, data subsets, image size): check "
        "a suite's config before reading a Δ as a reproduction gap.",
        "Rows are ranked by the number of datasets they cover, then by their average.",
        "A value is never invented: a cell without a published row says so.",
    ]

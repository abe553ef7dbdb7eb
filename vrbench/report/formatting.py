"""Plain-text pieces shared by the Markdown and HTML reports, so both say exactly the same thing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vrbench.report.model import Board, Cell, FailedRun, ReportModel, Row
from vrbench.report.prompt import AVERAGE, PAPER_SHOTS, PAPER_SOURCE, PromptRow, PromptTable, Value
from vrbench.report.references import PAPER_RULE, Reference
from vrbench.stats.paired import MARK_TEST

if TYPE_CHECKING:
    from vrbench.report.significance import BoardSummary
    from vrbench.stats.bootstrap import Estimate

NOT_RUN = "not run"
NO_VALUE = "—"
MISMATCH_MARK = "†"


def acc(value: float) -> str:
    return f"{value:.1f}"


def signed(value: float) -> str:
    """Signed difference with one decimal; never prints "-0.0"."""
    text = f"{value:+.1f}"
    return "+0.0" if text == "-0.0" else text


CONFLICT_MARK = "‡"


def ours(cell: Cell, intervals: bool = False) -> str:
    """'12.3 ± 0.4 (n=2)'; a single run has no spread: '12.3 (n=1)'. With ``intervals``, the 95 % interval of
    the mean before n: '12.3 ± 0.4 [8.7, 15.9] (n=2)', '12.3 (n=1: no interval)'; ' ‡' when a job of it has two
    results."""
    interval = cell.interval if intervals else None
    mark = f" {CONFLICT_MARK}" if cell.conflicts else ""
    if cell.std is None:
        return f"{acc(cell.mean)} (n={cell.n}{': no interval' if intervals else ''}){mark}"
    bracket = "" if interval is None else f" {bracketed(*interval)}"
    return f"{acc(cell.mean)} ± {acc(cell.std)}{bracket} (n={cell.n}){mark}"


def bracketed(low: float, high: float) -> str:
    return f"[{acc(low)}, {acc(high)}]"


def estimate(value: Estimate) -> str:
    """A bootstrap estimate: '70.1 [68.2, 71.9]'."""
    return f"{acc(value.value)} {bracketed(value.low, value.high)}"


MARK_NOTE = ("bold: not significantly worse than the best mean of its column (" + MARK_TEST + "); an unmarked cell "
             "is significantly worse, or cannot be tested (a single seed on either side and fewer than two shared "
             "seeds).")
INTERVAL_NOTE = ("[low, high]: the 95 % t-interval of the mean over the n seeds, mean ± t(0.975, n−1)·s/√n; a single "
                 "seed has no interval.")
AGGREGATE_HEADER = ("Method · backbone", "mean [95 % CI]", "median [95 % CI]", "IQM [95 % CI]", "average rank")


def aggregate_rows(summary: BoardSummary) -> list[list[str]]:
    """One line per row of the summary, in the order of AGGREGATE_HEADER."""
    return [[row.label, *(estimate(row.estimates[name]) for name in ("mean", "median", "IQM")),
             f"{row.average_rank:.2f}"] for row in summary.rows]


def summary_notes(summary: BoardSummary) -> list[str]:
    """What the across-datasets table means, its test results, and the bootstrap's seed."""
    notes = [f"Across the {summary.n_datasets} datasets of this table, for the rows that have all of them"
             + (f" ({summary.left_out} row(s) lacking a dataset left out)" if summary.left_out else "") + ": mean "
             "and median of the dataset means, and IQM (interquartile mean of all runs), each with a 95 % stratified "
             f"bootstrap interval (seeds resampled within each dataset; {summary.reps} resamples, seed {summary.seed}"
             "; the protocol of rliable, Agarwal et al., NeurIPS 2021)."]
    ranks = summary.ranks
    friedman = ("Friedman test: needs at least 3 methods" if ranks.friedman_p is None else
                f"Friedman test χ² = {ranks.friedman_statistic:.2f}, {p_text(ranks.friedman_p)}")
    notes.append(f"average rank: 1 = best on a dataset, averaged over the {ranks.n_datasets} datasets. {friedman}; "
                 f"Nemenyi critical difference CD = {ranks.cd:.2f} (α = 0.05, {len(ranks.labels)} methods): two "
                 "average ranks further apart than CD differ significantly.")
    return notes


def p_text(p: float) -> str:
    """'p = 0.012', or 'p < 0.001'."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


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


def footnote_text(ref: Reference, metrics: list[str] | None = None) -> str:
    """Paper, table, row and backbone of a footnote; ``metrics``: every metric cited under it (default: ref's)."""
    metrics = metrics or [ref.metric]
    metric = f"metric {metrics[0]}" if len(metrics) == 1 else f"metrics {', '.join(metrics)}"
    return (f"{ref.paper}, {ref.paper_stem}.csv, table \"{ref.table}\", row \"{ref.method}\", backbone "
            f"{ref.backbone}, {metric}. Source: {ref.source}")


def value_ours(value: Value, intervals: bool = False) -> str:
    """A seed mean as the leaderboards show it; an HM or average (no seeds of its own) as a bare number, with
    '(over k of K)' when it lacks datasets."""
    if value.cell is not None:
        return ours(value.cell, intervals)
    return acc(value.mean) + ("" if value.over is None else f" (over {value.over[0]} of {value.over[1]})")


def value_paper(value: Value, model: ReportModel) -> str:
    """'paper 84.26 [1], Δ -3.3', or 'paper —' when no comparable published value exists."""
    if value.ref is None or value.diff is None:
        return f"paper {NO_VALUE}"
    return f"paper {paper_value(value.ref)} [{model.footnote(value.ref)}], Δ {signed(value.diff)}"


def prompt_missing(row: PromptRow, column: str) -> str:
    """An empty prompt-table cell: a run that does not exist, or a derived number that cannot be formed."""
    return NO_VALUE if row.is_average or column in ("HM", AVERAGE) else NOT_RUN


def prompt_mark_note(table: PromptTable) -> str:
    """What bold means in a prompt-learning table, including how its derived numbers (HM, averages) are tested."""
    where = "within its dataset, the Average rows being a block of their own" if table.name_header else ""
    derived = []
    if "HM" in table.columns:
        derived.append("an HM is tested on the per-seed HM of the base and novel runs of the same seed (the table "
                       "prints the HM of the two seed means)")
    covers = "datasets" if table.name_header else "targets"
    derived.append(f"an average on the per-seed averages over its {covers} (the seeds every one of them has); an "
                   f"average missing one of this table's {covers} is never marked")
    return (f"bold: not significantly worse than the best value of its column{' ' + where if where else ''} "
            f"(test: {MARK_TEST}); "
            + "; ".join(derived) + ". An unmarked value is significantly worse, or cannot be tested (a single "
            "seed on either side and fewer than two shared seeds).")


def prompt_notes(table: PromptTable, paper_name: str | None) -> list[str]:
    """The legend under a prompt-learning table: what bold and the paper side mean, then the table's caveats."""
    return [prompt_mark_note(table), *_prompt_paper_notes(table, paper_name)]


def _prompt_paper_notes(table: PromptTable, paper_name: str | None) -> list[str]:
    if table.has_references:
        notes = [f"paper = published value [footnote], Δ = ours - paper in accuracy points; paper {NO_VALUE} = no "
                 "comparable published value (see the notes below and How to read this)."]
        if paper_name:
            notes.append(f"Published values are taken only from {paper_name}.")
    else:
        notes = ["No comparable published value exists for any cell in this table (other backbones, datasets, "
                 "settings or methods than the papers')."]
    return notes + table.notes


def failed_dataset(run: FailedRun) -> str:
    """The dataset, plus the setting that tells apart a prompt-learning run's jobs on it."""
    return f"{run.dataset} ({run.setting})" if run.setting else run.dataset


def failed_error(error_type: str, first_line: str, limit: int = 200) -> str:
    text = f"{error_type}: {first_line}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


CONFLICT_NOTE = ("Each job below has more than one result: the same run id (the hash of the same config) arrived "
                 "from another machine or bundle with different files. Cells count one result per job, the "
                 "counted one (runs/<run_id>/, the result that was here first); the others are kept in "
                 "alternates/<run_id>/ and never averaged in. See docs/leaderboard.md.")


def conflicts_line(model: ReportModel) -> str:
    """The summary line under the report's title; '' without conflicts."""
    n = len(model.conflicts)
    if not n:
        return ""
    return f"{n} job{'s' if n > 1 else ''} with more than one result (conflict): listed under Conflicts."


def how_to_read(model: ReportModel) -> list[str]:
    """The legend at the end; the leaderboard lines are left out only when the report has prompt tables alone."""
    leaderboards = bool(model.boards) or not model.prompt_sections
    lines = [
        "Each cell is the mean ± sample standard deviation (ddof=1) of the test accuracy (%) over n runs (seeds); "
        "a single run shows no ±.",
    ]
    if leaderboards:
        lines += [
            "The selection rule says which epoch's test accuracy a run contributes: final (last epoch), best_test "
            "(best test accuracy over epochs: the VR papers' rule, optimistic because it selects on the test set), "
            "best_val (epoch with the best validation accuracy).",
            f"Published values are compared with the {PAPER_RULE} column, the rule the papers used; they are shown "
            f"beside the other rules too, marked {MISMATCH_MARK}.",
        ]
    lines.append("Δ = ours - paper. Settings can still differ from the paper's (epochs, data subsets, image size): "
                 "check a suite's config before reading a Δ as a reproduction gap.")
    if leaderboards:
        lines.append("Rows are ranked by the number of datasets they cover, then by their average.")
        lines.append("Bold cells are not significantly worse than their column's best; \"Across datasets\" gives "
                     "bootstrap intervals and average ranks. What each number means, and when it is valid (best_test "
                     "selects on the test set; three seeds give wide intervals): docs/statistics.md.")
    lines.append("A value is never invented: a cell without a published row says so.")
    if "source" in model.group_by:
        lines.append("source: the plugin package and version (package==version) a row's method, backbone or dataset "
                     "comes from, or built-in; runs of different sources are never averaged together.")
    if model.conflicts:
        lines.append(f"{CONFLICT_MARK} = a job of this cell has more than one result (listed under Conflicts); the "
                     "cell counts one result per job, the one in runs/<run_id>/.")
    if model.prompt_sections:
        lines += _PROMPT_HOW_TO_READ
    return lines


_PROMPT_HOW_TO_READ = [
    "Prompt-learning tables use the final rule, the prompt-learning papers' own: each run contributes its test "
    "accuracy after the last epoch, and a cell is the mean over its n seeds. HM and averages are computed from "
    "those seed means, as the papers do (HM of the seed-averaged Base and Novel; plain means over datasets), so "
    "they carry no n of their own. Rows follow the papers' order of methods and datasets. Bold marks the values "
    "not significantly worse than the best of their column, tested per seed as the leaderboards "
    "(docs/statistics.md).",
    f"Published values appear only like for like: the paper's backbone (CLIP ViT-B/16), {PAPER_SHOTS} shots for "
    f"base-to-novel and transfer, prompts trained on {PAPER_SOURCE} for transfer, and for an average exactly the "
    "datasets the paper averaged. Anything else shows paper — and a note.",
]

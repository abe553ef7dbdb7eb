"""The statistics of the leaderboards, computed once per report from the seeds behind the cells.

Each board gets (1) per cell, whether it is not significantly worse than its column's best mean
(:func:`vrbench.stats.paired.mark_not_worse`, one numpy pass per board), and (2) a :class:`BoardSummary`: per row
that covers every dataset of the board, the mean, median and IQM across datasets with stratified bootstrap
intervals, and the average rank with the Friedman test and the Nemenyi critical difference.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from vrbench.report.model import Board, Row
from vrbench.report.prompt import PromptSection, PromptTable
from vrbench.stats import BOOTSTRAP_REPS, BOOTSTRAP_SEED
from vrbench.stats.bootstrap import Estimate, aggregate_estimates
from vrbench.stats.paired import MARK_TEST, mark_not_worse
from vrbench.stats.ranks import RankSummary, rank_summary

Score = tuple[str, str, str, str, tuple[str, ...], int, float]  # vrbench.report.model.load_scores


@dataclass(frozen=True)
class RowAggregate:
    label: str  # "method · backbone" plus any --group-by values
    estimates: dict[str, Estimate]  # "mean", "median", "IQM"
    average_rank: float


@dataclass(frozen=True)
class BoardSummary:
    """Across datasets, for the rows that have every dataset of the board (others are counted in ``left_out``);
    a board with fewer than two such rows, or fewer than two datasets, has none."""

    rows: list[RowAggregate]
    ranks: RankSummary
    left_out: int
    n_datasets: int
    seed: int = BOOTSTRAP_SEED
    reps: int = BOOTSTRAP_REPS
    test: str = MARK_TEST


def row_label(row: Row) -> str:
    return " · ".join((row.label, *row.groups))


def score_array(board: Board, scores: list[Score]) -> np.ndarray:
    """(rows, datasets, seeds) accuracies of one board, NaN where a row lacks that seed."""
    row_index = {(r.method, r.backbone, r.groups): i for i, r in enumerate(board.rows)}
    column_index = {d: j for j, d in enumerate(board.datasets)}
    picked = [(row_index[(m, b, g)], column_index[d], seed, acc) for m, b, d, rule, g, seed, acc in scores
              if rule == board.rule and (m, b, g) in row_index and d in column_index]
    seeds = {seed: k for k, seed in enumerate(sorted({p[2] for p in picked}, key=lambda s: (s is None, s)))}
    array = np.full((len(board.rows), len(board.datasets), max(1, len(seeds))), np.nan)
    if picked:
        rows, columns, seed_values, accs = zip(*picked, strict=True)
        array[list(rows), list(columns), [seeds[s] for s in seed_values]] = accs
    return array


def annotate(boards: list[Board], scores: list[Score]) -> list[Board]:
    """The boards with each cell's mark and each board's summary."""
    out = []
    for board in boards:
        array = score_array(board, scores)
        marks = mark_not_worse(array)
        rows = []
        for i, row in enumerate(board.rows):
            cells = {d: replace(cell, not_worse=bool(marks.not_worse[i, board.datasets.index(d)]))
                     for d, cell in row.cells.items()}
            rows.append(Row(row.method, row.backbone, row.groups, cells))
        board = Board(board.rule, board.caption, board.datasets, rows)
        board.summary = summarize(board, array)
        out.append(board)
    return out


def summarize(board: Board, array: np.ndarray) -> BoardSummary | None:
    full = [i for i, row in enumerate(board.rows) if len(row.cells) == len(board.datasets)]
    if len(full) < 2 or len(board.datasets) < 2:
        return None  # nothing to compare across datasets (one dataset: its cells already say it all)
    aggregates, cache = [], {}
    for i in full:
        per_dataset = [values[~np.isnan(values)] for values in array[i]]
        aggregates.append(aggregate_estimates(per_dataset, counts_cache=cache))
    labels = [row_label(board.rows[i]) for i in full]
    means = np.array([[board.rows[i].cells[d].mean for d in board.datasets] for i in full])
    ranks = rank_summary(labels, means)
    rows = [RowAggregate(label, estimates, ranks.average_ranks[k])
            for k, (label, estimates) in enumerate(zip(labels, aggregates, strict=True))]
    return BoardSummary(rows, ranks, len(board.rows) - len(full), len(board.datasets))


def annotate_prompt(sections: list[PromptSection]) -> list[PromptSection]:
    """Mark every prompt-table value not significantly worse than the best of its column, with the test of the
    leaderboards (one :func:`mark_not_worse` call per table). A column is one table column within one dataset
    block (rows sharing a dataset, or the Average rows) in the per-dataset layouts, the whole column in the
    transfer tables. Each value is tested on its per-seed numbers (``Value.seeds``: the seed's accuracy, its HM of
    base and novel, or its average over the datasets); a value without them (a partial average) is not marked."""
    for section in sections:
        for table in section.tables:
            _mark_table(table)
    return sections


def _mark_table(table: PromptTable) -> None:
    keys = list(dict.fromkeys((row.method, row.backbone, row.groups, row.setting) for row in table.rows))
    columns = list(dict.fromkeys((row.name, column) for row in table.rows for column in row.values))
    key_index = {k: i for i, k in enumerate(keys)}
    column_index = {c: j for j, c in enumerate(columns)}
    seeds = sorted({s for row in table.rows for v in row.values.values() for s in (v.seeds or ())},
                   key=lambda s: (s is None, s))
    seed_index = {s: k for k, s in enumerate(seeds)}
    array = np.full((len(keys), len(columns), max(1, len(seeds))), np.nan)
    shown = np.full((len(keys), len(columns)), np.nan)
    for row in table.rows:
        i = key_index[(row.method, row.backbone, row.groups, row.setting)]
        for column, value in row.values.items():
            if value.seeds:
                j = column_index[(row.name, column)]
                shown[i, j] = value.mean
                array[i, j, [seed_index[s] for s in value.seeds]] = list(value.seeds.values())
    if not columns:
        return
    marks = mark_not_worse(array, shown=shown)
    for row in table.rows:
        i = key_index[(row.method, row.backbone, row.groups, row.setting)]
        for column, value in row.values.items():
            mark = bool(marks.not_worse[i, column_index[(row.name, column)]]) if value.seeds else False
            row.values[column] = replace(value, not_worse=mark)

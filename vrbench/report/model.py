"""What a report shows, read from the index: leaderboards per selection rule, failed runs, reference footnotes.

Runs of the prompt-learning protocols are not in the leaderboards (a method's base and novel accuracy on one
dataset are not one cell): :mod:`vrbench.report.prompt` lays them out as the papers do.

Renderers (Markdown, HTML, CSV) only format this model, so every format shows the same numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb

from vrbench.errors import ConfigError
from vrbench.report.references import PAPER_RULE, Reference, match
from vrbench.store.schema import ENV_COLUMNS

if TYPE_CHECKING:
    from vrbench.report.prompt import PromptSection

RULES: tuple[str, ...] = ("final", "best_test", "best_val")
# config.protocol values reported in the papers' prompt-learning layouts instead of the leaderboards.
PROMPT_PROTOCOLS: tuple[str, ...] = ("base2novel", "fewshot", "cross_dataset", "domain_generalization")
RULE_CAPTIONS: dict[str, str] = {
    "final": "final: test accuracy after the last epoch (no selection).",
    "best_test": "best_test: the maximum test accuracy over epochs. This is the VR papers' rule; it selects on the "
                 "test set and is therefore optimistic.",
    "best_val": "best_val: the test accuracy at the epoch with the best validation accuracy (validation split "
                "carved from the training data; an honest selection).",
}

# The papers' dataset order, so our columns read like their tables; other datasets follow alphabetically.
DATASET_ORDER: tuple[str, ...] = (
    "cifar10", "cifar100", "svhn", "gtsrb", "flowers102", "dtd", "ucf101", "food101", "sun397", "eurosat",
    "oxford_pets", "stanford_cars", "abide",
)

_RUN_GROUPABLE: tuple[str, ...] = ("input", "mapping", "protocol", "epochs", "seed", "val_size")
# Where a run came from (provenance of `vrbench import`); runs made here group as 'local'.
_PROVENANCE_GROUPABLE: dict[str, str] = {"source_host": "coalesce(p.source_host, 'local')",
                                         "bundle": "coalesce(p.bundle, 'local')"}
_ENV_GROUPABLE: tuple[str, ...] = ENV_COLUMNS[1:]
_CONFIG_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Where a run's plugin entries come from (config.plugins: role -> "package==version"), "built-in" for vrbench's own.
# Reports group by it whenever a plugin run is in scope, so rows of different plugin versions are never averaged.
SOURCE_GROUP = "source"
_SOURCE_SQL = ("coalesce(nullif(array_to_string(list_sort(list_distinct("
               "json_extract_string(r.config, '$.plugins.*'))), ', '), ''), 'built-in')")


@dataclass(frozen=True)
class Cell:
    """Our statistics for one (row, dataset) under one rule, with the matching published value if any."""

    n: int
    mean: float
    std: float | None
    min: float
    max: float
    ref: Reference | None = None

    @property
    def diff(self) -> float | None:
        """Ours minus the paper's value, in accuracy points."""
        return None if self.ref is None else self.mean - self.ref.value


@dataclass
class Row:
    method: str
    backbone: str
    groups: tuple[str, ...]
    cells: dict[str, Cell] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.method} · {self.backbone}"

    @property
    def average(self) -> float | None:
        """Mean of this row's dataset means, over the datasets this row has."""
        means = [c.mean for c in self.cells.values()]
        return sum(means) / len(means) if means else None


@dataclass
class Board:
    """One leaderboard: a selection rule, its dataset columns and its rows (ranked)."""

    rule: str
    caption: str
    datasets: list[str]
    rows: list[Row]

    @property
    def like_for_like(self) -> bool:
        """Whether published values (kept by the papers' rule) are compared under the same rule here."""
        return self.rule == PAPER_RULE

    @property
    def has_references(self) -> bool:
        return any(c.ref is not None for r in self.rows for c in r.cells.values())


@dataclass(frozen=True)
class FailedRun:
    run_id: str
    method: str
    backbone: str
    dataset: str
    seed: int | None
    error_type: str
    first_line: str
    setting: str = ""  # prompt-learning runs: protocol, shots, class subset, source (empty for VR runs)


@dataclass(frozen=True)
class ConflictRow:
    """A job with more than one result (vrbench.share.conflicts): its keys and what differs."""

    run_id: str
    method: str
    backbone: str
    dataset: str
    seed: int | None
    counted: str  # where the counted result came from: 'local' or 'bundle X from host Y'
    note: str  # "conflict: 2 results for one job (final_acc 41.20 vs 40.10; hostname a vs b)"


@dataclass
class ReportModel:
    generated_at: datetime
    n_done: int
    n_failed: int
    paper: str | None
    group_by: tuple[str, ...]
    boards: list[Board]
    failed: list[FailedRun]
    footnotes: list[Reference]  # reference sources used, numbered from 1 in this order
    prompt_sections: list[PromptSection] = field(default_factory=list)  # one per prompt-learning protocol present
    conflicts: list[ConflictRow] = field(default_factory=list)  # jobs with more than one result

    @property
    def n_runs(self) -> int:
        return self.n_done + self.n_failed

    def footnote(self, ref: Reference) -> int:
        """1-based number of the footnote naming ``ref``'s paper, table and row."""
        key = _footnote_key(ref)
        return next(i for i, r in enumerate(self.footnotes, start=1) if _footnote_key(r) == key)

    def cited_metrics(self, ref: Reference) -> list[str]:
        """The metrics cited under ``ref``'s footnote, in first-use order (a base-to-novel row cites three)."""
        key = _footnote_key(ref)
        cited = [c.ref.metric for b in self.boards for r in b.rows for c in r.cells.values()
                 if c.ref is not None and _footnote_key(c.ref) == key]
        cited += [r.metric for s in self.prompt_sections for r in s.references if _footnote_key(r) == key]
        return list(dict.fromkeys(cited)) or [ref.metric]


def _footnote_key(ref: Reference) -> tuple[str, str, str, str]:
    return ref.paper_stem, ref.table, ref.method, ref.backbone


def _filter(run_ids: set[str] | None, column: str) -> tuple[str, list[Any]]:
    if run_ids is None:
        return "TRUE", []
    return f"list_contains(?, {column})", [sorted(run_ids)]


def _group_exprs(con: duckdb.DuckDBPyConnection, group_by: tuple[str, ...]) -> list[str]:
    """SQL expressions for ``group_by`` names: run columns, environment columns, or (config.)keys of the config."""
    config_keys = {k for (k,) in con.execute(
        "SELECT DISTINCT unnest(json_keys(config)) FROM runs WHERE config IS NOT NULL").fetchall()}
    exprs = []
    for name in group_by:
        if name == SOURCE_GROUP:
            exprs.append(_SOURCE_SQL)
        elif name in _RUN_GROUPABLE:
            exprs.append(f"CAST(r.{name} AS VARCHAR)")
        elif name in _ENV_GROUPABLE:
            exprs.append(f"CAST(e.{name} AS VARCHAR)")
        elif name in _PROVENANCE_GROUPABLE:
            exprs.append(_PROVENANCE_GROUPABLE[name])
        else:
            key = name.removeprefix("config.")
            if not _CONFIG_KEY.match(key) or key not in config_keys:
                known = sorted({*_RUN_GROUPABLE, *_ENV_GROUPABLE, *_PROVENANCE_GROUPABLE, SOURCE_GROUP,
                                *config_keys})
                raise ConfigError(f"Cannot group the report by {name!r}: not a run, environment or config field. "
                                  f"Known: {', '.join(known)}.")
            exprs.append(f"json_extract_string(r.config, '$.{key}')")
    return exprs


def load_cells(con: duckdb.DuckDBPyConnection, run_ids: set[str] | None = None,
               group_by: tuple[str, ...] = ()) -> list[tuple[str, str, str, str, tuple[str, ...], Cell]]:
    """(method, backbone, dataset, rule, group values, Cell) per cell; ``cells`` view plus filters and groups."""
    groups = _group_exprs(con, group_by)
    where, params = _filter(run_ids, "s.run_id")
    group_sql = "".join(f", {g} AS g{i}" for i, g in enumerate(groups))
    sql = f"""SELECT s.method, s.backbone, s.dataset, s.rule{group_sql},
                     count(*), avg(s.acc), stddev_samp(s.acc), min(s.acc), max(s.acc)
              FROM scores s JOIN runs r ON r.run_id = s.run_id LEFT JOIN environments e ON e.run_id = s.run_id
                   LEFT JOIN provenance p ON p.run_id = s.run_id
              WHERE (r.protocol IS NULL OR NOT list_contains(?, r.protocol)) AND {where}
              GROUP BY ALL ORDER BY ALL"""
    out = []
    for row in con.execute(sql, [list(PROMPT_PROTOCOLS), *params]).fetchall():
        method, backbone, dataset, rule = row[:4]
        values = tuple("—" if v is None else str(v) for v in row[4:4 + len(groups)])
        n, mean, std, lo, hi = row[4 + len(groups):]
        out.append((method, backbone, dataset, rule, values, Cell(n, mean, std, lo, hi)))
    return out


def load_failed(con: duckdb.DuckDBPyConnection, run_ids: set[str] | None = None) -> list[FailedRun]:
    where, params = _filter(run_ids, "run_id")
    rows = con.execute(
        f"""SELECT run_id, method, backbone, dataset, seed, error_type, error_message, protocol, shots, subsample,
                   source_dataset FROM runs
            WHERE status = 'failed' AND {where} ORDER BY method, backbone, dataset, seed, run_id""", params).fetchall()
    failed = []
    for run_id, method, backbone, dataset, seed, error_type, message, *setting in rows:
        lines = (message or "").strip().splitlines()
        failed.append(FailedRun(run_id, method, backbone, dataset, seed, error_type or "error",
                                lines[0] if lines else "(no message)", _setting(*setting)))
    return failed


def load_conflicts(con: duckdb.DuckDBPyConnection, run_ids: set[str] | None = None) -> list[ConflictRow]:
    """The jobs in scope that have more than one result, with their keys and differences."""
    from vrbench.share.conflicts import conflicts

    found = conflicts(con, run_ids)
    if not found:
        return []
    keys = {row[0]: row[1:] for row in con.execute(
        "SELECT run_id, method, backbone, dataset, seed FROM runs WHERE list_contains(?, run_id)",
        [[c.run_id for c in found]]).fetchall()}
    return [ConflictRow(c.run_id, *keys.get(c.run_id, ("?", "?", "?", None)), counted=c.results[0].origin,
                        note=c.note) for c in found]


def _setting(protocol: str | None, shots: int | None, subsample: str | None, source: str | None) -> str:
    """'base2novel, 16-shot, new classes, from imagenet' for a prompt-learning run; '' for a VR run."""
    if protocol not in PROMPT_PROTOCOLS:
        return ""
    parts = [protocol, *([] if shots is None else [f"{shots}-shot"])]
    if subsample not in (None, "all"):
        parts.append(f"{subsample} classes")
    if source:
        parts.append(f"from {source}")
    return ", ".join(parts)


def has_plugin_runs(con: duckdb.DuckDBPyConnection, run_ids: set[str] | None = None) -> bool:
    """Whether any run in the report's scope used a plugin's method, backbone or dataset."""
    where, params = _filter(run_ids, "run_id")
    sql = f"SELECT count(*) FROM runs WHERE json_exists(config, '$.plugins') AND {where}"
    return con.execute(sql, params).fetchone()[0] > 0


def count_runs(con: duckdb.DuckDBPyConnection, run_ids: set[str] | None = None) -> tuple[int, int]:
    """(done, failed) runs in the report's scope."""
    where, params = _filter(run_ids, "run_id")
    counts = dict(con.execute(f"SELECT status, count(*) FROM runs WHERE {where} GROUP BY status", params).fetchall())
    return counts.get("done", 0), counts.get("failed", 0)


def _dataset_key(name: str) -> tuple[int, str]:
    return (DATASET_ORDER.index(name), name) if name in DATASET_ORDER else (len(DATASET_ORDER), name)


def build_boards(cells: list[tuple[str, str, str, str, tuple[str, ...], Cell]], paper: str | None,
                 reference_rows: dict | None = None) -> list[Board]:
    """One board per rule present, rows ranked by coverage (more datasets first) and then by average."""
    refs: dict[tuple[str, str, str], Reference | None] = {}
    boards = []
    for rule in RULES:
        rows: dict[tuple[str, str, tuple[str, ...]], Row] = {}
        for method, backbone, dataset, cell_rule, groups, cell in cells:
            if cell_rule != rule:
                continue
            key = (method, backbone, dataset)
            if key not in refs:
                refs[key] = match(method, backbone, dataset, paper=paper, rows=reference_rows)
            row = rows.setdefault((method, backbone, groups), Row(method, backbone, groups))
            row.cells[dataset] = Cell(cell.n, cell.mean, cell.std, cell.min, cell.max, refs[key])
        if not rows:
            continue
        datasets = sorted({d for r in rows.values() for d in r.cells}, key=_dataset_key)
        ranked = sorted(rows.values(), key=lambda r: (-len(r.cells), -(r.average or 0.0), r.label, r.groups))
        boards.append(Board(rule, RULE_CAPTIONS[rule], datasets, ranked))
    return boards


def collect_footnotes(boards: list[Board], prompt_sections: list[PromptSection] | None = None) -> list[Reference]:
    """The distinct published rows cited, leaderboards first, then the prompt-learning tables."""
    seen: dict[tuple[str, str, str, str], Reference] = {}
    for board in boards:
        for row in board.rows:
            for dataset in board.datasets:
                cell = row.cells.get(dataset)
                if cell is not None and cell.ref is not None:
                    seen.setdefault(_footnote_key(cell.ref), cell.ref)
    for section in prompt_sections or ():
        for ref in section.references:
            seen.setdefault(_footnote_key(ref), ref)
    return list(seen.values())

"""What the site's pages show, read from the index through one read-only connection.

Table pages use the report's model (vrbench.report.build.load_model) unchanged; the method, dataset, cell and run
pages need the runs themselves: one row per run with its environment, the leaderboard cells (the report's
``load_cells``, so a cell page and its table show the same numbers), and learning curves only for the runs whose
pages are drawn again.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from vrbench.report.model import _SOURCE_SQL, Cell, _setting, load_cells
from vrbench.share.conflicts import Conflict, conflicts
from vrbench.store.db import check_schema, connect

CellKey = tuple[str, str, str]  # (method, backbone, dataset)


@dataclass(frozen=True)
class RunInfo:
    """One run as the site lists it; ``source_digest`` (the index's sha256 of its files) stands for everything
    the run's page shows from its directory."""

    run_id: str
    method: str
    input: str | None
    mapping: str | None
    backbone: str
    dataset: str
    seed: int | None
    protocol: str | None
    shots: int | None
    subsample: str | None
    source_dataset: str | None
    status: str
    epochs: int | None
    final_acc: float | None
    best_test_acc: float | None
    best_test_epoch: int | None
    best_val_acc: float | None
    best_val_epoch: int | None
    train_seconds: float | None
    finished_at: datetime | None
    error_type: str | None
    error_message: str | None
    config: str | None
    source_digest: str | None
    source: str  # "built-in" or the plugin package(s) and version(s) of its method, backbone or dataset
    hostname: str | None
    device: str | None
    precision: str | None
    torch_version: str | None
    vrbench_version: str | None
    bundle: str | None  # provenance of an imported run (vrbench import): the bundle, the host that exported it
    source_host: str | None
    exported_at: datetime | None
    imported_at: datetime | None

    @property
    def cell(self) -> CellKey:
        return self.method, self.backbone, self.dataset

    @property
    def setting(self) -> str:
        """'base2novel, 16-shot, base classes' for a prompt-learning run, '' for a VR run."""
        return _setting(self.protocol, self.shots, self.subsample, self.source_dataset)

    def config_dict(self) -> dict[str, Any]:
        return json.loads(self.config) if self.config else {}


_COLUMNS = ", ".join(f"r.{c}" for c in (
    "run_id", "method", "input", "mapping", "backbone", "dataset", "seed", "protocol", "shots", "subsample",
    "source_dataset", "status", "epochs", "final_acc", "best_test_acc", "best_test_epoch", "best_val_acc",
    "best_val_epoch", "train_seconds", "finished_at", "error_type", "error_message", "config", "source_digest"))
_ENV = "e.hostname, e.device, e.precision, e.torch_version, e.vrbench_version"
_PROVENANCE = "p.bundle, p.source_host, p.exported_at, p.imported_at"


@dataclass
class SiteData:
    runs: list[RunInfo]
    cells: dict[CellKey, dict[str, Cell]]  # leaderboard cells: (method, backbone, dataset) -> rule -> Cell
    conflicts: dict[str, Conflict]  # run_id -> its results, where a job has more than one
    by_cell: dict[CellKey, list[RunInfo]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        grouped: dict[CellKey, list[RunInfo]] = defaultdict(list)
        for run in self.runs:
            grouped[run.cell].append(run)
        self.by_cell = dict(grouped)

    @property
    def hosts(self) -> Counter[str]:
        return Counter(run.hostname or "unknown" for run in self.runs)

    @property
    def last_update(self) -> datetime | None:
        return max((run.finished_at for run in self.runs if run.finished_at is not None), default=None)

    def methods(self) -> list[str]:
        return sorted({run.method for run in self.runs})

    def datasets(self) -> list[str]:
        return sorted({run.dataset for run in self.runs})


def load_site_data(db_path: Path) -> SiteData:
    con = connect(db_path, read_only=True)
    try:
        check_schema(con, db_path)
        rows = con.execute(f"""SELECT {_COLUMNS}, {_SOURCE_SQL}, {_ENV}, {_PROVENANCE} FROM runs r
                               LEFT JOIN environments e ON e.run_id = r.run_id
                               LEFT JOIN provenance p ON p.run_id = r.run_id ORDER BY r.run_id""").fetchall()
        found = {c.run_id: c for c in conflicts(con)}
        cells: dict[CellKey, dict[str, Cell]] = defaultdict(dict)
        for method, backbone, dataset, rule, _groups, cell in load_cells(con):
            cells[(method, backbone, dataset)][rule] = cell
    finally:
        con.close()
    return SiteData([RunInfo(*row) for row in rows], dict(cells), found)


Epoch = tuple[int, float | None, float | None, float | None, float | None]  # epoch, loss, train, val, test


def load_epochs(db_path: Path, run_ids: Iterable[str]) -> dict[str, list[Epoch]]:
    """The per-epoch metrics of ``run_ids`` only (a hash join on the ids, not a scan per id)."""
    ids = sorted(set(run_ids))
    if not ids:
        return {}
    con: duckdb.DuckDBPyConnection = connect(db_path, read_only=True)
    try:
        rows = con.execute("""SELECT e.run_id, e.epoch, e.train_loss, e.train_acc, e.val_acc, e.test_acc
                              FROM epochs e JOIN (SELECT unnest(?::VARCHAR[]) AS id) w ON w.id = e.run_id
                              ORDER BY e.run_id, e.epoch""", [ids]).fetchall()
    finally:
        con.close()
    out: dict[str, list[Epoch]] = defaultdict(list)
    for run_id, *epoch in rows:
        out[run_id].append(tuple(epoch))
    return dict(out)

"""Ingest run directories into the DuckDB index, and open that index safely.

Results are files first, DuckDB second: workers never open the database; one process (``vrbench collect``, or
``report`` before it renders) mirrors the finished run directories into it. The mirror is exact for every readable
run, so ingesting twice changes nothing and deleting the database loses nothing. The schema is documented in
:mod:`vrbench.store.schema`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from vrbench.errors import ResultsError
from vrbench.store import schema
from vrbench.store.bulk import EpochStage
from vrbench.store.diskfull import is_disk_full, out_of_space
from vrbench.store.rundir import METRICS
from vrbench.store.scan import Problem, RunRecord, _epochs, scan_runs

DB_NAME = "vrbench.duckdb"  # the index's file name inside a results directory, beside runs/
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (.+?)(?:\. See also|$)")


@dataclass
class IngestStats:
    """What one ingestion did; ``problems`` lists unreadable files (path + reason), which were skipped."""

    scanned: int = 0  # run directories looked at
    done: int = 0  # finished runs now indexed as done
    failed: int = 0  # finished runs now indexed as failed
    unfinished: int = 0  # running or pending: not indexed
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0  # rows whose run directory is gone or no longer finished (e.g. a failed run being re-run)
    problems: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{self.done} done, {self.failed} failed, {self.unfinished} unfinished "
                f"({self.added} added, {self.updated} updated, {self.unchanged} unchanged, {self.removed} removed)")
        if self.problems:
            text += f"; {len(self.problems)} problem(s)"
        return text


def connect(db_path: Path, read_only: bool = False, retries: int = 10,
            wait_seconds: float = 0.2) -> duckdb.DuckDBPyConnection:
    """Open the index, retrying briefly while another process holds DuckDB's file lock.

    DuckDB allows one writing process at a time; a second one gets a lock error naming the holder, which we turn
    into a ResultsError after about ``retries * wait_seconds`` seconds.
    """
    db_path = Path(db_path)
    if read_only and not db_path.exists():
        raise ResultsError(f"No results database at {db_path}. Run `vrbench collect` (or `vrbench report`, which "
                           "collects first) to build it from the run directories.")
    if not read_only:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            return duckdb.connect(str(db_path), read_only=read_only)
        except duckdb.IOException as exc:
            message = str(exc)
            if "lock" not in message.lower():
                raise _unreadable(db_path, exc) from exc
            if attempt == retries:
                match = _LOCK_HOLDER.search(message)
                holder = match.group(1).strip() if match else "another process"
                raise ResultsError(
                    f"The results database {db_path} is locked by {holder}. Only one process may write it at a "
                    "time: wait for that process to finish (or stop it), then try again.") from exc
            time.sleep(wait_seconds)
        except duckdb.Error as exc:
            raise _unreadable(db_path, exc) from exc
    raise AssertionError("unreachable")


def _unreadable(db_path: Path, exc: Exception) -> ResultsError:
    return ResultsError(f"Cannot open the results database {db_path}: {exc}. It is only an index of the run "
                        "directories: delete it and run `vrbench collect` to rebuild it.")


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create tables and views; an index written under another schema version is dropped and rebuilt."""
    has_meta = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'").fetchone()[0]
    version = None
    if has_meta:
        found = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = found[0] if found else None
    if has_meta and version != schema.SCHEMA_VERSION:
        for statement in schema.DROP_DDL:
            con.execute(statement)
    for statement in (*schema.TABLES_DDL, *schema.VIEWS_DDL):
        con.execute(statement)
    con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [schema.SCHEMA_VERSION])


def check_schema(con: duckdb.DuckDBPyConnection, db_path: Path) -> None:
    """Refuse to read an index written by another vrbench version (readers cannot migrate it)."""
    try:
        found = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except duckdb.Error:
        found = None
    if not found or found[0] != schema.SCHEMA_VERSION:
        raise ResultsError(f"The results database {db_path} has another schema version ({found[0] if found else 'none'}"
                           f", expected {schema.SCHEMA_VERSION}). Run `vrbench collect` to rebuild it.")


def _insert(con: duckdb.DuckDBPyConnection, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Bulk insert as one list parameter per column (row-by-row executemany takes minutes for 10^5 epochs)."""
    if not rows:
        return
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?",
                             [table]).fetchall())
    unnests = ", ".join(f"unnest(?::{types[c]}[])" for c in columns)
    columns_data = [list(col) for col in zip(*rows, strict=True)]
    con.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {unnests}", columns_data)


def _delete(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> None:
    if run_ids:
        for table in ("epochs", "environments", "problems", "provenance", "runs"):
            con.execute(f"DELETE FROM {table} WHERE list_contains(?, run_id)", [run_ids])


def _write(con: duckdb.DuckDBPyConnection, records: list[RunRecord], ingested_at: datetime) -> None:
    runs = [tuple(({**r.run, "ingested_at": ingested_at})[c] for c in schema.RUN_COLUMNS) for r in records]
    _insert(con, "runs", schema.RUN_COLUMNS, runs)
    _insert(con, "epochs", schema.EPOCH_COLUMNS, [row for r in records for row in r.epochs])
    _insert(con, "environments", schema.ENV_COLUMNS, [r.env for r in records if r.env is not None])
    _insert(con, "problems", schema.PROBLEM_COLUMNS, [(r.run_id, p.path.name, p.reason) for r in records
                                                       for p in r.problems])
    _insert(con, "provenance", schema.PROVENANCE_COLUMNS, [r.provenance for r in records if r.provenance])


def ingest(results_root: Path, db_path: Path) -> IngestStats:
    """Mirror the finished runs under ``results_root/runs`` into the index at ``db_path``; return what changed.

    Runs whose source files are unchanged keep their rows (and ``ingested_at``), so a second ingestion is a no-op.
    Rows of runs that are gone or no longer finished are removed; rows of runs whose files are now unreadable are
    left as they were (and the files reported), so a damaged file never costs an indexed result.
    """
    results_root = Path(results_root)
    if not results_root.is_dir():
        raise ResultsError(f"Results directory {results_root} does not exist. Run a suite first, or pass the "
                           "directory that holds `runs/` with --results.")
    try:
        return _mirror(results_root, Path(db_path))
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        # A half-written index would stop every later command; it only mirrors the run directories, so drop it.
        for path in (Path(db_path), Path(f"{db_path}.wal")):
            path.unlink(missing_ok=True)
        raise out_of_space(Path(db_path), "the results index (removed; the next run or `vrbench collect` rebuilds "
                           "it from the run directories)") from exc


def _mirror(results_root: Path, db_path: Path) -> IngestStats:
    runs_dir = results_root / "runs"
    con = connect(db_path)
    stage = EpochStage()
    try:
        ensure_schema(con)
        existing = _known(con)
        scan = scan_runs(runs_dir, existing, epochs_sink=stage.add)
        stats = IngestStats(scanned=scan.scanned, unfinished=scan.unfinished, problems=scan.problems)
        changed = scan.records
        in_python = _load_staged(con, stage, changed, runs_dir, stats)
        seen = scan.unchanged | {r.run_id for r in changed}
        gone = sorted(set(existing) - seen - scan.problem_run_ids)
        stats.unchanged = len(scan.unchanged)
        stats.added = sum(1 for r in changed if r.run_id not in existing)
        stats.updated = len(changed) - stats.added
        stats.removed = len(gone)
        if scan.unchanged:
            stats.problems += [Problem(runs_dir / run_id / name, reason) for run_id, name, reason in con.execute(
                "SELECT run_id, file, reason FROM problems WHERE list_contains(?, run_id)",
                [sorted(scan.unchanged)]).fetchall()]
            stats.problems.sort(key=lambda p: str(p.path))
        con.begin()
        try:
            _delete(con, [r.run_id for r in changed] + gone)
            _write(con, changed, datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0))
            if stage.staged - in_python:
                stage.insert(con, in_python)
            if scan.restat:  # contents unchanged, files touched: remember their new stat so they are not read again
                con.executemany("UPDATE runs SET source_stat = ? WHERE run_id = ?",
                                [(stat, run_id) for run_id, stat in scan.restat.items()])
            from vrbench.share.conflicts import index_job_results  # here: vrbench.share imports the store

            index_job_results(con, results_root)  # jobs with a second result (alternates/): a few rows
            con.commit()
        except BaseException:
            con.rollback()
            raise
        for status, count in con.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall():
            if status == "done":
                stats.done = count
            elif status == "failed":
                stats.failed = count
    finally:
        stage.close()
        con.close()
    return stats


def _load_staged(con: duckdb.DuckDBPyConnection, stage: EpochStage, changed: list[RunRecord], runs_dir: Path,
                 stats: IngestStats) -> set[str]:
    """Load the staged metrics into DuckDB; the runs it cannot take whole (a line failing a check, or DuckDB
    refusing the file) are parsed by the Python reader, which reports each bad line. Returns those run ids."""
    if not stage.staged:
        return set()
    try:
        in_python = stage.load(con)
    except duckdb.Error:
        in_python = set(stage.staged)
    for record in changed:
        if record.run_id not in in_python:
            continue
        path = runs_dir / record.run_id / METRICS
        problems: list[Problem] = []
        try:
            record.epochs = _epochs(record.run_id, path, path.read_bytes(), problems)
        except OSError as exc:
            problems.append(Problem(path, f"cannot read: {exc.strerror or exc}; epochs not indexed"))
        if problems:
            record.problems += problems
            stats.problems += problems
            record.run["source_stat"] = ""  # read again next time, as every run with a problem
    return in_python


def _known(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, str | None]]:
    """run_id -> (source digest, source stat key) of every indexed run."""
    return {run_id: (digest, stat) for run_id, digest, stat in
            con.execute("SELECT run_id, source_digest, source_stat FROM runs").fetchall()}


def is_current(results_root: Path, db_path: Path) -> bool:
    """Whether the index at ``db_path`` mirrors the run directories exactly, checked through a read-only
    connection with the keys ingestion itself uses: an untouched run costs five stat calls (its stat key), a
    touched one is fingerprinted; nothing is parsed unless it changed, nothing is written."""
    db_path = Path(db_path)
    if not db_path.exists():
        return False
    con = connect(db_path, read_only=True)
    try:
        check_schema(con, db_path)
        existing = _known(con)
        from vrbench.share.conflicts import alternates_listing, indexed_listing

        if indexed_listing(con) != alternates_listing(Path(results_root)):
            return False
    except ResultsError:
        return False
    finally:
        con.close()
    scan = scan_runs(Path(results_root) / "runs", existing, epochs_sink=lambda run_id, raw: True)  # epochs unread
    return not scan.records and not (set(existing) - scan.unchanged - scan.problem_run_ids)


def refresh(results_root: Path, db_path: Path) -> IngestStats | None:
    """Ingest only when the index is stale (or missing); None when it was already current, so readers that only
    look never take DuckDB's write lock."""
    if is_current(results_root, db_path):
        return None
    return ingest(results_root, db_path)


def query(db_path: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Run one read-only SQL statement against the index (for the CLI and for ad-hoc inspection)."""
    con = connect(db_path, read_only=True)
    try:
        check_schema(con, db_path)
        try:
            return con.execute(sql, params or []).fetchall()
        except duckdb.Error as exc:
            raise ResultsError(f"Query failed: {exc}") from exc
    finally:
        con.close()

"""Jobs with more than one result: how they are stored, indexed and described (see docs/leaderboard.md).

A job's id is the hash of its config, so the same job has the same id everywhere; when ``vrbench import`` brings a
run whose id is already done here with *different* result files (another CPU, torch version, engine lever, or an
edited file), both are kept: the run directory ``runs/<run_id>/`` keeps the result that was here first, which is
the one counted in ``runs``, ``scores``, ``cells`` and every report cell, and the newcomer goes to
``alternates/<run_id>/<result_key>/`` (same files, plus its provenance.json). Nothing is averaged across the two
and nothing is silently dropped: every surface says "conflict: 2 results for one job" with how they differ.

Interface (for `vrbench status`, the reports, the pandas API and the static site)::

    from vrbench.share.conflicts import conflicts, Conflict, JobResult

    for c in conflicts(source, run_ids=None):   # source: a results directory (Path: read from the files) or an
        c.run_id                                 #   open DuckDB connection to its index (table job_results)
        c.results        # list[JobResult], the counted one first, then the others by import time
        c.scores         # {"final_acc": [41.2, 40.1], ...}: the scores that differ, one value per result
        c.env            # {"hostname": ["a", "b"], "torch_version": [...], "levers.fuse": [...]}: env.json keys
                         #   (nested keys joined with ".") whose values differ, one value per result
        c.note           # "conflict: 2 results for one job (final_acc 41.20 vs 40.10; hostname a vs b)"

    JobResult: run_id, result_key, counted (bool), location (directory relative to the results root), status,
    final_acc, best_test_acc, best_val_acc, epochs, finished_at, env (the whole env.json as a dict), source_host,
    bundle, imported_at (the last three from provenance.json; None for a run made here).

``index_job_results(con, results)`` rebuilds the ``job_results`` table during ingestion (a few rows: only jobs that
have alternates are read); ``alternates_listing(results)`` is the cheap staleness key of ``alternates/``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vrbench.share.layout import PROVENANCE, alternates_root, parse_time, read_json_object, result_key_of
from vrbench.store.rundir import ENV, RESULT
from vrbench.store.schema import JOB_RESULT_COLUMNS

if TYPE_CHECKING:
    import duckdb

SCORE_KEYS: tuple[str, ...] = ("final_acc", "best_test_acc", "best_val_acc")
# env.json's worker command line differs with every results path and says nothing about the result.
UNCOMPARED_ENV_KEYS: frozenset[str] = frozenset({"argv"})
# Left out of the one-line note (pages show them): the per-session records differ in their start times, and their
# lever states are summarised by `levers`, which the note does name.
UNNOTED_ENV_KEYS: frozenset[str] = frozenset({"sessions"})
META_KEY = "alternates"


@dataclass(frozen=True)
class JobResult:
    """One result of a job: the counted one (its run directory) or another (an alternate)."""

    run_id: str
    result_key: str
    counted: bool
    location: str
    status: str
    final_acc: float | None
    best_test_acc: float | None
    best_val_acc: float | None
    epochs: int | None
    finished_at: datetime | None
    env: dict[str, Any] = field(default_factory=dict)
    source_host: str | None = None
    bundle: str | None = None
    imported_at: datetime | None = None

    @property
    def origin(self) -> str:
        """Where this result came from: 'local' or 'bundle X from host Y'."""
        if self.bundle is None and self.source_host is None:
            return "local"
        return f"bundle {self.bundle or '?'} from {self.source_host or '?'}"


@dataclass(frozen=True)
class Conflict:
    run_id: str
    results: list[JobResult]
    scores: dict[str, list[float | None]]
    env: dict[str, list[Any]]

    @property
    def note(self) -> str:
        parts = [f"{key} {' vs '.join(_show(v) for v in values)}" for key, values in self.scores.items()]
        if not self.scores:
            parts.append("same scores")
        env = {key: values for key, values in self.env.items() if key not in UNNOTED_ENV_KEYS}
        parts += [f"{key} {' vs '.join(_show(v) for v in values)}" for key, values in env.items()]
        if not env:
            parts.append("same env")
        return f"conflict: {len(self.results)} results for one job ({'; '.join(parts)})"


def _show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 40 else text[:39] + "…"


def flatten(env: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """env.json as flat keys ("levers.fuse"), so any key any engineer adds is compared without knowing it."""
    flat: dict[str, Any] = {}
    for key, value in env.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def make_conflict(results: list[JobResult]) -> Conflict:
    """The differences between the results of one job (``results``: the counted one first)."""
    scores = {key: [getattr(r, key) for r in results] for key in SCORE_KEYS}
    scores = {key: values for key, values in scores.items() if len(set(values)) > 1}
    flats = [flatten({k: v for k, v in r.env.items() if k not in UNCOMPARED_ENV_KEYS}) for r in results]
    keys = sorted({k for flat in flats for k in flat})
    env = {}
    for key in keys:
        values = [flat.get(key) for flat in flats]
        if len({json.dumps(v, sort_keys=True) for v in values}) > 1:
            env[key] = values
    return Conflict(results[0].run_id, results, scores, env)


# ----------------------------------------------------------------------------------------------- from files


def alternate_dirs(results: Path, run_ids: set[str] | None = None) -> dict[str, list[Path]]:
    """run_id -> its alternates' directories (sorted by name); one scandir of ``alternates/`` plus one per job."""
    root = alternates_root(results)
    found: dict[str, list[Path]] = {}
    if not root.is_dir():
        return found
    with os.scandir(root) as entries:
        names = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
    for run_id in names:
        if run_ids is not None and run_id not in run_ids:
            continue
        with os.scandir(root / run_id) as entries:
            keys = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
        if keys:
            found[run_id] = [root / run_id / key for key in keys]
    return found


def alternates_listing(results: Path) -> str:
    """A digest of the names under ``alternates/``: alternates are written once (by rename) and never edited, so
    the listing tells whether ``job_results`` must be rebuilt."""
    names = [f"{run_id}/{path.name}" for run_id, paths in alternate_dirs(results).items() for path in paths]
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def read_result(results: Path, directory: Path, run_id: str, counted: bool) -> JobResult | None:
    """One result from its files; None when it has no readable result.json (an unfinished run directory)."""
    outcome = read_json_object(directory / RESULT)
    if outcome is None:
        return None
    provenance = read_json_object(directory / PROVENANCE) or {}

    def number(key: str) -> float | None:
        value = outcome.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    epochs = outcome.get("epochs")
    return JobResult(
        run_id=run_id, result_key=result_key_of(directory), counted=counted,
        location=directory.relative_to(results).as_posix(), status=str(outcome.get("status", "done")),
        final_acc=number("final_acc"), best_test_acc=number("best_test_acc"), best_val_acc=number("best_val_acc"),
        epochs=epochs if isinstance(epochs, int) else None, finished_at=parse_time(outcome.get("finished_at")),
        env=read_json_object(directory / ENV) or {}, source_host=_text(provenance.get("source_host")),
        bundle=_text(provenance.get("bundle")), imported_at=parse_time(provenance.get("imported_at")),
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _order(result: JobResult) -> tuple[bool, datetime, str]:
    return (not result.counted, result.imported_at or datetime.min, result.result_key)


def results_from_files(results: Path, run_ids: set[str] | None = None) -> dict[str, list[JobResult]]:
    """run_id -> every readable result of each job that has alternates, the counted one first."""
    results = Path(results)
    out: dict[str, list[JobResult]] = {}
    for run_id, directories in alternate_dirs(results, run_ids).items():
        found = [read_result(results, results / "runs" / run_id, run_id, counted=True)]
        found += [read_result(results, d, run_id, counted=False) for d in directories]
        out[run_id] = sorted((r for r in found if r is not None), key=_order)
    return out


# ----------------------------------------------------------------------------------------------- the index


def index_job_results(con: duckdb.DuckDBPyConnection, results: Path) -> None:
    """Rebuild ``job_results`` from the files (inside the caller's transaction) and record the listing."""
    rows = []
    for found in results_from_files(Path(results)).values():
        if len(found) < 2:
            continue
        for r in found:
            rows.append((r.run_id, r.result_key, r.counted, r.location, r.status, r.final_acc, r.best_test_acc,
                         r.best_val_acc, r.epochs, r.finished_at, json.dumps(r.env, sort_keys=True), r.source_host,
                         r.bundle, r.imported_at))
    con.execute("DELETE FROM job_results")
    if rows:
        con.executemany(f"INSERT INTO job_results ({', '.join(JOB_RESULT_COLUMNS)}) VALUES "
                        f"({', '.join('?' for _ in JOB_RESULT_COLUMNS)})", rows)
    con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [META_KEY, alternates_listing(Path(results))])


def indexed_listing(con: duckdb.DuckDBPyConnection) -> str | None:
    found = con.execute("SELECT value FROM meta WHERE key = ?", [META_KEY]).fetchone()
    return found[0] if found else None


def _from_index(con: duckdb.DuckDBPyConnection, run_ids: set[str] | None) -> dict[str, list[JobResult]]:
    where, params = ("TRUE", []) if run_ids is None else ("list_contains(?, run_id)", [sorted(run_ids)])
    out: dict[str, list[JobResult]] = {}
    query = f"SELECT {', '.join(JOB_RESULT_COLUMNS)} FROM job_results WHERE {where} ORDER BY run_id"
    for row in con.execute(query, params).fetchall():
        values = dict(zip(JOB_RESULT_COLUMNS, row, strict=True))
        values["env"] = json.loads(values["env"]) if values["env"] else {}
        out.setdefault(values["run_id"], []).append(JobResult(**values))
    return {run_id: sorted(found, key=_order) for run_id, found in out.items()}


def conflicts(source: Path | str | duckdb.DuckDBPyConnection, run_ids: set[str] | None = None) -> list[Conflict]:
    """Every job with two or more results (restricted to ``run_ids`` when given), sorted by run id.

    ``source`` is a results directory (read from its files: always current, no database needed) or a DuckDB
    connection to its index (read from ``job_results``: as current as the last ingestion).
    """
    if isinstance(source, (str, Path)):
        found = results_from_files(Path(source), run_ids)
    else:
        found = _from_index(source, run_ids)
    return [make_conflict(rs) for run_id, rs in sorted(found.items()) if len(rs) >= 2]


def notes(results: Path | str, run_ids: set[str] | None = None) -> dict[str, str]:
    """run_id -> its conflict note, read from the files (for `vrbench status`)."""
    return {c.run_id: c.note for c in conflicts(Path(results), run_ids)}

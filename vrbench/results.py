"""Results as pandas DataFrames, for notebooks: the runs, epochs, scores and cells of a results directory.

    >>> from vrbench.results import Results
    >>> res = Results("results")               # refreshes results/vrbench.duckdb if a run finished since
    >>> res.cells(rule="best_test")            # mean, std, n per method x backbone x dataset
    >>> res.epochs(dataset="digits")           # one row per epoch, with the run's method, backbone and seed
    >>> res.conflicts()                        # jobs with more than one result (vrbench import), what differs

Everything is read through DuckDB from the index, read-only, one short connection per call (so a notebook never
holds a lock that would stop ``vrbench run`` from indexing). The index is brought up to date when it is stale,
with the same digests ``vrbench collect`` uses; the columns are those of the index (``vrbench.store.schema``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from vrbench.errors import ConfigError, ResultsError
from vrbench.store.db import DB_NAME, check_schema, connect
from vrbench.store.db import refresh as refresh_index
from vrbench.store.schema import RUN_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

RULES = ("final", "best_test", "best_val")
_RUN_KEYS = ("method", "backbone", "dataset", "seed", "protocol", "shots", "subsample", "source_dataset")
_FILTERS = ("method", "backbone", "dataset", "seed", "protocol", "status")


class Results:
    """One results directory (the one holding ``runs/``); ``refresh=False`` reads the index as it is."""

    def __init__(self, results: Path | str = "results", refresh: bool = True) -> None:
        self.root = Path(results)
        self.db_path = self.root / DB_NAME
        if refresh:
            self.refresh()
        elif not self.db_path.exists():
            raise ResultsError(f"No results database at {self.db_path}: run `vrbench collect --results {self.root}` "
                               "or open it with refresh=True.")

    def refresh(self) -> bool:
        """Re-index the run directories if any changed; True when the index was rebuilt or updated."""
        return refresh_index(self.root, self.db_path) is not None

    def sql(self, query: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Any read-only SQL over the index's tables and views (runs, epochs, environments, scores, cells)."""
        import duckdb

        con = connect(self.db_path, read_only=True)
        try:
            check_schema(con, self.db_path)
            try:
                return con.execute(query, params or []).df()
            except duckdb.Error as exc:
                raise ResultsError(f"Query failed: {exc}") from exc
        finally:
            con.close()

    def runs(self, status: str | None = "done", **where: Any) -> pd.DataFrame:
        """One row per finished run (``status=None`` for done and failed), without the index's bookkeeping
        columns; ``where`` filters on method, backbone, dataset, seed or protocol."""
        columns = [c for c in RUN_COLUMNS if c not in ("ingested_at", "source_digest", "source_stat")]
        clause, params = _where({"status": status, **where}, prefix="")
        frame = self.sql(f"SELECT {', '.join(columns)} FROM runs WHERE {clause} ORDER BY {', '.join(_RUN_KEYS)}, "
                         "run_id", params)
        notes = {c.run_id: c.note for c in self._conflicts()}
        frame["conflict"] = frame["run_id"].map(notes)  # "conflict: 2 results for one job (...)", else NaN
        return frame

    def _conflicts(self) -> list:
        from vrbench.share.conflicts import conflicts

        con = connect(self.db_path, read_only=True)
        try:
            check_schema(con, self.db_path)
            return conflicts(con)
        finally:
            con.close()

    def conflicts(self) -> pd.DataFrame:
        """One row per result of each job that has more than one (a run id imported with a different result): the
        counted one (in runs/, the one cells use) first, with its scores, origin, the ``note`` that says what
        differs, and one ``env.<key>`` column per env.json key whose value differs between the results."""
        import pandas as pd

        rows = []
        for conflict in self._conflicts():
            for index, result in enumerate(conflict.results):
                rows.append({"run_id": result.run_id, "result_key": result.result_key, "counted": result.counted,
                             "location": result.location, "final_acc": result.final_acc,
                             "best_test_acc": result.best_test_acc, "best_val_acc": result.best_val_acc,
                             "origin": result.origin, "source_host": result.source_host, "bundle": result.bundle,
                             "imported_at": result.imported_at, "note": conflict.note,
                             **{f"env.{key}": values[index] for key, values in conflict.env.items()}})
        columns = ["run_id", "result_key", "counted", "location", "final_acc", "best_test_acc", "best_val_acc",
                   "origin", "source_host", "bundle", "imported_at", "note"]
        return pd.DataFrame(rows, columns=list(dict.fromkeys(columns + [k for r in rows for k in r])))

    def epochs(self, **where: Any) -> pd.DataFrame:
        """One row per epoch of a done run (metrics.jsonl), with the run's keys beside it."""
        clause, params = _where(where, prefix="r.", allowed=_FILTERS[:5])
        keys = ", ".join(f"r.{k}" for k in _RUN_KEYS)
        return self.sql(f"""SELECT e.run_id, {keys}, e.epoch, e.train_loss, e.train_acc, e.val_acc, e.test_acc, e.lr,
                                   e.seconds
                            FROM epochs e JOIN runs r ON r.run_id = e.run_id
                            WHERE r.status = 'done' AND {clause} ORDER BY {keys}, e.run_id, e.epoch""", params)

    def scores(self, rule: str | None = None, **where: Any) -> pd.DataFrame:
        """One row per done run and selection rule: the accuracy the run contributes under that rule."""
        clause, params = _where(where, prefix="", allowed=_FILTERS[:5])
        rule_clause, rule_params = _rule(rule)
        return self.sql(f"SELECT * FROM scores WHERE {clause} AND {rule_clause} ORDER BY rule, {', '.join(_RUN_KEYS)}, "
                        "run_id", params + rule_params)

    def cells(self, rule: str | None = None, **where: Any) -> pd.DataFrame:
        """Mean, sample std (ddof=1), min, max and n over seeds per method x backbone x dataset x rule (and the
        prompt-learning setting keys), as the report's cells."""
        if where.get("seed") is not None:
            raise ConfigError("cells are aggregated over seeds: filter scores() by seed instead")
        where.pop("seed", None)
        clause, params = _where(where, prefix="", allowed=_FILTERS[:3] + ("protocol",))
        rule_clause, rule_params = _rule(rule)
        return self.sql(f"""SELECT * FROM cells WHERE {clause} AND {rule_clause}
                            ORDER BY rule, method, backbone, dataset, protocol, shots, subsample, source_dataset""",
                        params + rule_params)


def _where(filters: dict[str, Any], prefix: str, allowed: tuple[str, ...] = _FILTERS) -> tuple[str, list[Any]]:
    """SQL for equality filters on known columns; a list value means any of its values."""
    parts, params = ["TRUE"], []
    for name, value in filters.items():
        if name not in allowed:
            raise ConfigError(f"cannot filter on {name!r} here: choose from {', '.join(allowed)}")
        if value is None:
            continue
        values = list(value) if isinstance(value, (list, tuple, set)) else [value]
        parts.append(f"list_contains(?, {prefix}{name})")
        params.append(values)
    return " AND ".join(parts), params


def _rule(rule: str | None) -> tuple[str, list[Any]]:
    if rule is None:
        return "TRUE", []
    if rule not in RULES:
        raise ConfigError(f"unknown selection rule {rule!r}: choose from {', '.join(RULES)}")
    return "rule = ?", [rule]


def runs(results: Path | str = "results", **where: Any) -> pd.DataFrame:
    """``Results(results).runs(...)``: the done runs (``status=None`` for failed ones too)."""
    return Results(results).runs(**where)


def epochs(results: Path | str = "results", **where: Any) -> pd.DataFrame:
    return Results(results).epochs(**where)


def scores(results: Path | str = "results", rule: str | None = None, **where: Any) -> pd.DataFrame:
    return Results(results).scores(rule, **where)


def cells(results: Path | str = "results", rule: str | None = None, **where: Any) -> pd.DataFrame:
    return Results(results).cells(rule, **where)

"""A report of one suite names its rows with that suite's labels, not with those stored by whichever run wrote them.

A suite's ``label`` is not part of the job id (renaming a row must not re-run it), so one run can be reported under
two suites that call it differently; the index's ``method`` column holds the name of the suite that wrote the run.
:func:`use_labels` makes a report connection see the suite's names instead: a temporary ``runs`` view (in this
connection only, nothing is written) shadows the index's table, with ``method`` taken from the suite for its jobs.
Every query of the report, the ``scores`` and ``cells`` views included, reads through it, so tables, figures and the
published-value matching all use the same names.
"""

from __future__ import annotations

import duckdb


def use_labels(con: duckdb.DuckDBPyConnection, labels: dict[str, str] | None) -> None:
    """Make ``runs.method`` read ``labels[run_id]`` for the runs in ``labels`` on this connection."""
    if not labels:
        return
    database = con.execute("SELECT current_database()").fetchone()[0]
    table = '"' + database.replace('"', '""') + '".main.runs'
    ids = sorted(labels)
    con.execute("CREATE TEMP TABLE suite_labels AS SELECT unnest(?::VARCHAR[]) AS run_id, "
                "unnest(?::VARCHAR[]) AS label", [ids, [labels[i] for i in ids]])
    con.execute(f"CREATE TEMP VIEW runs AS SELECT r.* REPLACE (coalesce(l.label, r.method) AS method) "
                f"FROM {table} r LEFT JOIN suite_labels l ON l.run_id = r.run_id")

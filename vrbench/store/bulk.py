"""Bulk loading of metrics.jsonl into the index: every changed run's epochs in one DuckDB statement.

Parsing 1.3 million epoch lines (10,000 runs x 130 epochs) in Python and handing them to DuckDB as Python lists was
most of a cold ``vrbench collect``. Here the scan appends each run's metrics.jsonl to one staging file, with the run
id written into each line (``{"run_id":"<id>",...``), and DuckDB reads that file once with its own JSON reader,
typed like the ``epochs`` table.

DuckDB's reader is more lenient than vrbench's (it would read ``true`` or ``"1.5"`` as a number and round an epoch
of 3.5), so only files whose bytes show nothing of the sort are staged: each line one flat object, no string
values, no booleans, arrays, NaN or Infinity, integral epochs; and a staged run whose rows do not all arrive with
an epoch (a malformed line) is taken out again. Every other run is parsed by :func:`vrbench.store.scan._epochs`,
which reports each bad line as before, so the index holds the same rows either way.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import duckdb

from vrbench.store.schema import EPOCH_COLUMNS

STAGED = "staged_epochs"
_FRACTIONAL_EPOCH = re.compile(rb'"epoch":\s*-?[0-9]+[.eE]')
_NOT_PLAIN = (b"[", b"true", b"false", b"NaN", b"Infinity", b"\r", b'"run_id"', b"\\")


def plain(body: bytes) -> bool:
    """Whether DuckDB's typed reader reads these lines exactly as vrbench's own reader (see the module doc)."""
    lines = body.count(b"\n") + 1
    return (body[:1] == b"{" and body[-1:] == b"}" and body.count(b"{") == lines and body.count(b"}") == lines
            and body.count(b"\n{") == lines - 1 and body.count(b'"') == 2 * body.count(b'":')
            and not any(token in body for token in _NOT_PLAIN) and not _FRACTIONAL_EPOCH.search(body)
            and body.isascii())


class EpochStage:
    """A temporary file that the scan feeds (``add``) and DuckDB loads (``load``, then ``insert``)."""

    def __init__(self) -> None:
        handle, name = tempfile.mkstemp(prefix="vrbench-epochs-", suffix=".jsonl")
        self.path = Path(name)
        self._file = os.fdopen(handle, "wb")
        self.lines: dict[str, int] = {}  # staged run id -> its number of lines

    @property
    def staged(self) -> set[str]:
        return set(self.lines)

    def add(self, run_id: str, raw: bytes) -> bool:
        """Stage one run's metrics.jsonl; False when it must be parsed in Python (then nothing was staged)."""
        body = raw.rstrip(b"\n")
        if not body:
            self.lines[run_id] = 0
            return True
        if not plain(body):
            return False
        prefix = b'{"run_id":"' + run_id.encode("ascii") + b'",'
        self._file.write(prefix + body[1:].replace(b"\n{", b"\n" + prefix) + b"\n")
        self.lines[run_id] = body.count(b"\n") + 1
        return True

    def load(self, con: duckdb.DuckDBPyConnection) -> set[str]:
        """Read the staged lines into the temporary table ``staged_epochs``; return the staged run ids whose rows
        did not all arrive with an epoch (the caller parses those in Python and leaves their rows out)."""
        self._file.close()
        columns = {"run_id": "VARCHAR", "epoch": "BIGINT", **{c: "DOUBLE" for c in EPOCH_COLUMNS[2:]}}
        con.execute(f"DROP TABLE IF EXISTS {STAGED}")
        con.execute(f"""CREATE TEMP TABLE {STAGED} AS SELECT {', '.join(EPOCH_COLUMNS)}
                        FROM read_json(?, format = 'newline_delimited', columns = ?, ignore_errors = true)""",
                    [str(self.path), columns])
        expected = {run_id: n for run_id, n in self.lines.items() if n}
        if not expected:
            return set()
        arrived = dict(con.execute(f"SELECT run_id, count(epoch) FROM {STAGED} WHERE run_id IS NOT NULL "
                                   "GROUP BY run_id").fetchall())
        return {run_id for run_id, n in expected.items() if arrived.get(run_id) != n}

    def insert(self, con: duckdb.DuckDBPyConnection, skip: set[str]) -> None:
        """INSERT the staged rows of every run but ``skip`` into ``epochs``, in one statement."""
        con.execute(f"""INSERT INTO epochs ({', '.join(EPOCH_COLUMNS)}) SELECT {', '.join(EPOCH_COLUMNS)}
                        FROM {STAGED} WHERE run_id IS NOT NULL AND NOT list_contains(?, run_id)""", [sorted(skip)])

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)

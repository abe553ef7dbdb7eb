"""Results.sql() is read-only: a query reaches the index and nothing else (issue 25, item 6).

Each statement below was shown to write, delete or read outside the index before the connection was sandboxed; each
must now fail with a ResultsError and leave every file as it was.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from vrbench.errors import ResultsError
from vrbench.results import Results
from vrbench.testing.runs import learning_curve, write_finished_run

CONFIG = {"input": "padding", "mapping": "ilm", "backbone": "efficientnet_lite0", "dataset": "digits", "seed": 0,
          "epochs": 3}


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Results, Path, Path]:
    import random

    results = tmp_path / "results"
    directory = write_finished_run(results, "0123456789abcdef", "padding+ilm", CONFIG,
                                   learning_curve(3, 40.0, random.Random(0)))
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE precious AS SELECT 42 AS answer")
    con.close()
    res = Results(results)  # builds the index
    return res, directory / "result.json", other


def test_plain_queries_still_work(setup) -> None:
    res, _, _ = setup
    assert res.sql("SELECT count(*) AS n FROM runs")["n"][0] == 1
    assert len(res.runs()) == 1 and len(res.cells()) > 0


@pytest.mark.parametrize("statement", [
    "COPY (SELECT 1 AS final_acc) TO '{result}' (FORMAT json)",
    "COPY runs TO '{result}'",
    "ATTACH '{other}' AS other (READ_ONLY false)",
    "SELECT * FROM read_text('/etc/shadow')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM glob('/root/**')",
    "SELECT * FROM glob('{root}/**')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET autoinstall_known_extensions = true",
    "EXPORT DATABASE '{root}/exported'",
])
def test_statement_fails_and_changes_nothing(setup, statement: str) -> None:
    res, result, other = setup
    root = res.root.parent
    before = _tree_digest(root)
    with pytest.raises(ResultsError):
        res.sql(statement.format(result=result, other=other, root=res.root))
    assert _tree_digest(root) == before
    assert not (res.root / "exported").exists()


def test_attach_then_drop_cannot_reach_another_database(setup) -> None:
    res, _, other = setup
    with pytest.raises(ResultsError):
        res.sql(f"ATTACH '{other}' AS other (READ_ONLY false); DROP TABLE other.precious")
    with pytest.raises(ResultsError):
        res.sql("DROP TABLE other.precious")
    con = duckdb.connect(str(other), read_only=True)
    assert con.execute("SELECT answer FROM precious").fetchall() == [(42,)]
    con.close()


def test_index_itself_cannot_be_changed(setup) -> None:
    res, _, _ = setup
    for statement in ("DELETE FROM runs", "DROP TABLE epochs", "UPDATE runs SET final_acc = 100"):
        with pytest.raises(ResultsError):
            res.sql(statement)
    assert res.sql("SELECT count(*) AS n FROM runs")["n"][0] == 1


def test_sql_works_beside_a_connection_the_user_opened(setup) -> None:
    """The sandbox settings never clash with the user's own connection to the index in the same process."""
    res, _, _ = setup
    mine = duckdb.connect(str(res.db_path), read_only=True)
    try:
        assert res.sql("SELECT count(*) AS n FROM runs")["n"][0] == 1
        with pytest.raises(ResultsError):
            res.sql("SELECT * FROM read_text('/etc/hostname')")
        assert mine.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    finally:
        mine.close()

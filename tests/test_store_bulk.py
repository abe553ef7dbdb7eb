"""Cold ingestion in bulk (vrbench.store.bulk): the same rows as the line-by-line reader, at a cost that does not
grow with the number of runs or epochs (counted in DuckDB statements, not timed)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import duckdb
import pytest

from vrbench.store import db as store_db
from vrbench.store.bulk import plain
from vrbench.store.db import connect, ingest
from vrbench.store.scan import _epochs
from vrbench.testing.runs import learning_curve, write_finished_run


def write_runs(results: Path, count: int, epochs: int) -> list[str]:
    rng = random.Random(count)
    ids = []
    for seed in range(count):
        config = {"protocol": "vr", "input": "padding", "mapping": "ilm", "backbone": "resnet18",
                  "dataset": "cifar10", "seed": seed, "epochs": epochs}
        run_id = f"{seed:016x}"
        write_finished_run(results, run_id, "padding+ilm", config, learning_curve(epochs, 50.0, rng))
        ids.append(run_id)
    return ids


ODD_LINES = {  # metrics.jsonl contents DuckDB's own reader would read differently: each must take the Python path
    "a0": '{"epoch": 1, "test_acc": "1.5"}\n{"epoch": 2, "test_acc": 3.0}\n',
    "a1": '{"epoch": 1, "test_acc": true}\n',
    "a2": '{"epoch": 3.5, "test_acc": 1}\n{"epoch": 4, "test_acc": 2}\n',
    "a3": '{"epoch": 1, "test_acc": NaN}\n',
    "a4": '{"epoch": 1, "test_acc": {"a": 1}}\n',
    "a5": '{"epoch": 1, "test_acc": 2\n{"epoch": 2, "test_acc": 3}\n',
    "a6": '{"test_acc": 2}\n{"epoch": 2, "test_acc": 3}\n',
    "a7": '\n{"epoch": 1, "test_acc": 2}\n\n{"epoch": 2, "lr": null, "extra": 5}\n',
    "a8": '{"epoch": 1, "test_acc": 2}\r\n',
    "a9": '{"epoch": 1,, "test_acc": 2}\n{"epoch": 2, "test_acc": 3}\n',
    "ab": '{"epoch": 1, "train_loss": 1e400, "test_acc": -0.0}\n{"epoch": 2, "seconds": 12}\n',
}


def test_bulk_rows_equal_the_line_by_line_reader(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_runs(results, 5, 7)
    for suffix, text in ODD_LINES.items():
        run_id = f"{int(suffix, 16):016x}"[:-2] + suffix
        config = {"protocol": "vr", "input": "padding", "mapping": "flm", "backbone": "resnet18",
                  "dataset": "cifar10", "seed": int(suffix, 16), "epochs": 2}
        directory = write_finished_run(results, run_id, "padding+flm", config, learning_curve(2, 40.0,
                                                                                             random.Random(1)))
        (directory / "metrics.jsonl").write_text(text)
    stats = ingest(results, tmp_path / "db.duckdb")
    expected, problems = [], []
    for directory in sorted((results / "runs").iterdir()):
        path = directory / "metrics.jsonl"
        expected += _epochs(directory.name, path, path.read_bytes(), problems)
    con = connect(tmp_path / "db.duckdb", read_only=True)
    got = con.execute("SELECT * FROM epochs ORDER BY run_id, epoch, test_acc").fetchall()
    con.close()

    def key(row):
        return tuple("nan" if isinstance(v, float) and v != v else v for v in row)

    assert sorted(map(key, got), key=repr) == sorted(map(key, expected), key=repr)
    assert sorted(map(str, stats.problems)) == sorted(map(str, problems))  # each bad line still reported


def test_plain_accepts_what_the_training_loop_writes() -> None:
    history = learning_curve(5, 50.0, random.Random(0))
    history[2]["train_loss"] = 1e-7
    body = "".join(json.dumps(row) + "\n" for row in history).encode().rstrip(b"\n")
    assert plain(body)
    assert not plain(body.replace(b'"epoch": 3', b'"epoch": 3.0'))
    assert not plain(body + b'\n{"epoch": 6, "note": "x"}')


class CountingConnection:
    """A real DuckDB connection that counts the statements sent to it."""

    def __init__(self, con: duckdb.DuckDBPyConnection, counter: list[str]) -> None:
        self._con, self._counter = con, counter

    def execute(self, sql, *args):
        self._counter.append(sql)
        return self._con.execute(sql, *args)

    def executemany(self, sql, *args):
        self._counter.append(sql)
        return self._con.executemany(sql, *args)

    def __getattr__(self, name):
        return getattr(self._con, name)


def _cold_ingestion_statements(results: Path, db: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    statements: list[str] = []
    real_connect = connect
    monkeypatch.setattr(store_db, "connect", lambda *a, **k: CountingConnection(real_connect(*a, **k), statements))
    ingest(results, db)
    monkeypatch.setattr(store_db, "connect", real_connect)
    return statements


def test_cold_ingestion_costs_the_same_statements_for_10_or_150_runs(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    counts = []
    for runs, epochs in ((10, 5), (150, 40)):
        results = tmp_path / f"results-{runs}"
        write_runs(results, runs, epochs)
        statements = _cold_ingestion_statements(results, tmp_path / f"{runs}.duckdb", monkeypatch)
        assert sum("read_json" in s for s in statements) == 1  # every run's epochs in one read
        counts.append(len(statements))
        con = connect(tmp_path / f"{runs}.duckdb", read_only=True)
        assert con.execute("SELECT count(*), count(DISTINCT run_id) FROM epochs").fetchone() == (runs * epochs, runs)
        con.close()
    assert counts[0] == counts[1] <= 30, counts  # schema, meta, one insert per table, the staged load

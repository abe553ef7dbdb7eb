"""Tests for vrbench.store: ingestion of real run directories into a real DuckDB index, and its views."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pytest

from vrbench.errors import ResultsError
from vrbench.store import connect, ingest, query

TABLES = ("runs", "epochs", "environments", "problems")


def write_run(root: Path, run_id: str, *, method: str = "padding+ilm", backbone: str = "efficientnet_lite0",
              dataset: str = "digits", seed: int = 0, accs: tuple[float, float, float | None] | None = (40.0, 42.0,
              None), error: str | None = None, epochs: int = 3, env: dict[str, Any] | None = None) -> Path:
    """Write a run directory exactly as docs/results-format.md describes; accs = (final, best_test, best_val)."""
    run = root / "runs" / run_id
    run.mkdir(parents=True, exist_ok=True)
    inp, _, mapping = method.partition("+")
    config = {"protocol": "vr", "input": inp, "mapping": mapping or None, "backbone": backbone, "dataset": dataset,
              "seed": seed, "epochs": epochs, "lr": 0.01, "batch_size": 32, "image_size": 32, "canvas": 96,
              "subset": None, "val_fraction": 0.0, "versions": {"engine": 1, "input": 1, "mapping": 1}}
    (run / "config.json").write_text(json.dumps({"run_id": run_id, "method": method, "config": config,
                                                 "runtime": {"data_root": "/data", "device": "auto"}}))
    (run / "env.json").write_text(json.dumps(env or {
        "vrbench_version": "0.1.0", "torch_version": "2.4.0", "python_version": "3.11.7", "git_sha": "abc",
        "device": "cpu", "device_name": "x86_64", "precision": "fp32", "threads": 2, "hostname": "node1",
        "platform": "Linux"}))
    lines = [{"epoch": e, "train_loss": 2.0 / e, "train_acc": 10.0 * e, "val_acc": None, "test_acc": 10.0 + e,
              "lr": 0.01, "seconds": 1.5} for e in range(1, epochs + 1)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    if accs is not None:
        final, best_test, best_val = accs
        (run / "result.json").write_text(json.dumps({
            "run_id": run_id, "status": "done", "epochs": epochs, "final_acc": final, "best_test_acc": best_test,
            "best_test_epoch": 2, "best_val_acc": best_val, "best_val_epoch": None if best_val is None else 1,
            "val_size": 0, "trainable_params": 1000, "train_seconds": 3.5,
            "finished_at": "2026-11-22T09:00:00+01:00" if seed != 1 else "2026-11-22T08:00:00Z"}))
    if error is not None:
        (run / "error.json").write_text(json.dumps({
            "run_id": run_id, "error_type": "RuntimeError", "message": error,
            "traceback": "Traceback...\nRuntimeError: " + error, "exit_code": 1,
            "failed_at": "2026-11-22T08:00:00+00:00"}))
    return run


def dump(db: Path, ignore: tuple[str, ...] = ()) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows in a canonical order, optionally without some columns (e.g. ingested_at)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for table in TABLES:
            cols = [c for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                [table]).fetchall() if c not in ignore]
            out[table] = con.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY ALL").fetchall()
        return out
    finally:
        con.close()


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    write_run(root, "a0000000000000001", seed=0, accs=(40.0, 42.0, 41.0))
    write_run(root, "a0000000000000002", seed=1, accs=(44.0, 46.5, 45.0))
    write_run(root, "a0000000000000003", seed=2, accs=(39.0, 43.0, None))
    write_run(root, "b0000000000000001", method="padding+flm", accs=(30.0, 31.0, None))
    write_run(root, "c0000000000000001", method="padding+rlm", accs=None, error="CUDA out of memory\nmore")
    write_run(root, "d0000000000000001", method="padding+blm", accs=None)  # running: no result, no error
    return root


def test_ingest_counts_and_values(results: Path, tmp_path: Path) -> None:
    stats = ingest(results, tmp_path / "db.duckdb")
    assert (stats.scanned, stats.done, stats.failed, stats.unfinished) == (6, 4, 1, 1)
    assert stats.problems == []
    rows = query(tmp_path / "db.duckdb", "SELECT run_id, method, input, mapping, status, final_acc, best_val_acc, "
                 "seed, epochs, finished_at, error_type, error_message FROM runs ORDER BY run_id")
    assert [r[0] for r in rows] == ["a0000000000000001", "a0000000000000002", "a0000000000000003",
                                    "b0000000000000001", "c0000000000000001"]
    first = rows[0]
    assert first[1:9] == ("padding+ilm", "padding", "ilm", "done", 40.0, 41.0, 0, 3)
    assert first[9].isoformat() == "2026-11-22T08:00:00"  # +01:00 converted to UTC
    assert rows[1][9].isoformat() == "2026-11-22T08:00:00"  # a 'Z' suffix is UTC too
    failed = rows[-1]
    assert failed[4:6] == ("failed", None) and failed[10:] == ("RuntimeError", "CUDA out of memory\nmore")
    epochs = query(tmp_path / "db.duckdb", "SELECT count(*), max(epoch) FROM epochs WHERE run_id = ?",
                   ["a0000000000000001"])
    assert epochs == [(3, 3)]
    env = query(tmp_path / "db.duckdb", "SELECT device, precision, threads FROM environments LIMIT 1")
    assert env == [("cpu", "fp32", 2)]
    config = query(tmp_path / "db.duckdb", "SELECT json_extract_string(config, '$.dataset') FROM runs LIMIT 1")
    assert config == [("digits",)]


def test_ingest_twice_is_identical(results: Path, tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    ingest(results, db)
    before = dump(db, ignore=("source_stat",))  # recorded once the files are older than the racy window
    stats = ingest(results, db)
    assert dump(db, ignore=("source_stat",)) == before  # ingested_at included: unchanged runs keep their rows
    assert (stats.added, stats.updated, stats.unchanged, stats.removed) == (0, 0, 5, 0)
    assert {t: len(rows) for t, rows in before.items()} == {"runs": 5, "epochs": 15, "environments": 5, "problems": 0}


def test_rebuild_after_deleting_db_loses_nothing(results: Path, tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    ingest(results, db)
    before = dump(db, ignore=("ingested_at",))
    db.unlink()
    ingest(results, db)
    assert dump(db, ignore=("ingested_at",)) == before


def test_corrupt_result_is_reported_not_fatal(results: Path, tmp_path: Path) -> None:
    bad = results / "runs" / "a0000000000000002" / "result.json"
    bad.write_text(bad.read_text()[:25])  # truncated
    (results / "runs" / "b0000000000000001" / "metrics.jsonl").write_text('{"epoch": 1, "test_acc": 1.0}\n{"epo')
    stats = ingest(results, tmp_path / "db.duckdb")
    reasons = {p.path.name: p.reason for p in stats.problems}
    assert set(reasons) == {"result.json", "metrics.jsonl"}
    assert "not valid JSON" in reasons["result.json"] and "line 2" in reasons["metrics.jsonl"]
    assert str(stats.problems[0]).startswith(str(results))
    ids = {r for (r,) in query(tmp_path / "db.duckdb", "SELECT run_id FROM runs")}
    assert "a0000000000000002" not in ids and "b0000000000000001" in ids  # bad epochs do not cost the result
    assert bad.exists()  # nothing deleted
    again = ingest(results, tmp_path / "db.duckdb")  # unchanged runs are not re-read, yet still reported
    assert [str(p) for p in again.problems] == [str(p) for p in stats.problems]
    assert again.unchanged == 4 and again.updated == again.added == 0


def test_corrupt_file_keeps_previously_indexed_row(results: Path, tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    ingest(results, db)
    (results / "runs" / "a0000000000000001" / "config.json").write_text("{not json")
    stats = ingest(results, db)
    assert len(stats.problems) == 1 and stats.removed == 0
    assert query(db, "SELECT final_acc FROM runs WHERE run_id = 'a0000000000000001'") == [(40.0,)]


def test_bad_field_type_is_a_problem(results: Path, tmp_path: Path) -> None:
    path = results / "runs" / "a0000000000000003" / "result.json"
    data = json.loads(path.read_text())
    data["final_acc"] = "forty"
    path.write_text(json.dumps(data))
    stats = ingest(results, tmp_path / "db.duckdb")
    assert [p.path for p in stats.problems] == [path]
    assert "final_acc" in stats.problems[0].reason


def test_failed_then_done_ends_done(tmp_path: Path) -> None:
    root, db = tmp_path / "results", tmp_path / "db.duckdb"
    write_run(root, "e0000000000000001", accs=None, error="boom")
    ingest(root, db)
    assert query(db, "SELECT status FROM runs") == [("failed",)]
    # Re-run succeeded; a stale error.json was left behind: result.json wins.
    write_run(root, "e0000000000000001", accs=(50.0, 55.0, None), error="boom")
    stats = ingest(root, db)
    assert stats.updated == 1
    assert query(db, "SELECT status, final_acc, error_type FROM runs") == [("done", 50.0, None)]


def test_rows_of_unfinished_or_deleted_runs_are_removed(results: Path, tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    ingest(results, db)
    (results / "runs" / "c0000000000000001" / "error.json").unlink()  # being re-run
    stats = ingest(results, db)
    assert stats.removed == 1
    assert query(db, "SELECT count(*) FROM runs WHERE status = 'failed'") == [(0,)]
    assert query(db, "SELECT count(*) FROM epochs WHERE run_id = 'c0000000000000001'") == [(0,)]


def test_cells_view_statistics(results: Path, tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    ingest(results, db)
    cells = {(m, r): rest for m, r, *rest in query(
        db, 'SELECT method, rule, n, mean, std, "min", "max" FROM cells WHERE dataset = \'digits\'')}
    finals = [40.0, 44.0, 39.0]
    n, mean, std, lo, hi = cells[("padding+ilm", "final")]
    assert (n, lo, hi) == (3, 39.0, 44.0)
    assert math.isclose(mean, 41.0) and math.isclose(std, statistics.stdev(finals))  # ddof=1
    assert math.isclose(std, math.sqrt(((40 - 41) ** 2 + (44 - 41) ** 2 + (39 - 41) ** 2) / 2))
    n, mean, std, _, _ = cells[("padding+ilm", "best_val")]  # the NULL best_val of seed 2 is dropped
    assert (n, mean) == (2, 43.0) and math.isclose(std, statistics.stdev([41.0, 45.0]))
    assert cells[("padding+flm", "best_test")] == [1, 31.0, None, 31.0, 31.0]  # n=1: no std
    assert ("padding+flm", "best_val") not in cells
    assert not any(m == "padding+rlm" for m, _ in cells)  # failed runs have no scores
    by_env = query(db, "SELECT device, precision, n FROM cells_by_env WHERE method = 'padding+ilm' AND rule = 'final'")
    assert by_env == [("cpu", "fp32", 3)]


def test_schema_version_mismatch_rebuilds(results: Path, tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    ingest(results, db)
    con = duckdb.connect(str(db))
    con.execute("UPDATE meta SET value = 'old' WHERE key = 'schema_version'")
    con.execute("DELETE FROM runs")
    con.close()
    with pytest.raises(ResultsError, match="vrbench collect"):
        query(db, "SELECT 1")
    ingest(results, db)
    assert query(db, "SELECT count(*) FROM runs") == [(5,)]


def test_missing_results_and_db_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="does not exist"):
        ingest(tmp_path / "nope", tmp_path / "db.duckdb")
    with pytest.raises(ResultsError, match="vrbench collect"):
        query(tmp_path / "missing.duckdb", "SELECT 1")
    (tmp_path / "junk.duckdb").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ResultsError, match="delete it"):
        connect(tmp_path / "junk.duckdb")


def test_locked_database_names_the_holder(tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(db)!r})
            print("locked", flush=True)
            sys.stdin.readline()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(ResultsError, match=rf"locked by .*PID {holder.pid}"):
            connect(db, retries=2, wait_seconds=0.05)
    finally:
        holder.communicate("\n", timeout=30)


def test_store_does_not_import_torch_or_pandas() -> None:
    code = "import sys, vrbench.store; print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


def _bytes_read() -> int:
    """Bytes this process has passed through read() so far (Linux's /proc/self/io: real I/O, counted by the kernel)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux's /proc/self/io")
def test_untouched_runs_are_recognised_without_reading_their_files(results: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from vrbench.store import db as store_db
    from vrbench.store import scan

    for index in range(40):  # enough files that reading them shows up clearly in the byte count
        write_run(results, f"e{index:016x}", seed=index, epochs=130)
    sizes = sum(f.stat().st_size for f in (results / "runs").rglob("*") if f.is_file())
    db = tmp_path / "db.duckdb"
    monkeypatch.setattr(scan, "RACY_NS", 10**18)  # however slow this machine, the files count as just written
    ingest(results, db)  # files inside the racy window: no stat key is recorded yet
    con = connect(db, read_only=True)
    known = store_db._known(con)
    con.close()
    assert {stat for _, stat in known.values()} == {""}
    before = _bytes_read()
    scan_result = scan.scan_runs(results / "runs", known)
    by_content = _bytes_read() - before
    assert by_content >= sizes * 0.9 and not scan_result.records  # every file read and hashed: all unchanged

    monkeypatch.setattr(scan, "RACY_NS", 0)  # as if the files were written long ago
    ingest(results, db)  # records the stat keys of the unchanged runs (no row is rewritten)
    con = connect(db, read_only=True)
    known = store_db._known(con)
    con.close()
    assert all(stat for _, stat in known.values())
    before = _bytes_read()
    scan_result = scan.scan_runs(results / "runs", known)
    by_stat = _bytes_read() - before
    assert len(scan_result.unchanged) == len(known) and not scan_result.records and not scan_result.restat
    assert by_stat < 1000, (by_stat, sizes)  # stat calls and directory listings only: no run file is read
    assert store_db.is_current(results, db)

    # a file rewritten with the same size and content but a new inode/mtime is read again, and still unchanged
    config = results / "runs" / "e0000000000000000" / "config.json"
    config.write_bytes(config.read_bytes())
    scan_result = scan.scan_runs(results / "runs", known)
    assert "e0000000000000000" in scan_result.unchanged and set(scan_result.restat) == {"e0000000000000000"}
    # a change of content that keeps the size is found (the stat key differs, so the contents are compared)
    result = results / "runs" / "e0000000000000001" / "result.json"
    result.write_text(result.read_text().replace('"final_acc": 40.0', '"final_acc": 48.0'))
    assert not store_db.is_current(results, db)
    assert ingest(results, db).updated == 1
    assert query(db, "SELECT final_acc FROM runs WHERE run_id = 'e0000000000000001'") == [(48.0,)]


def test_a_file_written_within_the_racy_window_is_checked_by_content(results: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from vrbench.store import scan

    db = tmp_path / "db.duckdb"
    monkeypatch.setattr(scan, "RACY_NS", 10**18)  # everything counts as just written
    ingest(results, db)
    assert {stat for (stat,) in query(db, "SELECT source_stat FROM runs")} == {""}
    result = results / "runs" / "a0000000000000001" / "result.json"
    result.write_text(result.read_text().replace('"final_acc": 40.0', '"final_acc": 41.0'))
    assert ingest(results, db).updated == 1

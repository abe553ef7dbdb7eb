"""Read run directories into plain rows for the index (read-only: nothing here writes or deletes a file).

A run is *finished* when it has result.json (done) or, failing that, error.json (failed); result.json wins over a
stale error.json. A corrupt config.json, result.json or error.json makes the run a problem that is reported and
skipped; a corrupt env.json or metrics.jsonl line is reported but the run is kept (its summary is authoritative).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vrbench.store.provenance import PROVENANCE, provenance_row
from vrbench.store.rundir import CONFIG, ENV, ERROR, METRICS, RESULT
from vrbench.store.schema import ENV_COLUMNS, EPOCH_COLUMNS, SCHEMA_VERSION


@dataclass(frozen=True)
class Problem:
    """A file that could not be read; ``reason`` says what is wrong with it."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class RunRecord:
    """Everything the index stores for one finished run (``run`` lacks only ``ingested_at``).

    ``problems`` of a record are partial (an unreadable env.json or metrics line): stored with the run so that
    later ingestions, which skip unchanged runs, still report them.
    """

    run_id: str
    run: dict[str, Any]
    epochs: list[tuple[Any, ...]]
    env: tuple[Any, ...] | None
    digest: str
    problems: list[Problem] = field(default_factory=list)
    provenance: tuple[Any, ...] | None = None  # runs that came in a bundle (provenance.json)


@dataclass
class ScanResult:
    records: list[RunRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    problem_run_ids: set[str] = field(default_factory=set)
    unchanged: set[str] = field(default_factory=set)  # already indexed with the same digest: not parsed
    restat: dict[str, str] = field(default_factory=dict)  # unchanged by content but not by stat: the new stat keys
    unfinished: int = 0
    scanned: int = 0


class _Bad(Exception):
    """A file's content is unusable; carries the path and reason for a Problem."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(reason)
        self.problem = Problem(path, reason)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _Bad(path, f"cannot read: {exc.strerror or exc}") from exc


def _parse_json(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _Bad(path, f"not valid JSON (corrupt or truncated?): {exc}") from exc
    if not isinstance(data, dict):
        raise _Bad(path, f"expected a JSON object, found {type(data).__name__}")
    return data


def _number(data: dict[str, Any], key: str, path: Path, integer: bool = False) -> float | int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(path, f"field {key!r} should be a number, found {value!r}")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise _Bad(path, f"field {key!r} should be an integer, found {value!r}")
        return int(value)
    return float(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _timestamp(value: Any, path: Path, key: str, problems: list[Problem]) -> datetime | None:
    """ISO-8601 text -> naive UTC datetime (DuckDB TIMESTAMP); unparseable values are reported and left NULL."""
    if value is None:
        return None
    try:
        text = str(value)
        stamp = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)  # 'Z': Python < 3.11
    except ValueError:
        problems.append(Problem(path, f"field {key!r} is not an ISO-8601 time: {value!r} (stored as NULL)"))
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(timezone.utc).replace(tzinfo=None)
    return stamp


def _config_doc(run_dir: Path, raw: bytes) -> dict[str, Any]:
    path = run_dir / "config.json"
    doc = _parse_json(path, raw)
    config = doc.get("config")
    if not isinstance(config, dict):
        raise _Bad(path, "no 'config' object")
    if doc.get("run_id") not in (None, run_dir.name):
        raise _Bad(path, f"run_id {doc.get('run_id')!r} does not match the directory name {run_dir.name!r}")
    for key in ("backbone", "dataset"):
        if not isinstance(config.get(key), str):
            raise _Bad(path, f"config has no {key!r} name")
    _number(config, "seed", path, integer=True)
    return doc


def _run_row(run_dir: Path, doc: dict[str, Any], outcome: dict[str, Any], outcome_path: Path,
             done: bool, problems: list[Problem]) -> dict[str, Any]:
    config = doc["config"]
    method = doc.get("method")
    if not isinstance(method, str) or not method:  # older files: derive the name the way jobs.py does
        method = config.get("method") if isinstance(config.get("method"), str) and config["method"] else (
            f"{config.get('input')}+{config.get('mapping')}")
    config_path = run_dir / "config.json"
    row: dict[str, Any] = {
        "run_id": run_dir.name, "method": method, "input": _text(config.get("input")),
        "mapping": _text(config.get("mapping")), "backbone": config["backbone"], "dataset": config["dataset"],
        "seed": _number(config, "seed", config_path, integer=True), "protocol": _text(config.get("protocol")),
        # prompt-learning settings; absent (NULL) in VR configs
        "shots": _number(config, "shots", config_path, integer=True), "subsample": _text(config.get("subsample")),
        "stage": _text(config.get("stage")), "train_run": _text(config.get("train_run")),
        "source_dataset": _text(config.get("source_dataset")),
        "epochs": _number(config, "epochs", config_path, integer=True),
        "config": json.dumps(config, sort_keys=True, separators=(",", ":")),
    }
    p = outcome_path
    if done:
        if outcome.get("status", "done") != "done":
            raise _Bad(p, f"status is {outcome.get('status')!r}; result.json must say 'done'")
        trained = _number(outcome, "epochs", p, integer=True)
        row.update(
            status="done", epochs=trained if trained is not None else row["epochs"],
            final_acc=_number(outcome, "final_acc", p), best_test_acc=_number(outcome, "best_test_acc", p),
            best_test_epoch=_number(outcome, "best_test_epoch", p, integer=True),
            best_val_acc=_number(outcome, "best_val_acc", p),
            best_val_epoch=_number(outcome, "best_val_epoch", p, integer=True),
            val_size=_number(outcome, "val_size", p, integer=True),
            trainable_params=_number(outcome, "trainable_params", p, integer=True),
            train_seconds=_number(outcome, "train_seconds", p),
            finished_at=_timestamp(outcome.get("finished_at"), p, "finished_at", problems),
            error_type=None, error_message=None,
        )
    else:
        row.update(
            status="failed", final_acc=None, best_test_acc=None, best_test_epoch=None, best_val_acc=None,
            best_val_epoch=None, val_size=None, trainable_params=None, train_seconds=None,
            finished_at=_timestamp(outcome.get("failed_at"), p, "failed_at", problems),
            error_type=_text(outcome.get("error_type")),
            error_message=_text(outcome.get("message")) or _last_line(outcome.get("traceback")),
        )
    return row


def _last_line(traceback: Any) -> str | None:
    if not isinstance(traceback, str) or not traceback.strip():
        return None
    return traceback.strip().splitlines()[-1]


def _epochs(run_id: str, path: Path, raw: bytes, problems: list[Problem]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise _Bad(path, "not a JSON object")
            epoch = _number(data, "epoch", path, integer=True)
            if epoch is None:
                raise _Bad(path, "no 'epoch'")
            values = [_number(data, key, path) for key in EPOCH_COLUMNS[2:]]
        except (json.JSONDecodeError, _Bad) as exc:
            problems.append(Problem(path, f"line {number} skipped: {exc}"))
            continue
        rows.append((run_id, epoch, *values))
    return rows


def _env(run_id: str, path: Path, raw: bytes, problems: list[Problem]) -> tuple[Any, ...] | None:
    try:
        data = _parse_json(path, raw)
        threads = _number(data, "threads", path, integer=True)
    except _Bad as exc:
        problems.append(Problem(exc.problem.path, f"{exc.problem.reason}; environment not indexed"))
        return None
    return (run_id, *(threads if key == "threads" else _text(data.get(key)) for key in ENV_COLUMNS[1:]))


def _optional_bytes(path: Path, problems: list[Problem], what: str) -> bytes | None:
    """An auxiliary file's bytes; None when absent or unreadable (reported: the run is still indexed)."""
    if not path.exists():
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        problems.append(Problem(path, f"cannot read: {exc.strerror or exc}; {what} not indexed"))
        return None


def _digest(*parts: bytes | None) -> str:
    """Fingerprint of a run's source files: equal fingerprints mean the rows would be identical."""
    digest = hashlib.sha256(SCHEMA_VERSION.encode())
    for part in parts:
        digest.update(b"-" if part is None else hashlib.sha256(part).digest())
    return digest.hexdigest()


UNCHANGED = "unchanged"
SOURCE_FILES = (CONFIG, RESULT, ERROR, METRICS, ENV, PROVENANCE)
RACY_NS = 2_000_000_000  # files modified this recently may change again within their mtime's granularity


def stat_key(run_dir: str | Path) -> str:
    """Size, mtime, ctime and inode of a run's source files: the cheap half of the staleness check (git's index
    trick). Equal keys mean the files were not touched, so their contents need not be read and hashed again; a
    different key only means "look at the contents". Files written less than RACY_NS ago get no key (""), since a
    rewrite within the same timestamp tick could keep all four the same; they are checked by content until an
    ingestion after that window records their key."""
    parts = []
    racy_after = time.time_ns() - RACY_NS
    base = os.fspath(run_dir)
    for name in SOURCE_FILES:
        try:
            st = os.stat(f"{base}/{name}")  # plain strings: pathlib costs more than the stat call itself here
        except FileNotFoundError:
            parts.append("-")
            continue
        except OSError:
            return ""
        if max(st.st_mtime_ns, st.st_ctime_ns) > racy_after:
            return ""
        parts.append(f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}")
    return "|".join(parts)


EpochSink = Callable[[str, bytes], bool]  # (run id, metrics.jsonl bytes) -> taken for bulk loading (vrbench.store.bulk)


def read_run(run_dir: Path, known_digest: str | None = None, known_stat: str | None = None,
             epochs_sink: EpochSink | None = None) -> tuple[RunRecord | str | None, list[Problem], str]:
    """One run directory -> its record, the UNCHANGED marker (its files still have ``known_stat`` or, read again,
    ``known_digest``, so nothing is parsed), or None (unfinished or unreadable); plus the problems found and the
    run's current stat key. ``epochs_sink`` may take the metrics for loading in bulk (the record's epochs are then
    empty); what it declines is parsed here."""
    stat = stat_key(run_dir)  # taken before the contents are read: a change after it leaves the stored key stale
    if stat and stat == known_stat:  # the common case at scale: five stat calls, nothing read
        return UNCHANGED, [], stat
    result_path, error_path = run_dir / "result.json", run_dir / "error.json"
    done = result_path.exists()
    if not done and not error_path.exists():
        return None, [], stat
    outcome_path = result_path if done else error_path
    problems: list[Problem] = []
    try:
        config_path = run_dir / "config.json"
        if not config_path.exists():
            raise _Bad(config_path, "missing (a finished run must have config.json)")
        config_raw, outcome_raw = _read_bytes(config_path), _read_bytes(outcome_path)
        metrics_path, env_path = run_dir / "metrics.jsonl", run_dir / "env.json"
        metrics_raw = _optional_bytes(metrics_path, problems, "epochs")
        env_raw = _optional_bytes(env_path, problems, "environment")
        provenance_raw = _optional_bytes(run_dir / PROVENANCE, problems, "provenance")
        digest = _digest(outcome_path.name.encode(), config_raw, outcome_raw, metrics_raw, env_raw, provenance_raw)
        if digest == known_digest and not problems:
            return UNCHANGED, [], stat
        doc = _config_doc(run_dir, config_raw)
        row = _run_row(run_dir, doc, _parse_json(outcome_path, outcome_raw), outcome_path, done, problems)
    except _Bad as exc:
        return None, [exc.problem], stat
    epochs = [] if metrics_raw is None or (epochs_sink is not None and epochs_sink(run_dir.name, metrics_raw)) else (
        _epochs(run_dir.name, metrics_path, metrics_raw, problems))
    env = None if env_raw is None else _env(run_dir.name, env_path, env_raw, problems)
    row["source_digest"] = digest
    row["source_stat"] = "" if problems else stat  # a run with problems is read again every time, as before
    provenance = provenance_row(run_dir.name, provenance_raw)
    return RunRecord(run_dir.name, row, epochs, env, digest, problems, provenance), problems, stat


def scan_runs(runs_dir: Path, known: dict[str, tuple[str, str | None]] | None = None,
              epochs_sink: EpochSink | None = None) -> ScanResult:
    """Read every run directory under ``runs_dir`` (sorted, so ingestion order is deterministic).

    ``known`` maps run ids to the (digest, stat key) already indexed: such runs are only stat-ed when their stat
    key still matches, fingerprinted but not parsed when only their contents do (``restat`` gets their new key).
    """
    scan = ScanResult()
    if not runs_dir.is_dir():
        return scan
    known = known or {}
    with os.scandir(runs_dir) as entries:
        names = sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())
    for name in names:
        scan.scanned += 1
        known_digest, known_stat = known.get(name, (None, None))
        record, problems, stat = read_run(runs_dir / name, known_digest, known_stat, epochs_sink)
        scan.problems.extend(problems)
        if record == UNCHANGED:
            scan.unchanged.add(name)
            if stat != (known_stat or ""):
                scan.restat[name] = stat
        elif isinstance(record, RunRecord):
            scan.records.append(record)
        elif problems:
            scan.problem_run_ids.add(name)
        else:
            scan.unfinished += 1
    return scan

"""The engine levers per training session: env.json's `levers` and `sessions`, their index in DuckDB, grouping a
report by them, and a job killed and resumed under other switches (issue 25, item 16)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli, run_killed_after_first_checkpoint
from tests.test_store import write_run
from vrbench.engine.levers import kept_sessions, session_record, summarize
from vrbench.report import build_report
from vrbench.store import ingest, query

ENV = {"vrbench_version": "0.1.0", "torch_version": "2.4.0", "python_version": "3.11.7", "git_sha": "abc",
       "device": "cpu", "device_name": "x86_64", "precision": "fp32", "threads": 2, "hostname": "node1",
       "platform": "Linux"}


def _session(number: int, first: int, last: int, *, folded: int = 49, fused: int = 33, batches: int = 0) -> dict:
    session = session_record(number, "2026-12-06T06:00:00+00:00", first, requested={}, folded=folded, fused=fused,
                             chains=0, border=True, border_batches=batches)
    session["epochs"] = [first, last]
    return session


def test_a_lever_is_on_only_where_it_took_effect_and_mixed_across_sessions() -> None:
    wrapped_but_unused = _session(1, 0, 2, batches=0)
    assert wrapped_but_unused["shared_border"] == "off" and wrapped_but_unused["shared_border_wrapped"] is True
    sessions = [wrapped_but_unused, _session(2, 2, 4, fused=0, batches=12)]
    assert summarize(sessions) == {"fold_batchnorm": "on", "fuse_activations": "mixed", "shared_border": "mixed"}
    assert summarize([_session(1, 0, 0, folded=0)])["fold_batchnorm"] == "off"  # nothing trained: that session
    assert summarize([]) == {}


def test_a_resume_keeps_the_sessions_it_builds_on() -> None:
    first, killed = _session(1, 0, 2), _session(2, 2, 3)  # the second was killed after its checkpoint at 3
    assert kept_sessions([first, killed], 3) == [first, killed]
    assert kept_sessions([first, killed], 2) == [first]  # its checkpoint was lost: epoch 3 is redone
    assert kept_sessions([first, killed], 0) == []  # a fresh start redoes everything
    assert kept_sessions(["junk", {"epochs": "x"}, first], 2) == [first]  # a hand-edited env.json is not fatal


def test_levers_are_indexed_and_a_report_groups_by_them(tmp_path: Path) -> None:
    results = tmp_path / "results"
    shared = [_session(1, 0, 3, batches=9)]
    plain = [_session(1, 0, 3, folded=0, fused=0)]
    write_run(results, "a0000000000000001", seed=0, accs=(40.0, 42.0, None),
              env={**ENV, "levers": summarize(shared), "sessions": shared})
    write_run(results, "a0000000000000002", seed=1, accs=(44.0, 46.0, None),
              env={**ENV, "levers": summarize(plain), "sessions": plain})
    write_run(results, "a0000000000000003", seed=2, accs=(41.0, 43.0, None), env=ENV)  # before levers: NULL
    db = tmp_path / "db.duckdb"
    ingest(results, db)
    rows = query(db, "SELECT run_id, fold_batchnorm, fuse_activations, shared_border, sessions FROM environments "
                     "ORDER BY run_id")
    assert rows == [("a0000000000000001", "on", "on", "on", 1), ("a0000000000000002", "off", "off", "off", 1),
                    ("a0000000000000003", None, None, None, None)]
    text = build_report(db, tmp_path / "out", group_by=("shared_border", "fold_batchnorm")).read_text()
    assert "| shared_border | fold_batchnorm |" in text
    cells = [line for line in text.splitlines() if line.startswith("| padding+ilm")]
    assert any("| on | on |" in line for line in cells) and any("| off | off |" in line for line in cells)


DIGITS_ONE_JOB = """
name: levers
grid: {input: padding, mapping: ilm, backbone: efficientnet_lite0, dataset: digits, seed: 3}
defaults: {epochs: 3, batch_size: 16, subset: {train: 96, test: 40}, canvas: 96, milestones: [0.5]}
"""


@pytest.mark.slow
def test_a_job_resumed_under_other_levers_records_both_sessions(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after its first checkpoint with the shared border off, resumed with it on: env.json keeps the first
    session, adds the second, and says "mixed"; the index and `report --group-by shared_border` show it."""
    from vrbench.suite import load_suite

    suite = tmp_path / "suite.yaml"
    suite.write_text(DIGITS_ONE_JOB)
    (job,) = load_suite(suite).jobs
    results = tmp_path / "results"
    monkeypatch.setenv("VRBENCH_SHARE_BORDER", "0")
    run_killed_after_first_checkpoint(suite, results, job.run_id, tmp_path)
    env = json.loads((results / "runs" / job.run_id / "env.json").read_text())
    assert [s["epochs"] for s in env["sessions"]] == [[0, 1]] and env["levers"]["shared_border"] == "off"
    monkeypatch.setenv("VRBENCH_SHARE_BORDER", "1")
    resumed = run_cli("run", str(suite), "--results", str(results), "--threads", "1", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    env = json.loads((results / "runs" / job.run_id / "env.json").read_text())
    first, second = env["sessions"]
    assert (first["epochs"], second["epochs"]) == ([0, 1], [1, 3])
    assert first["requested"]["shared_border"] is False and second["requested"]["shared_border"] is True
    assert (first["shared_border"], second["shared_border"]) == ("off", "on") and second["shared_border_batches"] > 0
    assert env["levers"] == {"fold_batchnorm": "on", "fuse_activations": "on", "shared_border": "mixed"}
    report = run_cli("report", "--results", str(results), "--group-by", "shared_border,sessions",
                     "--out", str(tmp_path / "reports"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "| mixed | 2 |" in (tmp_path / "reports" / "index.md").read_text()

"""Bundles (vrbench export / import) and conflicts, on real run directories and a real DuckDB index.

Two results directories with different seeds and methods merge into a third; re-importing changes no file; a
damaged or hostile bundle is refused whole with nothing written; a run id that arrives with another result keeps
both and every surface says so.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vrbench.cli import app
from vrbench.results import Results
from vrbench.share.conflicts import conflicts
from vrbench.share.importer import rename_noreplace
from vrbench.store.db import DB_NAME, query
from vrbench.store.rundir import try_claim, write_config
from vrbench.suite import load_suite
from vrbench.testing.runs import learning_curve, write_finished_run

SUITE = """\
name: share
protocol: vr
grid:
  input: [padding]
  mapping: [ilm, flm, blm]
  backbone: [efficientnet_lite0]
  dataset: [digits]
  seed: [0, 1, 2]
defaults: {epochs: 3, lr: 0.01, batch_size: 32}
"""

runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "share.yaml"
    path.write_text(SUITE)
    return path


def write_jobs(results: Path, suite: Path, mappings: set[str], seeds: set[int], level: float,
               env: dict | None = None) -> list[str]:
    """Finished runs for the suite's jobs with these mappings and seeds (real run ids from the suite)."""
    rng = random.Random(level)
    ids = []
    for job in load_suite(suite).jobs:
        if job.config["mapping"] in mappings and job.config["seed"] in seeds:
            write_finished_run(results, job.run_id, job.method, job.config, learning_curve(3, level, rng),
                               env=env or {"device": "cpu", "precision": "fp32", "threads": 2, "hostname": "a"})
            ids.append(job.run_id)
    return ids


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with its type, size, mtime and content digest: equal snapshots = nothing written."""
    out = {}
    for path in sorted([root, *root.rglob("*")]):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        out[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return out


def test_two_results_dirs_merge_into_a_third_and_reimport_changes_nothing(tmp_path: Path, suite: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    ids_a = write_jobs(a, suite, {"ilm", "flm"}, {0, 1}, 50.0)
    ids_b = write_jobs(b, suite, {"blm"}, {2}, 60.0) + write_jobs(b, suite, {"ilm"}, {2}, 55.0)
    assert cli("export", "-o", tmp_path / "a.tar.gz", "--results", a)[0] == 0
    assert cli("export", "-o", tmp_path / "b.tar", "--results", b)[0] == 0
    code, out = cli("import", tmp_path / "a.tar.gz", tmp_path / "b.tar", "--results", c)
    assert code == 0, out
    assert "4 added" in out and "2 added" in out
    assert sorted(p.name for p in (c / "runs").iterdir()) == sorted(ids_a + ids_b)
    for run_id in ids_a:  # the files arrive byte for byte, with their provenance beside them
        for name in ("config.json", "env.json", "metrics.jsonl", "result.json"):
            assert (c / "runs" / run_id / name).read_bytes() == (a / "runs" / run_id / name).read_bytes()
        provenance = json.loads((c / "runs" / run_id / "provenance.json").read_text())
        assert provenance["bundle"] == "a.tar.gz"
        assert provenance["bundle_sha256"] == hashlib.sha256((tmp_path / "a.tar.gz").read_bytes()).hexdigest()
    rows = query(c / DB_NAME, "SELECT bundle, count(*) FROM provenance GROUP BY bundle ORDER BY bundle")
    assert rows == [("a.tar.gz", 4), ("b.tar", 2)]
    assert len(Results(c, refresh=False).runs()) == 6

    before = snapshot(c)
    code, out = cli("import", tmp_path / "b.tar", tmp_path / "a.tar.gz", "--results", c)
    assert code == 0 and "0 added" in out and "4 already here" in out
    assert snapshot(c) == before  # not a byte, not an mtime, not the index


def test_a_bundle_is_inspectable_with_tar(tmp_path: Path, suite: Path) -> None:
    ids = write_jobs(tmp_path / "a", suite, {"ilm"}, {0, 1}, 50.0)
    cli("export", "-o", tmp_path / "a.tar", "--results", tmp_path / "a", "--run-id", ids[0])
    with tarfile.open(tmp_path / "a.tar") as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert names[0] == "manifest.json" and f"runs/{ids[0]}/result.json" in names
    assert [e["run_id"] for e in manifest["runs"]] == [ids[0]]
    entry = manifest["runs"][0]["files"]["result.json"]
    data = (tmp_path / "a" / "runs" / ids[0] / "result.json").read_bytes()
    assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert manifest["exported_by"]["host"] and manifest["vrbench_version"] and manifest["exported_at"]


def _rewrite(source: Path, target: Path, change) -> None:
    """Copy a bundle member by member through ``change(info, data) -> [(info, data), ...]``."""
    with tarfile.open(source) as tar, tarfile.open(target, "w") as out:
        for member in tar.getmembers():
            data = tar.extractfile(member).read() if member.isfile() else None
            for info, payload in change(member, data):
                if payload is not None:
                    info.size = len(payload)
                out.addfile(info, io.BytesIO(payload) if payload is not None else None)


def _edited_result(member, data):
    if member.name.endswith("result.json"):
        doc = json.loads(data)
        doc["final_acc"] = 99.9
        data = json.dumps(doc).encode()
    return [(member, data)]


def _dotdot_member(member, data):
    out = [(member, data)]
    if member.name == "manifest.json":
        out.append((tarfile.TarInfo("../escaped.txt"), b"outside"))
    return out


def _symlink_member(member, data):
    if member.name.endswith("mapping.json") or not member.name.endswith("env.json"):
        return [(member, data)]
    link = tarfile.TarInfo(member.name)
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return [(link, None)]


def _absolute_member(member, data):
    out = [(member, data)]
    if member.name == "manifest.json":
        out.append((tarfile.TarInfo("/tmp/vrbench-absolute-member.txt"), b"outside"))
    return out


def _hardlink_member(member, data):
    if not member.name.endswith("env.json"):
        return [(member, data)]
    link = tarfile.TarInfo(member.name)
    link.type, link.linkname = tarfile.LNKTYPE, "../../../../etc/passwd"
    return [(link, None)]


def _device_member(member, data):
    out = [(member, data)]
    if member.name == "manifest.json":
        device = tarfile.TarInfo("runs/null")
        device.type, device.devmajor, device.devminor = tarfile.CHRTYPE, 1, 3
        out.append((device, None))
    return out


def _unlisted_member(member, data):
    out = [(member, data)]
    if member.name.endswith("result.json"):
        out.append((tarfile.TarInfo(member.name.replace("result.json", "mapping.json")), b"{}"))
    return out


@pytest.mark.parametrize("change, reason", [
    (_edited_result, "does not match its checksum"),
    (_dotdot_member, "escapes the results directory"),
    (_symlink_member, "is a link"),
    (_absolute_member, "escapes the results directory"),
    (_hardlink_member, "is a link"),
    (_device_member, "device"),
    (_unlisted_member, "is not in the manifest"),
])
def test_a_bad_bundle_is_refused_whole_with_nothing_written(tmp_path: Path, suite: Path, change, reason) -> None:
    write_jobs(tmp_path / "a", suite, {"ilm", "flm"}, {0}, 50.0)
    cli("export", "-o", tmp_path / "good.tar", "--results", tmp_path / "a")
    _rewrite(tmp_path / "good.tar", tmp_path / "bad.tar", change)
    c = tmp_path / "c" / "results"
    write_jobs(c, suite, {"blm"}, {1}, 40.0)  # a results directory with a run already in it
    cli("collect", "--results", c)
    before = snapshot(tmp_path / "c")
    code, out = cli("import", tmp_path / "bad.tar", "--results", c)
    assert code == 2
    assert "bad.tar" in out and reason in out and "nothing was imported" in out
    assert snapshot(tmp_path / "c") == before
    assert not (tmp_path / "c" / "escaped.txt").exists()
    assert not Path("/tmp/vrbench-absolute-member.txt").exists()


def test_a_config_that_does_not_hash_to_its_run_id_is_refused(tmp_path: Path, suite: Path) -> None:
    ids = write_jobs(tmp_path / "a", suite, {"ilm"}, {0}, 50.0)
    config = tmp_path / "a" / "runs" / ids[0] / "config.json"
    doc = json.loads(config.read_text())
    doc["config"]["lr"] = 0.5  # edited before export: its checksum is right, its id is not
    config.write_text(json.dumps(doc))
    cli("export", "-o", tmp_path / "a.tar", "--results", tmp_path / "a")
    code, out = cli("import", tmp_path / "a.tar", "--results", tmp_path / "c")
    assert code == 2 and f"not to its run id {ids[0]}" in out
    assert not (tmp_path / "c").exists()


def test_a_run_id_with_another_result_keeps_both_and_says_so(tmp_path: Path, suite: Path) -> None:
    a, other, c = tmp_path / "a", tmp_path / "other", tmp_path / "c"
    ids = write_jobs(a, suite, {"ilm"}, {0, 1}, 50.0,
                     env={"device": "cpu", "hostname": "alpha", "torch_version": "2.14.1", "levers": {"fuse": True}})
    write_jobs(other, suite, {"ilm"}, {0, 1}, 70.0,
               env={"device": "cpu", "hostname": "beta", "torch_version": "2.13.0", "levers": {"fuse": False}})
    cli("export", "-o", tmp_path / "a.tar", "--results", a)
    cli("export", "-o", tmp_path / "other.tar.gz", "--results", other)
    assert cli("import", tmp_path / "a.tar", "--results", c)[0] == 0
    code, out = cli("import", tmp_path / "other.tar.gz", "--results", c)
    assert code == 0 and "2 kept beside" in out
    for run_id in ids:  # both kept: ours where it was, theirs beside it
        assert json.loads((c / "runs" / run_id / "env.json").read_text())["hostname"] == "alpha"
        (alternate,) = (c / "alternates" / run_id).iterdir()
        assert json.loads((alternate / "env.json").read_text())["hostname"] == "beta"
    expected = "conflict: 2 results for one job"

    code, out = cli("status", suite, "--results", c)
    assert code == 0 and out.count(expected) == 2
    assert "hostname alpha vs beta" in out and "levers.fuse true vs false" in out and "torch_version" in out
    for fmt, name in (("md", "index.md"), ("html", "index.html"), ("latex", "index.tex")):
        assert cli("report", "--results", c, "--format", fmt, "--out", tmp_path / fmt)[0] == 0
        text = (tmp_path / fmt / name).read_text()
        assert text.count(expected) == 2 and "hostname alpha vs beta" in text, fmt
        assert ("\\ddagger" if fmt == "latex" else "(n=2) ‡") in text, fmt  # the cell of those jobs is marked

    res = Results(c)
    frame = res.conflicts()
    assert len(frame) == 4 and list(frame["counted"]) == [True, False, True, False]
    assert set(frame.loc[frame["counted"], "env.hostname"]) == {"alpha"}
    assert res.runs()["conflict"].str.startswith(expected).sum() == 2
    cells = res.cells(rule="final")  # one result per job is counted: ours
    assert list(cells["n"]) == [2]
    ours = [json.loads((a / "runs" / r / "result.json").read_text())["final_acc"] for r in ids]
    assert cells["mean"].iloc[0] == pytest.approx(sum(ours) / 2)

    before = snapshot(c)  # the alternate is recognised: importing either bundle again writes nothing
    cli("import", tmp_path / "other.tar.gz", tmp_path / "a.tar", "--results", c)
    assert snapshot(c) == before


def test_an_unfinished_local_run_is_never_touched(tmp_path: Path, suite: Path) -> None:
    ids = write_jobs(tmp_path / "a", suite, {"ilm"}, {0}, 50.0)
    cli("export", "-o", tmp_path / "a.tar", "--results", tmp_path / "a")
    c = tmp_path / "c"
    job = next(j for j in load_suite(suite).jobs if j.run_id == ids[0])
    directory = c / "runs" / job.run_id
    write_config(directory, job.run_id, job.method, job.config, runtime={})
    claim = try_claim(directory)  # `vrbench run` is working on it in this very process
    assert claim is not None
    before = snapshot(c)
    code, out = cli("import", tmp_path / "a.tar", "--results", c)
    assert code == 0 and "0 added" in out and "unfinished" in out
    assert snapshot(c) == before
    claim.release()


def test_reports_group_by_where_runs_came_from(tmp_path: Path, suite: Path) -> None:
    write_jobs(tmp_path / "a", suite, {"ilm"}, {0, 1}, 50.0)
    c = tmp_path / "c"
    write_jobs(c, suite, {"ilm"}, {2}, 30.0)  # made here
    cli("export", "-o", tmp_path / "a.tar", "--results", tmp_path / "a")
    cli("import", tmp_path / "a.tar", "--results", c)
    with tarfile.open(tmp_path / "a.tar") as tar:
        host = json.loads(tar.extractfile("manifest.json").read())["exported_by"]["host"]
    assert cli("report", "--results", c, "--group-by", "source_host", "--out", tmp_path / "r")[0] == 0
    text = (tmp_path / "r" / "index.md").read_text()
    assert f"| padding+ilm · efficientnet_lite0 | {host} |" in text
    assert "| padding+ilm · efficientnet_lite0 | local |" in text


def test_rename_noreplace_never_replaces_even_an_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "staged").mkdir()
    (tmp_path / "staged" / "result.json").write_text("{}")
    (tmp_path / "target").mkdir()  # what `vrbench run` leaves for a moment before its claim
    with pytest.raises(FileExistsError):
        rename_noreplace(tmp_path / "staged", tmp_path / "target")
    assert (tmp_path / "staged" / "result.json").exists() and not os.listdir(tmp_path / "target")
    os.rmdir(tmp_path / "target")
    rename_noreplace(tmp_path / "staged", tmp_path / "target")
    assert (tmp_path / "target" / "result.json").exists()


def test_a_conflict_travels_with_the_bundle(tmp_path: Path, suite: Path) -> None:
    a, other, c, d = (tmp_path / n for n in ("a", "other", "c", "d"))
    ids = write_jobs(a, suite, {"flm"}, {1}, 50.0, env={"hostname": "alpha"})
    write_jobs(other, suite, {"flm"}, {1}, 65.0, env={"hostname": "beta"})
    cli("export", "-o", tmp_path / "a.tar", "--results", a)
    cli("export", "-o", tmp_path / "other.tar", "--results", other)
    cli("import", tmp_path / "a.tar", tmp_path / "other.tar", "--results", c)
    code, out = cli("export", "-o", tmp_path / "c.tar", "--results", c)
    assert code == 0 and "1 other result" in out
    assert cli("import", tmp_path / "c.tar", "--results", d)[0] == 0
    (conflict,) = conflicts(d)
    assert conflict.run_id == ids[0] and conflict.env == {"hostname": ["alpha", "beta"]}
    assert [r.counted for r in conflict.results] == [True, False]
    provenance = json.loads((d / "runs" / ids[0] / "provenance.json").read_text())
    assert provenance["bundle"] == "c.tar" and provenance["previous"]["bundle"] == "a.tar"


def test_bundle_commands_do_not_import_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, vrbench.share.commands, vrbench.share.importer, vrbench.share.bundle; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False"


def test_export_selects_a_suites_done_jobs_or_named_runs(tmp_path: Path, suite: Path) -> None:
    a = tmp_path / "a"
    ids = write_jobs(a, suite, {"ilm"}, {0, 1}, 50.0)
    other = tmp_path / "other.yaml"
    other.write_text(SUITE.replace("mapping: [ilm, flm, blm]", "mapping: [ilm]").replace("seed: [0, 1, 2]",
                                                                                          "seed: [1]"))
    code, out = cli("export", "-o", tmp_path / "s.tar", "--results", a, "--suite", other)
    assert code == 0 and "exported 1 run(s)" in out
    with tarfile.open(tmp_path / "s.tar") as tar:
        assert [e["run_id"] for e in json.loads(tar.extractfile("manifest.json").read())["runs"]] == [ids[1]]
    code, out = cli("export", "-o", tmp_path / "x.tar", "--results", a, "--run-id", "00000000000000ff")
    assert code == 2 and "not done" in out and not (tmp_path / "x.tar").exists()


def test_a_conflict_names_what_differs_in_the_environment_not_paths_or_times() -> None:
    from vrbench.share.conflicts import JobResult, make_conflict

    def env(host: str, argv: str, started: str, fuse: str) -> dict:
        return {"hostname": host, "argv": ["worker.py", argv], "torch_version": "2.14.1",
                "levers": {"fold_batchnorm": "on", "fuse_activations": fuse, "shared_border": "off"},
                "sessions": [{"session": 1, "started_at": started, "fuse_activations": fuse}]}

    here = JobResult("r", "k1", True, "runs/r", "done", 40.0, 41.0, None, 5, None,
                     env("a", "/home/me/results/runs/r", "2026-12-01T10:00:00", "on"))
    there = JobResult("r", "k2", False, "alternates/r/k2", "done", 40.0, 41.5, None, 5, None,
                      env("b", "/scratch/results/runs/r", "2026-12-02T11:00:00", "off"))
    conflict = make_conflict([here, there])
    note = conflict.note
    assert "best_test_acc 41.00 vs 41.50" in note and "hostname a vs b" in note
    assert "levers.fuse_activations on vs off" in note
    assert "argv" not in note and "sessions" not in note and "started_at" not in note
    assert "argv" not in conflict.env and "sessions" in conflict.env  # the pages show the sessions side by side
    assert "final_acc" not in note and "torch_version" not in note  # equal values are not differences

"""Plugins: discovery through entry points and a suite's `plugins:`, honest hashes, helpful errors, the example.

Plugin packages are real distributions on a directory put on PYTHONPATH: either the example plugin installed with
pip (`pip install --target`, so nothing is installed into the shared environment) or small distributions whose
dist-info (METADATA + entry_points.txt) the tests write, which importlib.metadata reads the same way. Every
command runs as a subprocess, so each sees a fresh discovery.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vrbench.errors import ConfigError
from vrbench.plugins import check_job_sources
from vrbench.suite import load_suite

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "vrbench-example-plugin"
EXAMPLE_SUITE = EXAMPLE / "suite.yaml"
SMOKE = REPO / "suites" / "smoke.yaml"
# padding+ilm on digits, seed 0, of suites/smoke.yaml, computed on main at 38f06e8 before plugins existed: built-in
# jobs must keep their ids so existing results stay valid.
BUILTIN_SMOKE_ID = "19206990a1cd168c"

MAPPING_META = textwrap.dedent("""\
    from vrbench.api import MappingInfo
    ENTRY = MappingInfo("{name}", "vrbench.methods.label_mappings:IterativeMapping", version=1, one_to_one=True,
                        params={{"mapping_interval": 1, "mapping_mode": "faithful"}}, description="{description}")
""")
VR_SUITE = textwrap.dedent("""\
    name: plug
    {extra}
    grid:
      input: [padding]
      mapping: [ilm, {mapping}]
      backbone: [efficientnet_lite0]
      dataset: [digits]
      seed: [0]
    defaults: {{epochs: 1, subset: {{train: 20, test: 20}}, image_size: 32, canvas: 64}}
""")


def make_dist(site: Path, name: str, version: str, entry_points: dict[str, dict[str, str]],
              files: dict[str, str]) -> None:
    """An installed distribution as pip leaves it: its modules and a dist-info with METADATA and entry points."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, entries in entry_points.items():
        lines += [f"[{group}]", *(f"{key} = {value}" for key, value in entries.items()), ""]
    (info / "entry_points.txt").write_text("\n".join(lines))
    for relative, text in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_text(text)


def mapping_dist(site: Path, package: str, version: str, name: str, description: str = "a test mapping") -> None:
    module = package.replace("-", "_")
    make_dist(site, package, version, {"vrbench.mappings": {name: f"{module}:ENTRY"}},
              {f"{module}/__init__.py": MAPPING_META.format(name=name, description=description)})


def env_with(*sites: Path) -> dict[str, str]:
    paths = [str(s) for s in sites] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "COLUMNS": "250"}


def vrbench(*args: str, sites: tuple[Path, ...] = (), cwd: Path = REPO, timeout: float = 120,
            ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vrbench.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env_with(*sites), timeout=timeout)


IDS = textwrap.dedent("""\
    import json, sys
    from vrbench.suite import load_suite
    print(json.dumps({job.label(): [job.run_id, job.config.get("plugins")] for job in load_suite(sys.argv[1]).jobs}))
""")


def job_ids(suite: Path, *sites: Path) -> dict[str, list]:
    """label -> [run_id, config["plugins"]] of a suite's jobs, expanded in a process that sees ``sites``."""
    out = subprocess.run([sys.executable, "-c", IDS, str(suite)], capture_output=True, text=True, cwd=REPO,
                         env=env_with(*sites), timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def pip_install(source: Path, target: Path) -> None:
    """Install a plugin into ``target`` only (not into the shared environment), as `pip install ./plugin` would."""
    # Build with the environment's setuptools where it has one (offline); else pip fetches it for the build.
    offline = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    args = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), *offline,
            str(source)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr


def copy_example(destination: Path, version: str | None = None) -> Path:
    """The example plugin's source, copied so building it leaves the checkout clean; optionally re-versioned."""
    shutil.copytree(EXAMPLE, destination, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    if version is not None:
        pyproject = destination / "pyproject.toml"
        text = pyproject.read_text()
        assert 'version = "0.1.0"' in text
        pyproject.write_text(text.replace('version = "0.1.0"', f'version = "{version}"'))
    return destination


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin pip-installed into its own directory."""
    tmp = tmp_path_factory.mktemp("example")
    pip_install(copy_example(tmp / "src"), tmp / "site")
    return tmp / "site"


# ------------------------------------------------------------------------------------------------ hashes


def test_builtin_job_ids_are_unchanged_by_plugin_support() -> None:
    jobs = {job.label(): job for job in load_suite(SMOKE).jobs}
    job = jobs["padding+ilm efficientnet_lite0 digits seed=0"]
    assert job.run_id == BUILTIN_SMOKE_ID
    assert "plugins" not in job.config


def test_plugin_package_version_goes_into_the_hash(tmp_path: Path) -> None:
    for version in ("1.0", "1.1"):
        mapping_dist(tmp_path / version, "lab-maps", version, "labmap")
    suite = tmp_path / "suite.yaml"
    suite.write_text(VR_SUITE.format(extra="", mapping="labmap"))
    old, new = job_ids(suite, tmp_path / "1.0"), job_ids(suite, tmp_path / "1.1")
    plugin, builtin = "padding+labmap efficientnet_lite0 digits seed=0", "padding+ilm efficientnet_lite0 digits seed=0"
    assert old[plugin][1] == {"mapping": "lab-maps==1.0"}
    assert new[plugin][1] == {"mapping": "lab-maps==1.1"}
    assert old[plugin][0] != new[plugin][0]
    assert old[builtin] == new[builtin] and old[builtin][1] is None


def test_local_plugin_module_is_hashed_by_its_code(tmp_path: Path) -> None:
    module = tmp_path / "my_lab_vr.py"
    module.write_text("from vrbench.api import register\n"
                      + MAPPING_META.format(name="localmap", description="local") + "register(ENTRY)\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text(VR_SUITE.format(extra="plugins: [my_lab_vr]", mapping="localmap"))
    first = job_ids(suite)["padding+localmap efficientnet_lite0 digits seed=0"]
    assert first[1]["mapping"].startswith("local:my_lab_vr==sha256:")
    module.write_text(module.read_text() + "# a change\n")
    second = job_ids(suite)["padding+localmap efficientnet_lite0 digits seed=0"]
    assert second[0] != first[0]


def test_dataset_and_clip_method_plugins_are_hashed(tmp_path: Path) -> None:
    meta = textwrap.dedent("""\
        from dataclasses import replace
        from vrbench.api import ClipMethodInfo, DatasetInfo
        from vrbench.datasets import DATASETS
        DIGITS2 = replace(DATASETS.get("digits"), name="digits2")
        PROMPT = ClipMethodInfo("myprompt", 1, params={"n_ctx": 4}, defaults={"epochs": 2},
                                implementation="vrbench.clip.methods:CoOp")
    """)
    make_dist(tmp_path / "site", "lab-data", "2.0", {"vrbench.datasets": {"digits2": "lab_data:DIGITS2"},
                                                      "vrbench.clip_methods": {"myprompt": "lab_data:PROMPT"}},
              {"lab_data/__init__.py": meta})
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: p\nprotocol: fewshot\ngrid: {method: [myprompt, coop], backbone: [clip_tiny], "
                     "dataset: [digits2], shots: [1], seed: [1]}\n")
    jobs = job_ids(suite, tmp_path / "site")
    assert jobs["myprompt clip_tiny digits2 1-shot seed=1"][1] == {"method": "lab-data==2.0",
                                                                     "dataset": "lab-data==2.0"}
    assert jobs["coop clip_tiny digits2 1-shot seed=1"][1] == {"dataset": "lab-data==2.0"}


def test_worker_refuses_a_job_planned_with_another_plugin_version(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    mapping_dist(tmp_path, "lab-maps", "1.1", "labmap")
    monkeypatch.syspath_prepend(str(tmp_path))
    check_job_sources({"plugins": {"mapping": "lab-maps==1.1"}})  # the installed version: runs
    with pytest.raises(ConfigError, match=r"planned with lab-maps 1\.0 .* but 1\.1 is installed"):
        check_job_sources({"plugins": {"mapping": "lab-maps==1.0"}})
    with pytest.raises(ConfigError, match=r"not installed here: pip install 'gone-pkg==3'"):
        check_job_sources({"plugins": {"mapping": "gone-pkg==3"}})


# ------------------------------------------------------------------------------------------------ errors


def test_unknown_method_names_the_required_package_and_how_to_install_it(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(VR_SUITE.format(extra="requires: [vrbench-lab-maps]", mapping="labmap"))
    out = vrbench("run", str(suite), "--dry-run")
    assert out.returncode == 2
    assert "unknown mapping 'labmap'" in out.stderr
    assert "requires vrbench-lab-maps, which is not installed: pip install vrbench-lab-maps" in out.stderr
    # without `requires:` the error still says how plugins are installed, and suggests the closest known name
    suite.write_text(VR_SUITE.format(extra="", mapping="ilmm"))
    out = vrbench("run", str(suite), "--dry-run")
    assert out.returncode == 2
    assert "Did you mean 'ilm'?" in out.stderr and "install its package (pip install <package>)" in out.stderr


def test_broken_plugin_is_reported_once_and_builtins_still_work(tmp_path: Path) -> None:
    site = tmp_path / "site"
    make_dist(site, "broken-vr", "0.3", {"vrbench.mappings": {"brokenmap": "broken_vr:MAP"},
                                         "vrbench.inputs": {"brokeninput": "broken_vr:INPUT"}},
              {"broken_vr/__init__.py": "import a_module_that_does_not_exist\n"})
    mapping_dist(site, "good-maps", "1.0", "goodmap")
    listing = vrbench("ls", "methods", sites=(site,))
    assert listing.returncode == 0, listing.stderr
    assert listing.stderr.count("broken-vr 0.3 failed to load") == 1  # once, for both of its entries
    assert "brokenmap" in listing.stderr and "brokeninput" in listing.stderr
    assert "No module named 'a_module_that_does_not_exist'" in listing.stderr
    assert " ilm " in listing.stdout and "goodmap" in listing.stdout and "good-maps 1.0" in listing.stdout
    builtin = vrbench("run", str(SMOKE), "--dry-run", sites=(site,))
    assert builtin.returncode == 0 and BUILTIN_SMOKE_ID in builtin.stdout
    suite = tmp_path / "suite.yaml"
    suite.write_text(VR_SUITE.format(extra="", mapping="brokenmap"))
    used = vrbench("run", str(suite), "--dry-run", sites=(site,))
    assert used.returncode == 2
    assert "comes from plugin package broken-vr 0.3, which failed to load" in used.stderr


def test_two_plugins_registering_one_name_is_an_error_naming_both(tmp_path: Path) -> None:
    mapping_dist(tmp_path / "a", "maps-alpha", "1.0", "samename")
    mapping_dist(tmp_path / "b", "maps-beta", "2.0", "samename")
    out = vrbench("ls", "methods", sites=(tmp_path / "a", tmp_path / "b"))
    assert out.returncode == 2
    assert "mapping 'samename' is registered twice" in out.stderr
    assert "maps-alpha 1.0" in out.stderr and "maps-beta 2.0" in out.stderr
    run = vrbench("run", str(SMOKE), "--dry-run", sites=(tmp_path / "a", tmp_path / "b"))
    assert run.returncode == 2 and "registered twice" in run.stderr  # nothing runs on an ambiguous catalogue
    mapping_dist(tmp_path / "c", "maps-gamma", "1.0", "ilm")  # a plugin may not replace a built-in either
    out = vrbench("ls", "methods", sites=(tmp_path / "c",))
    assert out.returncode == 2 and "mapping 'ilm' is registered twice: by built-in and by package maps-gamma 1.0" \
        in " ".join(out.stderr.split())


def test_suite_plugins_module_that_fails_to_import_names_it(tmp_path: Path) -> None:
    (tmp_path / "bad_lab.py").write_text("raise RuntimeError('half-written plugin')\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text(VR_SUITE.format(extra="plugins: [bad_lab]", mapping="ilm"))
    out = vrbench("run", str(suite), "--dry-run")
    assert out.returncode == 2
    assert "plugin module 'bad_lab' failed to import: RuntimeError: half-written plugin" in out.stderr


@pytest.mark.parametrize("ending", ["sys.exit(3)", "sys.exit(0)", "raise GeneratorExit('odd')"])
def test_a_plugin_that_exits_at_import_is_reported_and_builtins_still_work(tmp_path: Path, ending: str) -> None:
    """sys.exit() (or another BaseException) in a plugin's import used to end `ls` and `run` silently with its exit
    code; now it is a failure like any other: one warning, the built-ins listed and runnable."""
    site = tmp_path / "site"
    make_dist(site, "exiting-vr", "0.2", {"vrbench.mappings": {"exitmap": "exiting_vr:MAP"}},
              {"exiting_vr/__init__.py": f"import sys\n{ending}\n"})
    listing = vrbench("ls", "methods", sites=(site,))
    assert listing.returncode == 0, listing.stderr
    assert listing.stderr.count("exiting-vr 0.2 failed to load") == 1
    reason = ("it raised GeneratorExit while being imported: odd" if "Generator" in ending
              else f"it called {ending} while being imported")
    assert f"PluginExitError: {reason}" in listing.stderr
    assert " ilm " in listing.stdout
    dry = vrbench("run", str(SMOKE), "--dry-run", sites=(site,))
    assert dry.returncode == 0 and BUILTIN_SMOKE_ID in dry.stdout
    (tmp_path / "exiting_lab.py").write_text(f"import sys\n{ending}\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text(VR_SUITE.format(extra="plugins: [exiting_lab]", mapping="ilm"))
    out = vrbench("run", str(suite), "--dry-run")
    assert out.returncode == 2
    assert "plugin module 'exiting_lab' failed to import: PluginExitError" in out.stderr


def test_a_plugin_that_prints_at_import_leaves_stdout_to_the_command(tmp_path: Path) -> None:
    site = tmp_path / "site"
    make_dist(site, "chatty-maps", "1.0", {"vrbench.mappings": {"chattymap": "chatty_maps:ENTRY"}},
              {"chatty_maps/__init__.py": "print('hello from chatty-maps')\n"
               + MAPPING_META.format(name="chattymap", description="a chatty mapping")})
    (tmp_path / "chatty_lab.py").write_text("print('hello from chatty_lab')\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text(VR_SUITE.format(extra="plugins: [chatty_lab]", mapping="chattymap"))
    for args in (("ls", "methods"), ("run", str(suite), "--dry-run"), ("run", str(suite), "--dry-run", "--format",
                                                                       "json")):
        out = vrbench(*args, sites=(site,))
        assert out.returncode == 0, out.stderr
        assert "hello from" not in out.stdout and "hello from chatty-maps" in out.stderr
    assert "hello from chatty_lab" in out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]  # JSON lines, nothing else
    assert {row["mapping"] for row in rows if "mapping" in row} == {"ilm", "chattymap"}


# ------------------------------------------------------------------------------------- the example plugin


NO_TORCH = textwrap.dedent("""\
    import contextlib, io, json, sys
    from vrbench.cli import main
    report = []
    for args in json.loads(sys.argv[1]):
        sys.argv = ["vrbench", *args]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                main()
            except SystemExit:
                pass
        torch = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        report.append({"args": args, "out": out.getvalue(), "torch": torch[:3]})
    print(json.dumps(report))
""")


def test_help_ls_and_status_import_no_torch_with_the_example_plugin_installed(example_site: Path,
                                                                              tmp_path: Path) -> None:
    commands = [["--help"], ["ls", "methods"], ["status", str(EXAMPLE_SUITE), "--results", str(tmp_path)]]
    out = subprocess.run([sys.executable, "-c", NO_TORCH, json.dumps(commands)], capture_output=True, text=True,
                         cwd=REPO, env=env_with(example_site), timeout=120)
    assert out.returncode == 0, out.stderr
    help_run, ls_run, status_run = json.loads(out.stdout)
    assert "Usage" in help_run["out"] and help_run["torch"] == []
    assert "hlm" in ls_run["out"] and "bounded_full" in ls_run["out"]
    assert ls_run["torch"] == [], "listing the example plugin's methods imported torch"
    assert "bounded_full+hlm" in status_run["out"] and "pending" in status_run["out"]
    assert status_run["torch"] == [], "status of the example suite imported torch"


def test_ls_methods_lists_the_example_plugin_with_its_package(example_site: Path) -> None:
    out = vrbench("ls", "methods", sites=(example_site,))
    assert out.returncode == 0, out.stderr
    rows = {line.split("│")[2].strip(): line for line in out.stdout.splitlines() if line.count("│") > 4}
    assert "vrbench-example-plugin 0.1.0" in rows["hlm"] and "vrbench-example-plugin 0.1.0" in rows["bounded_full"]
    assert "built-in" in rows["ilm"]


@pytest.mark.slow
def test_example_plugin_suite_end_to_end(example_site: Path, tmp_path: Path) -> None:
    """The example suite runs its plugin rows beside a built-in one; reports name the package; a version bump
    changes the plugin jobs' ids and no built-in one."""
    results, reports = tmp_path / "results", tmp_path / "reports"
    run = vrbench("run", str(EXAMPLE_SUITE), "--results", str(results), "--device", "cpu", sites=(example_site,),
                  timeout=1800)
    assert run.returncode == 0, run.stdout + run.stderr
    env = json.loads(next((results / "runs").glob("*/env.json")).read_text())
    assert {"group": "vrbench.mappings", "name": "hlm", "source": "vrbench-example-plugin==0.1.0"} \
        in env["plugins"]["loaded"]
    for fmt in ("md", "html"):
        out = vrbench("report", "--results", str(results), "--suite", str(EXAMPLE_SUITE), "--format", fmt,
                      "--out", str(reports), sites=(example_site,))
        assert out.returncode == 0, out.stderr
        text = (reports / f"index.{fmt}").read_text()
        for method in ("padding+ilm", "padding+hlm", "bounded_full+ilm", "bounded_full+hlm"):
            assert f"{method} · efficientnet_lite0" in text, (fmt, method)
        assert text.count("vrbench-example-plugin==0.1.0") >= 3 and "built-in" in text
    markdown = (reports / "index.md").read_text()
    builtin_row = next(line for line in markdown.splitlines() if line.startswith("| padding+ilm"))
    assert "| built-in |" in builtin_row

    bumped = tmp_path / "bumped"
    pip_install(copy_example(bumped / "src", version="0.1.1"), bumped / "site")
    before, after = job_ids(EXAMPLE_SUITE, example_site), job_ids(EXAMPLE_SUITE, bumped / "site")
    assert before.keys() == after.keys() and len(before) == 4
    for label in before:
        if label.startswith("padding+ilm"):
            assert before[label] == after[label]
        else:
            assert before[label][0] != after[label][0], label
            assert "vrbench-example-plugin==0.1.1" in after[label][1].values()


@pytest.mark.slow
def test_local_plugin_module_runs_in_the_workers(tmp_path: Path) -> None:
    """A suite's `plugins:` module (next to the suite file, not installed) is imported by the worker processes too."""
    (tmp_path / "my_lab_vr.py").write_text("from vrbench.api import register\n"
                                           + MAPPING_META.format(name="localmap", description="local") +
                                           "register(ENTRY)\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text(VR_SUITE.format(extra="plugins: [my_lab_vr]", mapping="localmap").replace("[ilm, localmap]",
                                                                                             "[localmap]"))
    results = tmp_path / "results"
    out = vrbench("run", str(suite), "--results", str(results), "--device", "cpu", cwd=REPO, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    (run_dir,) = (results / "runs").iterdir()
    assert json.loads((run_dir / "result.json").read_text())["status"] == "done"
    record = json.loads((run_dir / "env.json").read_text())["plugins"]["job"]["mapping"]
    assert record.startswith("local:my_lab_vr==sha256:")


def test_a_plugin_dataset_is_left_to_its_own_loader_by_the_preflight(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from vrbench.datasets import DATASETS
    from vrbench.datasets.verify import verify_for_suite
    from vrbench.plugins import isolated_state

    meta = ("from dataclasses import replace\nfrom vrbench.datasets import DATASETS\n"
            "SHAPES = replace(DATASETS.get('cifar10'), name='labshapes', folder='labshapes')\n")
    make_dist(tmp_path, "lab-shapes", "1.0", {"vrbench.datasets": {"labshapes": "lab_shapes:SHAPES"}},
              {"lab_shapes/__init__.py": meta})
    monkeypatch.syspath_prepend(str(tmp_path))
    with isolated_state():
        assert DATASETS.source("labshapes").record() == "lab-shapes==1.0"
        assert verify_for_suite(["labshapes"], tmp_path / "data") == []  # cifar10's checks would fail here
        assert verify_for_suite(["cifar10"], tmp_path / "data") != []
    monkeypatch.undo()  # the package leaves sys.path: the restored catalogue no longer has its entry
    assert "labshapes" not in DATASETS

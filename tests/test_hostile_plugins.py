"""Plugin names obey the rule of every registry name (issue 25, item 3).

A name goes into suite files, job configs, cache and figure file names, CLI tables and reports; a plugin that brings
one outside ``[a-z][a-z0-9_]{0,63}`` is skipped with a warning (entry points) or refused (local modules), and the
built-ins keep working.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vrbench.errors import ConfigError
from vrbench.methods import MAPPINGS
from vrbench.registry import NAME_PATTERN, Registry, check_name
from vrbench.suite import load_suite
from vrbench.testing.hostile import HOSTILE_STRINGS

BAD_NAMES = [*HOSTILE_STRINGS.values(), "Upper", "has-dash", "dots.in.name", "1digit_first", "_under", "x" * 65, "",
             "sp ace", "ünï"]
META = textwrap.dedent("""\
    from vrbench.api import MappingInfo
    ENTRY = MappingInfo({name!r}, "vrbench.methods.label_mappings:IterativeMapping", version=1, one_to_one=True,
                        params={{"mapping_interval": 1, "mapping_mode": "faithful"}}, description="test")
""")


def test_every_builtin_name_obeys_the_rule() -> None:
    import vrbench.api  # noqa: F401 - loads every registry

    names = [name for registry in Registry.instances for name in registry._entries]
    assert len(names) > 50 and all(NAME_PATTERN.fullmatch(n) for n in names)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="not allowed"):
        check_name("mapping", name)
    before = MAPPINGS.names()
    with pytest.raises(ConfigError):
        MAPPINGS.register(name, MAPPINGS.get("ilm"))
    assert MAPPINGS.names() == before


def test_installed_plugin_with_a_bad_name_is_skipped_with_a_warning(tmp_path: Path) -> None:
    site = tmp_path / "site"
    info = site / "evil_maps-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: evil-maps\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[vrbench.mappings]\nbad-name = evil_maps.bad:ENTRY\n"
                                           "Evil$Name = evil_maps.dollar:ENTRY\ngood_name = evil_maps.good:ENTRY\n")
    for module, name in (("bad", "bad-name"), ("dollar", "Evil$Name"), ("good", "good_name")):
        (site / "evil_maps").mkdir(exist_ok=True)
        (site / "evil_maps" / f"{module}.py").write_text(META.format(name=name))
    (site / "evil_maps" / "__init__.py").write_text("")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "250"}
    out = subprocess.run([sys.executable, "-m", "vrbench.cli", "ls", "methods"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "good_name" in out.stdout and "ilm" in out.stdout
    assert "bad-name" not in out.stdout and "Evil$Name" not in out.stdout
    assert "evil-maps 1.0 failed to load" in out.stderr
    assert "'bad-name' is not allowed" in out.stderr and "'Evil$Name' is not allowed" in out.stderr


def test_local_plugin_module_with_a_bad_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "lab_bad.py").write_text(META.format(name="a[/]b") + "from vrbench.api import register\n"
                                         "register(ENTRY)\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: p\nplugins: [lab_bad]\ngrid: {input: [padding], mapping: [ilm], "
                     "backbone: [efficientnet_lite0], dataset: [digits], seed: [0]}\n")
    with pytest.raises(ConfigError, match="not allowed"):
        load_suite(suite)
    sys.modules.pop("lab_bad", None)

"""Issue 10, "settings to correct": each paper-suite cell resolves to the setting its paper used, and job ids
change exactly where a setting changed (so finished results are reused only for identical settings)."""

from __future__ import annotations

import re
from pathlib import Path

from vrbench.registry import Registry, load_object
from vrbench.suite import load_suite  # importing the suite module fills every registry

SUITES = Path(__file__).resolve().parent.parent / "suites"
IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def test_every_registered_implementation_path_imports() -> None:
    kinds = {registry.kind for registry in Registry.instances}
    assert {"backbone", "dataset", "input", "mapping", "method"} <= kinds
    for registry in Registry.instances:
        for entry in registry:
            for field, value in vars(entry).items():
                if isinstance(value, str) and IMPORT_PATH.match(value):  # a path a registry forgot to declare
                    assert field in registry.paths, f"{registry.kind} field {field!r} holds an import path"
            for field in registry.paths:
                target = load_object(getattr(entry, field))
                assert callable(target), f"{registry.kind} {entry.name}: {getattr(entry, field)} is not callable"


def test_every_clip_method_that_builds_a_model_has_one() -> None:
    from vrbench.clip.methods import METHODS
    from vrbench.methods.clip_catalog import CLIP_METHODS

    assert {m.name for m in CLIP_METHODS if m.kind != "linear_probe"} == set(METHODS)


def test_suites_load() -> None:
    assert load_suite(SUITES / "smoke.yaml").jobs

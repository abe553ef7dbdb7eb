"""vrbench.datasets imports in one direction: metadata, then listings and the cache, loaders, verify, prepare.

Every import of a package module, at module level or inside a function, is read from the source with ``ast``; a
module may import only modules of a lower layer or of its own layer, and the import graph must have no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import vrbench.datasets

PACKAGE = Path(vrbench.datasets.__file__).parent
LAYERS: list[set[str]] = [
    {"__init__", "info", "catalog", "classnames", "layouts", "roots"},  # metadata, no torch
    {"checksums", "space", "listing", "cache", "images", "subsets"},  # file listings, the cache, shared helpers
    {"files"},  # decoding a file list through the cache
    {"coop", "cifar", "torchvision_sets", "digits", "abide", "animal_shapes", "fewshot"},  # loaders and draws
    {"verify"},
    {"prepare"},
]
LAYER_OF = {module: rank for rank, modules in enumerate(LAYERS) for module in modules}


def imported_modules(source: str) -> set[str]:
    """Modules of vrbench.datasets that ``source`` imports (``from vrbench.datasets import X`` names module X when
    X is a module, else the package ``__init__``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "vrbench.datasets":
                for alias in node.names:
                    found.add(alias.name if (PACKAGE / f"{alias.name}.py").is_file() else "__init__")
            elif node.module.startswith("vrbench.datasets."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("vrbench.datasets."):
                    found.add(alias.name.split(".")[2])
    return found


def import_graph() -> dict[str, set[str]]:
    return {path.stem: imported_modules(path.read_text(encoding="utf-8")) - {path.stem}
            for path in PACKAGE.glob("*.py")}


def test_every_module_has_a_layer() -> None:
    assert set(import_graph()) == set(LAYER_OF), "add new modules of vrbench/datasets to LAYERS"


def test_no_module_imports_a_module_above_it() -> None:
    upward = [f"{module} (layer {LAYER_OF[module]}) imports {target} (layer {LAYER_OF[target]})"
              for module, targets in import_graph().items() for target in targets
              if LAYER_OF[target] > LAYER_OF[module]]
    assert upward == []


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, "import cycle: " + " -> ".join((*path, module))
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, (*path, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())


def test_the_checker_sees_function_level_imports() -> None:
    # a loader that imported prepare inside a function (as the loaders did for --download) would be caught
    source = "def load():\n    from vrbench.datasets.prepare import prepare_dataset\n"
    assert imported_modules(source) == {"prepare"}
    assert imported_modules("from vrbench.datasets import DATASETS, coop\n") == {"__init__", "coop"}

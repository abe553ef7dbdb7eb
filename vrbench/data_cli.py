"""`vrbench data ...`: list, prepare and verify datasets (a typer sub-app; the main CLI mounts it as `data`).

`ls` stays cheap (no torch import: metadata and ``stat`` calls only). Every user-fixable failure is one line;
`verify` lists every problem at once with its path and fix, and exits 1 when any is an error.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vrbench.errors import VrbenchError

data_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                       help="List, prepare and verify datasets. Data root: --data-root, else $VRBENCH_DATA, else "
                            "data_root in ~/.config/vrbench/config.yaml, else ./data.")
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

DataRootOpt = Annotated[Path | None, typer.Option(
    "--data-root", help="dataset root (default: $VRBENCH_DATA, else the config file's data_root, else ./data)")]
NamesArg = Annotated[list[str], typer.Argument(help="dataset names (see `vrbench data ls`); 'vr' / 'prompt' / "
                                                    "'offline' select a whole group")]
STATE_COLOURS = {"ready": "green", "missing": "red", "partial": "yellow"}


class Level(str, Enum):
    quick = "quick"
    headers = "headers"
    decode = "decode"


def _fail(exc: VrbenchError) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _root(option: Path | None):
    from vrbench.datasets.roots import resolve_data_root

    return resolve_data_root(option)


def expand_names(names: list[str]) -> list[str]:
    """Dataset names with the groups 'vr', 'prompt', 'offline' and 'all' expanded; unknown names suggest."""
    from vrbench.datasets import DATASETS
    from vrbench.datasets.catalog import DOMAIN_SHIFT_DATASETS, PROMPT_DATASETS, VR_DATASETS

    groups = {"vr": list(VR_DATASETS), "prompt": [*PROMPT_DATASETS, *DOMAIN_SHIFT_DATASETS],
              "offline": [d.name for d in DATASETS if d.offline], "all": DATASETS.names()}
    out: list[str] = []
    for name in names:
        chosen = groups.get(name) or [DATASETS.get(name).name]  # get() raises with a suggestion
        out += [n for n in chosen if n not in out]
    return out


@data_app.command("ls")
def ls(data_root: DataRootOpt = None) -> None:
    """Every dataset with its state here (ready / missing / partial) and where vrbench looks for it."""
    from vrbench.datasets import DATASETS
    from vrbench.datasets.roots import cache_dir, cache_enabled, config_path
    from vrbench.datasets.verify import dataset_state

    try:
        root = _root(data_root)
        cache = f"{cache_dir()}" if cache_enabled() else "off (VRBENCH_CACHE=0)"
    except VrbenchError as exc:
        raise _fail(exc) from None
    console.print(f"data root: [bold]{escape(str(root.path.absolute()))}[/] (from {escape(root.source)})",
                  highlight=False)
    console.print(f"lookup order: --data-root, $VRBENCH_DATA, data_root in {escape(str(config_path()))}, ./data",
                  highlight=False)
    console.print(f"decoded-image cache: {escape(cache)}", highlight=False)
    table = Table(title_justify="left")
    for column in ("name", "state", "classes", "train", "val", "test", "VR size", "protocols", "prepare", "where"):
        table.add_column(column, overflow="fold")
    counts = {"ready": 0, "missing": 0, "partial": 0}
    for info in DATASETS:
        state, detail = dataset_state(info, root.path.absolute())
        counts[state] += 1
        colour = STATE_COLOURS[state]
        table.add_row(info.name, f"[{colour}]{state}[/]", str(info.num_classes), f"{info.train_size:,}",
                      "-" if info.val_size is None else f"{info.val_size:,}", f"{info.test_size:,}",
                      str(info.vr_image_size), ",".join(info.protocols), info.prepare, escape(detail))
    console.print(table)
    console.print("  ".join(f"{state}: {n}" for state, n in counts.items()))


@data_app.command()
def prepare(
    names: NamesArg,
    data_root: DataRootOpt = None,
    wheel: Annotated[Path | None, typer.Option(help="animal_shapes: use this animal-mnist 0.4 wheel instead of "
                                                    "`pip download`")] = None,
    force: Annotated[bool, typer.Option("--force", help="fetch again even when the dataset looks ready")] = False,
) -> None:
    """Download datasets where a download exists (torchvision, original archives, CoOp split files, PyPI);
    otherwise print the exact manual steps."""
    from vrbench.datasets.prepare import prepare_dataset

    try:
        root = _root(data_root).path.absolute()
        chosen = expand_names(names)
    except VrbenchError as exc:
        raise _fail(exc) from None
    failed = 0
    for name in chosen:
        try:
            result = prepare_dataset(name, root, wheel=wheel, force=force)
        except VrbenchError as exc:
            failed += 1
            err_console.print(f"[bold red]{name}:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            continue
        for line in result.lines:
            console.print(escape(line), highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


@data_app.command()
def verify(
    names: NamesArg,
    data_root: DataRootOpt = None,
    level: Annotated[Level, typer.Option(help="quick: no image opened; headers: open each image; decode: decode "
                                              "each image fully (finds truncated files)")] = Level.headers,
) -> None:
    """Check layout, split files, counts per split, image files and checksums; report every problem at once."""
    from vrbench.datasets.verify import format_problems, verify_dataset

    try:
        root = _root(data_root).path.absolute()
        chosen = expand_names(names)
        problems = []
        for name in chosen:
            found = verify_dataset(name, root, level.value)
            problems += found
            if not found:
                console.print(f"[green]ok[/] {name}", highlight=False)
    except VrbenchError as exc:
        raise _fail(exc) from None
    if problems:
        console.print(escape(format_problems(problems)), highlight=False, soft_wrap=True)
    if any(p.severity == "error" for p in problems):
        raise typer.Exit(1)


@data_app.command()
def fewshot(
    names: NamesArg,
    data_root: DataRootOpt = None,
    shots: Annotated[list[int], typer.Option(help="shots per class")] = [1, 2, 4, 8, 16],  # noqa: B006
    seeds: Annotated[list[int], typer.Option(help="seeds")] = [1, 2, 3],  # noqa: B006
) -> None:
    """Write CoOp-style few-shot index files (JSON with a checksum) for every shots x seed."""
    from vrbench.datasets.fewshot import write_fewshot_files

    try:
        root = _root(data_root).path.absolute()
        for name in expand_names(names):
            for path in write_fewshot_files(name, root, shots, seeds):
                console.print(f"wrote {escape(str(path))}", highlight=False)
    except VrbenchError as exc:
        raise _fail(exc) from None


if __name__ == "__main__":  # pragma: no cover
    data_app()

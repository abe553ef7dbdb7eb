"""Out of disk space is an ordinary error: one message naming the directory and what was being written.

A write that fails for lack of space surfaces in many shapes: ``OSError`` with ENOSPC (or EDQUOT, a quota) from
Python's own files, a ``RuntimeError`` chained to one from ``torch.save`` into a file object, DuckDB's
``IOException`` text. ``writing(path, what)`` turns each of them into a ``DiskSpaceError`` at the place that knows
what it was writing; the worker exits with ``DISK_FULL_EXIT`` so that the launcher stops the whole run (every
other job would fail the same way) instead of failing job after job.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

from vrbench.errors import DiskSpaceError

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
DISK_FULL_EXIT = errno.ENOSPC  # a worker that ran out of space exits with 28, which no other path uses
_DISK_FULL_TEXTS = ("no space left on device", "disk quota exceeded")


def is_disk_full(exc: BaseException | None) -> bool:
    """True when ``exc`` or anything it was raised from says the disk (or a quota) is full."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskSpaceError):
            return True
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return True
        if any(text in str(exc).lower() for text in _DISK_FULL_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def free_bytes(path: Path) -> int | None:
    """Free bytes on the filesystem holding ``path`` (or its nearest existing ancestor); None if unknown."""
    path = Path(path).absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def out_of_space(path: Path, what: str) -> DiskSpaceError:
    path = Path(path).absolute()
    free = free_bytes(path.parent)
    left = f"; {free:,} bytes are free there now" if free is not None else ""
    return DiskSpaceError(f"out of disk space in {path.parent} while writing {what} ({path.name}){left}")


@contextlib.contextmanager
def writing(path: Path, what: str) -> Iterator[None]:
    """Turn a failure for lack of space inside the block into one ``DiskSpaceError`` about ``path``."""
    try:
        yield
    except DiskSpaceError:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise out_of_space(path, what) from exc
        raise


def describe(exc: BaseException) -> str:
    """The message of a disk-full failure: ours when it is a ``DiskSpaceError``, else the system's own."""
    if isinstance(exc, DiskSpaceError):
        return str(exc)
    where = getattr(exc, "filename", None)
    return f"out of disk space{f' writing {where}' if where else ''}: {exc}"

"""Refuse to start writing what the disk cannot hold, with one message that says how to make room.

A write that runs out of space half-way leaves a broken file and, for a memory-mapped array on tmpfs, kills the
process with SIGBUS. ``ensure_free_space`` asks the filesystem first; ``reserve`` then allocates the file's blocks
up front (``posix_fallocate``), so a race with another writer still ends in the same clear error instead of a
crash. Both raise ``DiskSpaceError``; the decoded-image cache uses them, and any other writer may.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from vrbench.errors import DiskSpaceError


def human_bytes(count: float) -> str:
    """1536 -> '1.5 KiB' (binary units, as `df -h` shows them)."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing ancestor (the directory may not have been created yet)."""
    path = Path(path).absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def writable(path: Path) -> bool:
    """Whether ``path`` (or, when it does not exist yet, the folder it would be created in) can be written."""
    return os.access(_existing(path), os.W_OK)


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding ``path``."""
    return shutil.disk_usage(_existing(path)).free


def _refusal(path: Path, needed: int, free: int, what: str, how_to_move: str) -> DiskSpaceError:
    return DiskSpaceError(
        f"not enough disk space for {what}: it needs {human_bytes(needed)} ({needed:,} bytes), only "
        f"{human_bytes(free)} ({free:,} bytes) are free on the filesystem of {Path(path).absolute()}. "
        f"{how_to_move}")


def ensure_free_space(path: Path, needed_bytes: int, what: str, how_to_move: str) -> None:
    """Raise ``DiskSpaceError`` unless ``needed_bytes`` fit on the filesystem of ``path`` (which may not exist yet).

    ``what`` names the thing to be written; ``how_to_move`` tells the user which setting puts it elsewhere.
    """
    free = free_bytes(path)
    if needed_bytes > free:
        raise _refusal(path, needed_bytes, free, what, how_to_move)


def reserve(file: Path, size: int, what: str, how_to_move: str) -> None:
    """Allocate ``size`` bytes for ``file`` now, so running out of space is an error here and not a crash later."""
    descriptor = os.open(file, os.O_RDWR)
    try:
        os.posix_fallocate(descriptor, 0, size)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise _refusal(file.parent, size, free_bytes(file.parent), what, how_to_move) from None
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # filesystems without fallocate
            raise
    except AttributeError:  # platforms without posix_fallocate: the free-space check above is all there is
        pass
    finally:
        os.close(descriptor)

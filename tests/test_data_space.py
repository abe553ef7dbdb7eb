"""The decoded-image cache on a filesystem that is too small: one clear refusal, nothing half-written, and
`vrbench data cache ls / clear` to see and free the space.

The small filesystem is a real 2 MiB tmpfs. Mounting needs root (the dev container runs as root); elsewhere
the tests fall back to a patched free-space figure (the free-space query only; the decoder is never patched).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vrbench.data_cli import data_app
from vrbench.datasets import DATASETS, files, space
from vrbench.datasets.cache import cache_entries, entry_bytes
from vrbench.errors import DiskSpaceError
from vrbench.testing import write_coop_dataset

SMALL = 2 * 1024 * 1024


@pytest.fixture
def small_fs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on a 2 MiB filesystem (a real tmpfs when mounting is permitted)."""
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL}", "tmpfs", str(mount)],
                             capture_output=True).returncode == 0
    if not mounted:
        monkeypatch.setattr(space, "free_bytes", lambda path: SMALL)
    try:
        yield mount
    finally:
        if mounted:  # lazily when a mapped cache file still holds it: detached now, freed with the last map
            if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.fixture
def dtd_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("VRBENCH_CACHE", raising=False)
    monkeypatch.setenv("VRBENCH_CONFIG", str(tmp_path / "no-config.yaml"))
    write_coop_dataset("dtd", tmp_path / "data", per_class=(1, 1, 1), image_size=(12, 10))
    return tmp_path / "data"


def test_a_cache_too_small_is_refused_before_decoding_with_the_numbers_and_the_fix(
        small_fs: Path, dtd_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = small_fs / "cache"
    monkeypatch.setenv("VRBENCH_CACHE_DIR", str(cache))
    needed = entry_bytes((47, 3, 224, 224))  # 47 training images at 224 px: ~6.8 MiB
    before = files.decoded_images()
    with pytest.raises(DiskSpaceError) as refused:
        DATASETS.get("dtd").load("train", 224, dtd_root, resize="clip")
    message = str(refused.value)
    assert f"needs 6.8 MiB ({needed:,} bytes)" in message
    assert f"free on the filesystem of {cache}" in message and "VRBENCH_CACHE_DIR=" in message
    assert "vrbench data cache clear" in message and "\n" not in message  # one line
    assert files.decoded_images() == before  # refused before decoding anything
    assert list(small_fs.rglob("*")) == []  # nothing written, not even the cache folder
    # a split that fits is cached as usual on the same filesystem
    test = DATASETS.get("dtd").load("test", 32, dtd_root)
    assert len(test) == 47 and [e.images for e in cache_entries(cache)] == [47]


def test_a_write_that_loses_a_race_for_space_fails_cleanly_and_leaves_no_partial_file(
        small_fs: Path, dtd_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not subprocess.run(["mountpoint", "-q", str(small_fs)]).returncode == 0:
        pytest.skip("needs a real small filesystem (mounting a tmpfs requires root); the refusal itself is tested "
                    "above with the patched free-space figure")
    monkeypatch.setenv("VRBENCH_CACHE_DIR", str(small_fs / "cache"))
    # another writer filled the disk after the check: the check sees room, the block reservation does not
    monkeypatch.setattr(space, "free_bytes", lambda path: 1 << 40)
    before = files.decoded_images()
    with pytest.raises(DiskSpaceError, match="not enough disk space for the decoded-image cache entry"):
        DATASETS.get("dtd").load("train", 224, dtd_root, resize="clip")
    assert files.decoded_images() == before
    assert [p.name for p in (small_fs / "cache").iterdir() if not p.name.endswith(".lock")] == []


runner = CliRunner()


def test_cache_ls_and_clear_show_and_free_the_space(dtd_root: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRBENCH_CACHE_DIR", str(tmp_path / "cache"))
    write_coop_dataset("eurosat", dtd_root, per_class=(2, 1, 1), image_size=(12, 10))
    DATASETS.get("dtd").load("train", 32, dtd_root)
    DATASETS.get("dtd").load("test", 32, dtd_root)
    DATASETS.get("eurosat").load("train", 32, dtd_root)
    listed = runner.invoke(data_app, ["cache", "ls"], catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    assert "3 entries" in listed.output and "dtd" in listed.output and "eurosat" in listed.output
    on_disk = sum(path.stat().st_size for path in (tmp_path / "cache").glob("*.npy"))
    assert f"3 entries, {space.human_bytes(on_disk)}: dtd" in listed.output

    declined = runner.invoke(data_app, ["cache", "clear", "dtd"], input="n\n")
    assert declined.exit_code == 1 and "delete the entries of dtd (2 files" in declined.output
    assert len(cache_entries(tmp_path / "cache")) == 3  # asked first, nothing deleted

    cleared = runner.invoke(data_app, ["cache", "clear", "dtd", "--yes"], catch_exceptions=False)
    assert cleared.exit_code == 0 and "deleted 2 entries" in cleared.output
    assert [e.dataset for e in cache_entries(tmp_path / "cache")] == ["eurosat"]

    everything = runner.invoke(data_app, ["cache", "clear", "--all"], input="y\n", catch_exceptions=False)
    assert everything.exit_code == 0 and cache_entries(tmp_path / "cache") == []
    assert runner.invoke(data_app, ["cache", "clear"]).exit_code == 2  # neither a dataset nor --all


def test_a_read_only_cache_decodes_into_memory_instead_of_refusing(dtd_root: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    mount = tmp_path / "readonly"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a read-only tmpfs needs root, which this test process does not have")
    try:
        monkeypatch.setenv("VRBENCH_CACHE_DIR", str(mount / "cache"))
        with pytest.warns(UserWarning, match="is not writable"):
            loaded = DATASETS.get("dtd").load("train", 224, dtd_root, resize="clip")  # free space 0: not checked
        assert len(loaded) == 47 and list(mount.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mount)], check=True)

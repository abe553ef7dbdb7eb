"""Checkpoint files in torch hub's directory: find, download (when a network allows) or explain.

Every backbone whose weights do not ship in a package goes through here, so the offline message is the same
everywhere: the URL to fetch, the exact path to put it at, and that TORCH_HOME moves that directory.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import torch

from vrbench.errors import MissingResourceError

DOWNLOAD_TIMEOUT_S = 15.0  # per socket operation; an unreachable host fails fast instead of hanging a worker


def checkpoint_path(url: str) -> str:
    """Where torch hub keeps this checkpoint: $TORCH_HOME/hub/checkpoints/<basename of the URL>."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))


def download(url: str, dst: str) -> None:
    """torch hub's download (hash-checked when the name carries a hash, atomic rename) with a socket timeout."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    match = torch.hub.HASH_REGEX.search(os.path.basename(dst))
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        torch.hub.download_url_to_file(url, dst, hash_prefix=match.group(1) if match else None, progress=False)
    finally:
        socket.setdefaulttimeout(previous)


def ensure_checkpoint(backbone: str, url: str, what: str) -> str:
    """The local path of `url`'s checkpoint, downloading it if possible; a clear error otherwise."""
    path = checkpoint_path(url)
    if os.path.isfile(path):
        return path
    try:
        download(url, path)
    except Exception as exc:  # any network, HTTP, disk or hash error means the same thing for the user
        raise MissingResourceError(
            f"The weights of backbone {backbone!r} ({what}) are not on disk and could not be downloaded "
            f"({type(exc).__name__}: {exc}). Fetch {url} and put it at {path} "
            f"(that directory is $TORCH_HOME/hub/checkpoints; set TORCH_HOME to use another one)."
        ) from exc
    return path


def load_state(backbone: str, path: str, url: str) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MissingResourceError(
            f"The weights file {path} of backbone {backbone!r} is unreadable ({type(exc).__name__}: {exc}). "
            f"Move it away and fetch {url} again to that path."
        ) from exc

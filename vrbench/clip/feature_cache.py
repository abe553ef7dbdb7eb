"""On-disk caches of frozen-encoder features, keyed by everything they depend on.

Text features of the frozen text encoder depend on the model (name and weights), the precision, the templates and
the class names; image features of the frozen image encoder on the model, the precision and the exact pixels and
labels of the split. The key is a sha256 over all of that (the pixels hashed in full), so a cache entry can never
be used for anything else: a different class order, an edited template or a re-decoded image makes a new key.
Entries are written atomically under ``<results>/cache/features``; deleting the folder only costs recomputation.
A cache computes every entry it stores inside its ``context`` (a job's autocast), so an entry holds what its key's
precision says, whichever caller asked first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import torch

from vrbench.store.rundir import atomic_write

FORMAT = 2  # 2: entries keyed fp16-amp are computed under fp16 autocast (format 1 held fp32 zero-shot text there)


def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def images_digest(images: torch.Tensor, labels: torch.Tensor) -> str:
    """blake2b over the uint8 pixels and the labels (all of them: a sampled hash could miss an edit)."""
    h = hashlib.blake2b(digest_size=20)
    h.update(str(tuple(images.shape)).encode())
    h.update(images.contiguous().numpy().tobytes())
    h.update(labels.numpy().astype("int64").tobytes())
    return h.hexdigest()


class FeatureCache:
    """Get-or-compute for (T, C, D) text features and (N, D) image features; counts hits for tests and logs."""

    def __init__(self, root: Path, model_key: str,
                 context: Callable[[], AbstractContextManager] = contextlib.nullcontext) -> None:
        self.root = Path(root) / "cache" / "features"
        self.model_key = model_key  # backbone name + precision (+ weights identity for real models)
        self.context = context  # what every computation runs in: the precision the key names
        self.hits = 0
        self.misses = 0

    def text(self, model_key: str, templates: list[str], classnames: list[str],
             compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        key = {"kind": "text", "model": model_key or self.model_key, "templates": list(templates),
               "classnames": list(classnames), "format": FORMAT}
        return self._get("text", key, compute)

    def image(self, images: torch.Tensor, labels: torch.Tensor, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        key = {"kind": "image", "model": self.model_key, "pixels": images_digest(images, labels), "format": FORMAT}
        return self._get("image", key, compute)

    def _get(self, kind: str, key: dict, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        digest = _digest(key)
        path = self.root / kind / f"{digest[:32]}.pt"
        if path.exists():
            try:
                stored = torch.load(path, map_location="cpu", weights_only=True)
                if stored.get("key") == json.dumps(key, sort_keys=True):
                    self.hits += 1
                    return stored["features"]
            except Exception:  # noqa: BLE001 - a damaged entry is recomputed and replaced, never trusted
                pass
        self.misses += 1
        with torch.no_grad(), self.context():
            features = compute()
        features = features.detach().float().cpu()
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"key": json.dumps(key, sort_keys=True), "features": features}
        atomic_write(path, lambda handle: torch.save(entry, handle), f"a cached {kind} feature entry")
        return features

"""Output label mappings for visual reprogramming: pure tensor functions.

A frozen source classifier yields ``S`` logits per image (``S = 1000`` for ImageNet); the target task has ``C`` classes.
A label mapping turns the ``B x S`` source logits into ``B x C`` target logits, and comes in two shapes:

* a **one-to-one index vector** ``pi`` (length ``C``, int64): target ``c`` reads source logit ``pi[c]``
  (RLM, FLM and ILM);
* a **reweighting matrix** ``omega`` (``S x C``, float32): target logits are ``logits @ omega`` (BLM and BLM++).

These functions follow ``docs/methods.md (VR)`` §2 exactly, ties included, so that FLM/ILM pick the same sources as the
original code. They hold no state: *when* a mapping is (re)computed (once before training, every epoch, ...) is the
training engine's job. Every function checks its inputs and raises :class:`MappingInputError` (both a
``vrbench.errors.ConfigError`` and a ``ValueError``) with the reason, instead of silently producing a misaligned or
NaN mapping.

Example::

    import torch
    from vrbench import mapping

    logits = torch.randn(256, 1000)           # frozen model outputs on the training set
    labels = torch.randint(0, 10, (256,))     # targets in [0, 10)

    pi = mapping.ilm(logits, labels, num_classes=10)                  # (10,) int64 source indices
    omega = mapping.blm(logits, labels, num_classes=10, lap=1.0)       # (1000, 10) float32, columns sum to 1
    k = mapping.blmpp_k(10)                                            # int(0.15 * 10) = 1
    omega_pp = mapping.blmpp(logits, labels, num_classes=10, k=k)

    batch_logits = torch.randn(32, 1000)
    z1 = mapping.apply_mapping(batch_logits, pi)       # (32, 10) = batch_logits[:, pi]
    z2 = mapping.apply_mapping(batch_logits, omega)    # (32, 10) = batch_logits @ omega
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vrbench.errors import ConfigError

__all__ = [
    "MappingInputError",
    "apply_mapping",
    "blm",
    "blmpp",
    "blmpp_k",
    "flm",
    "frequency_matrix",
    "greedy_one_to_one",
    "ilm",
    "rlm",
]


class MappingInputError(ConfigError, ValueError):
    """Bad input to a mapping function.

    It is a ``ValueError`` for library users, and a ``ConfigError`` so the vrbench CLI prints it as one clear message
    (e.g. a dataset with more classes than the backbone has outputs).
    """


# ----------------------------------------------------------------------------------------------------------------
# input checks


def _check_int(name: str, value: object, minimum: int) -> int:
    # bool is an int subclass; True as a class count is a bug, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise MappingInputError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise MappingInputError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_logits(logits: Tensor) -> None:
    if not isinstance(logits, Tensor):
        raise MappingInputError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if logits.ndim != 2:
        raise MappingInputError(f"logits must be 2-D (batch, num_source), got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise MappingInputError(f"logits must be floating point, got {logits.dtype}")
    if logits.shape[1] < 1:
        raise MappingInputError("logits must have at least one source column")
    # argmax and softmax would silently treat NaN as the maximum; a NaN here means the model diverged.
    if bool(torch.isnan(logits).any()):
        raise MappingInputError("logits contain NaN")


def _check_labels(labels: Tensor, batch: int, num_classes: int) -> None:
    if not isinstance(labels, Tensor):
        raise MappingInputError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.ndim != 1:
        raise MappingInputError(f"labels must be 1-D, got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise MappingInputError(f"labels must have an integer dtype, got {labels.dtype}")
    if labels.shape[0] != batch:
        raise MappingInputError(f"labels has {labels.shape[0]} entries but logits has {batch} rows")
    if labels.numel():
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise MappingInputError(f"label {bad} is outside [0, {num_classes}) (num_classes={num_classes})")


def _check_lap(lap: float) -> float:
    if isinstance(lap, bool) or not isinstance(lap, (int, float)):
        raise MappingInputError(f"lap must be a number, got {type(lap).__name__} {lap!r}")
    if not math.isfinite(lap) or lap < 0:
        raise MappingInputError(f"lap (the Laplace term lambda) must be finite and >= 0, got {lap}")
    return float(lap)


# ----------------------------------------------------------------------------------------------------------------
# frequency matrix and greedy assignment (docs/methods.md VR §2.1, §2.3)


def frequency_matrix(logits: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Count how often each source class is predicted for each target class.

    ``N[k, c] = #{i : argmax_k logits[i] = k and labels[i] = c}``, an ``S x C`` int64 matrix with
    ``S = logits.shape[1]`` and ``C = num_classes``.

    Argmax ties go to the first maximal index (``torch.argmax``). Unlike the original code, which took ``C`` from
    ``len(labels.unique())`` and so misaligned columns when a class was missing, ``C`` is explicit: a class absent from
    ``labels`` gets a zero column, and a label outside ``[0, C)`` raises.

    Args:
        logits: ``(B, S)`` raw source logits.
        labels: ``(B,)`` integer target labels in ``[0, num_classes)``.
        num_classes: ``C``, the number of target classes.

    Returns:
        ``(S, C)`` int64 tensor on ``logits.device``.
    """
    num_classes = _check_int("num_classes", num_classes, 1)
    _check_logits(logits)
    _check_labels(labels, logits.shape[0], num_classes)
    num_source = logits.shape[1]
    pred = logits.argmax(dim=1)
    flat = pred * num_classes + labels.to(device=pred.device, dtype=torch.int64)
    counts = torch.bincount(flat, minlength=num_source * num_classes)
    return counts.view(num_source, num_classes)


def greedy_one_to_one(freq: Tensor) -> Tensor:
    """Greedy one-to-one source-to-target assignment of FLM and ILM (docs/methods.md VR §2.3).

    Repeat ``C`` times on a copy ``A`` of ``freq`` (shape ``S x C``)::

        (k, c) = first row-major argmax of A    # ties: smallest k, then smallest c
        pi[c] = k
        A[k, :] = -1;  A[:, c] = -1              # source k and target c are used up

    Once the positive counts are used up the remaining entries are 0 (unused) and -1 (used), so the next argmax is the
    first zero: the remaining targets receive the smallest unused sources, in target order. An all-zero matrix
    therefore gives ``pi = [0, 1, ..., C-1]``. This reproduces the original code exactly, which matters because the
    chosen source indices are the model's reading of each class.

    Args:
        freq: ``(S, C)`` non-negative counts (integer or float), ``C <= S``. Not modified.

    Returns:
        ``(C,)`` int64 tensor ``pi`` of distinct source indices; ``pi[c]`` is the source for target ``c``.
    """
    if not isinstance(freq, Tensor):
        raise MappingInputError(f"freq must be a torch.Tensor, got {type(freq).__name__}")
    if freq.ndim != 2:
        raise MappingInputError(f"freq must be 2-D (num_source, num_classes), got shape {tuple(freq.shape)}")
    if freq.is_complex():
        raise MappingInputError(f"freq must be real, got {freq.dtype}")
    num_source, num_classes = freq.shape
    if num_classes > num_source:
        raise MappingInputError(
            f"a one-to-one mapping needs num_classes <= num_source, got {num_classes} target classes "
            f"for {num_source} source outputs"
        )
    work = freq.detach()
    if work.is_floating_point() and bool(torch.isnan(work).any()):
        raise MappingInputError("freq contains NaN")
    # The original's -1 'used' marker relies on real entries being >= 0.
    if work.numel() and bool((work < 0).any()):
        raise MappingInputError("freq must be non-negative (it is a matrix of counts)")
    # Equivalent to the repeated argmax, without C full passes over the matrix (S*C is 13M for CLIP with 81*C
    # sources): visit the positive entries by decreasing value, ties in row-major order (stable sort), and take each
    # whose source and target are both still free. When positives run out, the free block is all zeros and the
    # repeated argmax would pair the smallest free source with the smallest free target, then the next, and so on.
    flat = work.reshape(-1).cpu()
    positive = (flat > 0).nonzero().view(-1)
    order = torch.sort(flat[positive], descending=True, stable=True).indices
    pi = [-1] * num_classes
    used_source: set[int] = set()
    assigned = 0
    for idx in positive[order].tolist():
        if assigned == num_classes:
            break
        k, c = divmod(idx, num_classes)
        if pi[c] < 0 and k not in used_source:
            pi[c] = k
            used_source.add(k)
            assigned += 1
    free_sources = (k for k in range(num_source) if k not in used_source)
    for c in range(num_classes):
        if pi[c] < 0:
            pi[c] = next(free_sources)
    return torch.tensor(pi, dtype=torch.int64, device=freq.device)


# ----------------------------------------------------------------------------------------------------------------
# one-to-one mappings (docs/methods.md VR §2.2, §2.4, §2.5)


def rlm(num_source: int, num_target: int, generator: torch.Generator | None = None) -> Tensor:
    """Random label mapping (RLM): ``pi = torch.randperm(num_source, generator=generator)[:num_target]``.

    ``num_target`` distinct random source classes, drawn once and kept fixed. With ``generator=None`` the draw comes
    from torch's global RNG, exactly as in the original scripts (so it depends on how much RNG was consumed before).

    Returns:
        ``(num_target,)`` int64 tensor of distinct source indices.
    """
    num_target = _check_int("num_target", num_target, 1)
    num_source = _check_int("num_source", num_source, 1)
    if num_target > num_source:
        raise MappingInputError(f"a one-to-one mapping needs num_target <= num_source, got {num_target} > {num_source}")
    return torch.randperm(num_source, generator=generator)[:num_target]


def flm(logits: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Frequency label mapping (FLM): ``greedy_one_to_one(frequency_matrix(logits, labels, num_classes))``.

    The same function as :func:`ilm`. FLM computes it **once, before training**, from the initial input pattern and
    keeps it fixed; ILM recomputes it every epoch. That scheduling belongs to the engine, not to this function.

    Returns:
        ``(C,)`` int64 index vector ``pi``.
    """
    return greedy_one_to_one(frequency_matrix(logits, labels, num_classes))


def ilm(logits: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Iterative label mapping (ILM): ``greedy_one_to_one(frequency_matrix(logits, labels, num_classes))``.

    The same function as :func:`flm`. ILM recomputes it at the **start of every epoch** from the current input pattern
    (docs/methods.md VR §2.5); the engine does that scheduling.

    Returns:
        ``(C,)`` int64 index vector ``pi``.
    """
    return greedy_one_to_one(frequency_matrix(logits, labels, num_classes))


# ----------------------------------------------------------------------------------------------------------------
# Bayesian-guided reweighting matrices (docs/methods.md VR §2.6, §2.7)


def _smooth_and_normalise(counts: Tensor, lap: float) -> Tensor:
    """``M = N / (rowsum(N) + lap)``, then ``omega = M / colsum(M)``; float32 as in the original."""
    counts = counts.to(torch.float32)
    denom = counts.sum(dim=1, keepdim=True) + lap
    # Only reachable with lap == 0: a never-predicted source would give 0/0. Every lap > 0 gives 0 there, so use that
    # limit; for lap > 0 this is bit-identical to the plain formula.
    denom = torch.where(denom > 0, denom, torch.ones_like(denom))
    m = counts / denom
    col = m.sum(dim=0, keepdim=True)
    empty = (col == 0).view(-1).nonzero().view(-1).tolist()
    if empty:
        raise MappingInputError(
            f"target class(es) {empty} have no samples in labels, so their column of the mapping would be 0/0 = NaN; "
            "compute the mapping on data that contains every class"
        )
    return m / col


def blm(logits: Tensor, labels: Tensor, num_classes: int, lap: float = 1.0) -> Tensor:
    """Bayesian-guided label mapping (BLM, docs/methods.md VR §2.6): an ``S x C`` reweighting matrix.

    With ``N = frequency_matrix(logits, labels, num_classes)`` (argmax counts)::

        M[k, c]     = N[k, c] / (sum_c' N[k, c'] + lap)      # Laplace term in the denominator only
        omega[k, c] = M[k, c] / sum_k' M[k', c]               # each target column sums to 1

    and target logits are ``logits @ omega``. Sources never predicted get 0; a single hit gives ``1/(1+1) = 0.5``
    before column normalisation, 100 hits all in one class ``100/101``. Computed in float32, as the original.

    A class absent from ``labels`` would make its column 0/0 = NaN in the original, which silently poisons training;
    here it raises :class:`MappingInputError` instead. ``lap`` must be ``>= 0``; with ``lap = 0`` a never-predicted
    source (also 0/0) gets 0, the value every ``lap > 0`` gives.

    Returns:
        ``(S, C)`` float32 tensor on ``logits.device``.
    """
    lap = _check_lap(lap)
    return _smooth_and_normalise(frequency_matrix(logits, labels, num_classes), lap)


def blmpp(logits: Tensor, labels: Tensor, num_classes: int, k: int, lap: float = 1.0) -> Tensor:
    """BLM++ (docs/methods.md VR §2.7; "blmp" in the original code): BLM with top-k probability sums instead of
    argmax counts.

    ::

        p_i        = softmax(logits_i)                         # float32
        p~_i       = p_i with all but its top-k entries set to 0  # values NOT renormalised
        N+[k', c]  = sum_{i : labels_i = c} p~_i[k']
        omega      = the same lap-smoothing and column normalisation as :func:`blm` applied to N+

    With ``k = 1`` this is a probability-weighted argmax count. Ties inside the top-k follow ``torch.topk``, whose
    choice among equal values is unspecified (it matters only when a tie straddles the k-th place). ``k`` must be in
    ``[1, S]``: the original ``k = int(0.15 * C)`` is 0 for ``C <= 6`` and yields an all-NaN matrix, so use
    :func:`blmpp_k`. A class absent from ``labels`` raises, as in :func:`blm`.

    Returns:
        ``(S, C)`` float32 tensor on ``logits.device``.
    """
    num_classes = _check_int("num_classes", num_classes, 1)
    if isinstance(k, bool) or not isinstance(k, int):
        raise MappingInputError(f"k must be an int, got {type(k).__name__} {k!r}")
    if k < 1:
        raise MappingInputError(
            f"k must be >= 1, got {k}: with k = 0 no probability is kept and every column is 0/0 = NaN "
            "(int(0.15 * C) is 0 for C <= 6; use blmpp_k, which never returns less than 1)"
        )
    lap = _check_lap(lap)
    _check_logits(logits)
    _check_labels(labels, logits.shape[0], num_classes)
    num_source = logits.shape[1]
    if k > num_source:
        raise MappingInputError(f"k must be <= the number of source outputs ({num_source}), got {k}")
    if not bool(torch.isfinite(logits).all()):
        raise MappingInputError("logits contain inf, which makes the softmax NaN")
    probs = torch.softmax(logits.detach().to(torch.float32), dim=1)
    top_vals, top_idx = probs.topk(k, dim=1)
    kept = torch.zeros_like(probs).scatter_(1, top_idx, top_vals)
    sums = torch.zeros(num_classes, num_source, dtype=torch.float32, device=probs.device)
    sums.index_add_(0, labels.to(device=probs.device, dtype=torch.int64), kept)
    return _smooth_and_normalise(sums.T, lap)


def blmpp_k(num_classes: int, topk_ratio: float = 0.15) -> int:
    """BLM++'s top-k size: ``max(1, int(num_classes * topk_ratio))``.

    The original uses ``int(C * 0.15)``, which depends on the *target* class count (CIFAR10 -> 1, CIFAR100 -> 15,
    SUN397 -> 59) and is 0 for ``C <= 6``; the floor of 1 keeps small tasks well defined.
    """
    num_classes = _check_int("num_classes", num_classes, 1)
    if isinstance(topk_ratio, bool) or not isinstance(topk_ratio, (int, float)):
        raise MappingInputError(f"topk_ratio must be a number, got {type(topk_ratio).__name__} {topk_ratio!r}")
    if not math.isfinite(topk_ratio) or topk_ratio <= 0:
        raise MappingInputError(f"topk_ratio must be finite and > 0, got {topk_ratio}")
    return max(1, int(num_classes * topk_ratio))


# ----------------------------------------------------------------------------------------------------------------
# applying a mapping


def apply_mapping(logits: Tensor, mapping: Tensor) -> Tensor:
    """Turn ``(..., S)`` source logits into ``(..., C)`` target logits.

    * 1-D integer ``mapping`` (``pi``, length ``C``): ``logits[..., pi]`` (column selection, RLM/FLM/ILM);
    * 2-D floating ``mapping`` (``omega``, ``S x C``): ``logits @ omega`` (BLM/BLM++). ``omega`` is cast to
      ``logits.dtype`` so half-precision logits work outside autocast too.

    Gradients flow to ``logits`` (and to ``omega`` if it requires them). Called by the engine on every batch.
    """
    if not isinstance(logits, Tensor) or not isinstance(mapping, Tensor):
        raise MappingInputError("logits and mapping must be torch.Tensors")
    if logits.ndim < 1:
        raise MappingInputError("logits must have a last dimension of source outputs")
    num_source = logits.shape[-1]
    if mapping.ndim == 1:
        if mapping.is_floating_point() or mapping.is_complex() or mapping.dtype == torch.bool:
            raise MappingInputError(f"a 1-D mapping must be an integer index vector, got {mapping.dtype}")
        if mapping.numel():
            lo, hi = int(mapping.min()), int(mapping.max())
            # Negative indices would silently wrap around instead of failing.
            if lo < 0 or hi >= num_source:
                raise MappingInputError(f"mapping indices must be in [0, {num_source}), got range [{lo}, {hi}]")
        return logits[..., mapping.to(logits.device)]
    if mapping.ndim == 2:
        if not mapping.is_floating_point():
            raise MappingInputError(f"a 2-D mapping must be a floating-point matrix, got {mapping.dtype}")
        if mapping.shape[0] != num_source:
            raise MappingInputError(f"mapping has {mapping.shape[0]} rows but logits have {num_source} source outputs")
        return logits @ mapping.to(device=logits.device, dtype=logits.dtype)
    raise MappingInputError(
        "mapping must be a 1-D index vector or a 2-D (num_source, num_classes) matrix, "
        f"got shape {tuple(mapping.shape)}"
    )

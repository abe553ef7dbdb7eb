"""Linear-probe CLIP (docs/methods.md CLIP §1.2): L2 logistic regression on raw image features with CoOp's C search.

The search is the lpclip protocol (after CLIP's Appendix A3): a coarse sweep over seven C values on the few-shot
validation set, then log-space bisection around the best one, keeping the better endpoint each step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

COARSE_C: tuple[float, ...] = (1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6)
VAL_SHOTS: dict[int, int] = {1: 1, 2: 2, 4: 4, 8: 4, 16: 4}


def fewshot_val_shots(shots: int) -> int:
    """Validation images per class for K training shots (lpclip's table; min(K, 4) beyond it)."""
    return VAL_SHOTS.get(shots, min(shots, 4))


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensors, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


class _Prober:
    """Fits one classifier per C on the training features; refits of the same C are served from memory."""

    def __init__(self, train_x: np.ndarray, train_y: np.ndarray) -> None:
        self.train_x, self.train_y = train_x, train_y
        self._fitted: dict[float, LogisticRegression] = {}

    def fit(self, c: float) -> LogisticRegression:
        if c not in self._fitted:
            # penalty="l2" is sklearn's default; spelling it out is deprecated since 1.8 (l1_ratio=0 there)
            classifier = LogisticRegression(solver="lbfgs", max_iter=1000, C=c)
            self._fitted[c] = classifier.fit(self.train_x, self.train_y)
        return self._fitted[c]

    def accuracy(self, c: float, x: np.ndarray, y: np.ndarray) -> float:
        return 100.0 * float(np.mean(self.fit(c).predict(x) == y))


def fit_linear_probe(train_x: Any, train_y: Any, val_x: Any, val_y: Any, test_x: Any, test_y: Any,
                     num_steps: int = 8) -> dict[str, Any]:
    """Search C on (val_x, val_y), return the final step's test accuracy (%), its C and every search step."""
    train_x, train_y, val_x, val_y, test_x, test_y = map(_as_array, (train_x, train_y, val_x, val_y, test_x, test_y))
    prober = _Prober(train_x, train_y)
    search: list[dict[str, Any]] = []
    coarse = [prober.accuracy(c, val_x, val_y) for c in COARSE_C]
    search.extend({"stage": "coarse", "C": c, "val_acc": acc} for c, acc in zip(COARSE_C, coarse, strict=True))
    peak = COARSE_C[int(np.argmax(coarse))]  # first maximum in the list order, as np.argmax
    log_left, log_right = math.log10(peak) - 1.0, math.log10(peak) + 1.0
    chosen = peak
    test_acc = prober.accuracy(peak, test_x, test_y)
    for step in range(num_steps):
        c_left, c_right = 10.0 ** log_left, 10.0 ** log_right
        acc_left, acc_right = prober.accuracy(c_left, val_x, val_y), prober.accuracy(c_right, val_x, val_y)
        middle = 0.5 * (log_left + log_right)
        if acc_left < acc_right:
            chosen, log_left = c_right, middle
        else:  # a tie keeps the left endpoint
            chosen, log_right = c_left, middle
        test_acc = prober.accuracy(chosen, test_x, test_y)
        search.append({"stage": "bisect", "step": step, "C_left": c_left, "C_right": c_right, "val_left": acc_left,
                       "val_right": acc_right, "C": chosen, "test_acc": test_acc})
    return {"acc": test_acc, "C": chosen, "search": search}

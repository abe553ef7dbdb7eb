"""What a run's result.json and metrics.jsonl lines must hold: the one check every reader and the worker share.

A result file that parses as JSON can still lie: ``"final_acc": "18.3"`` (text), ``null`` where a number is
required, a list instead of an object, or NaN, Infinity, 1e308 or -5 as an accuracy (Python's json module reads
``NaN`` and ``Infinity``). ``vrbench status``, ``run`` (which skips finished jobs), ``collect`` and ``report`` all
call :func:`check_result`, so such a file is *corrupt* everywhere, exactly like a truncated one: status lists it,
run sets it aside and runs the job again, and ingestion reports it and leaves it out of the index. The worker
calls it too before writing, so it never writes a result that readers would refuse. No torch import here.
"""

from __future__ import annotations

import math
from typing import Any

# Accuracies are percentages, as in the run files, the index and the papers.
ACCURACY_RANGE = (0.0, 100.0)
RESULT_ACCURACIES: tuple[str, ...] = ("final_acc", "best_test_acc", "best_val_acc")
RESULT_INTEGERS: tuple[str, ...] = ("epochs", "best_test_epoch", "best_val_epoch", "val_size", "trainable_params")
RESULT_SECONDS: tuple[str, ...] = ("train_seconds",)
EPOCH_ACCURACIES: tuple[str, ...] = ("train_acc", "val_acc", "test_acc")


class InvalidRecord(ValueError):
    """A field of a run file has the wrong type or an impossible value; the message names the field."""


def number(data: dict[str, Any], key: str, integer: bool = False, low: float | None = None,
           high: float | None = None) -> float | int | None:
    """``data[key]`` as a finite number (None when absent or null), within ``[low, high]`` when given."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRecord(f"field {key!r} should be a number, found {_short(value)}")
    try:
        finite = math.isfinite(value) and math.isfinite(float(value))
    except OverflowError:  # an integer too large for a float (JSON allows any number of digits)
        finite = False
    if not finite:
        raise InvalidRecord(f"field {key!r} is {_short(value)}, not a finite number")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise InvalidRecord(f"field {key!r} should be an integer, found {_short(value)}")
        value = int(value)
    else:
        value = float(value)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"
        raise InvalidRecord(f"field {key!r} is {_short(value)}, outside {bounds}")
    return value


def _short(value: Any) -> str:
    """A value for a one-line message: long text cut, huge integers shown by their number of digits."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def accuracy(data: dict[str, Any], key: str) -> float | None:
    """A percentage in [0, 100], or None."""
    low, high = ACCURACY_RANGE
    return number(data, key, low=low, high=high)


def check_result(data: Any) -> dict[str, Any]:
    """The typed fields of a done run's result.json (absent ones None); InvalidRecord if any is wrong."""
    if not isinstance(data, dict):
        raise InvalidRecord(f"expected a JSON object, found {type(data).__name__}")
    if data.get("status", "done") != "done":
        raise InvalidRecord(f"status is {_short(data.get('status'))}; result.json must say 'done'")
    fields: dict[str, Any] = {key: accuracy(data, key) for key in RESULT_ACCURACIES}
    fields.update({key: number(data, key, integer=True, low=0) for key in RESULT_INTEGERS})
    fields.update({key: number(data, key, low=0) for key in RESULT_SECONDS})
    if fields["final_acc"] is None:  # every job tests after its last epoch (or once, when it trains none)
        raise InvalidRecord("field 'final_acc' is missing or null")
    return fields


def check_epoch(data: Any, columns: tuple[str, ...]) -> tuple[int, list[float | None]]:
    """(epoch, values of ``columns``) of one metrics.jsonl line; accuracies must lie in [0, 100], every number be
    finite (a NaN loss means the run diverged, and the worker fails such a run)."""
    if not isinstance(data, dict):
        raise InvalidRecord("not a JSON object")
    epoch = number(data, "epoch", integer=True, low=0)
    if epoch is None:
        raise InvalidRecord("no 'epoch'")
    return epoch, [accuracy(data, key) if key in EPOCH_ACCURACIES else number(data, key) for key in columns]

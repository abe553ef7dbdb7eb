"""The engine levers a job's numbers were computed under, session by session, as env.json records them.

Three levers change rounding, not the method (engine/speed.py, engine/fusion.py, engine/border.py): BatchNorm
folding, fused conv+activation kernels and the shared border. They move results by more than last bits over a
job (a test image or two, the pattern by percents), so results that share a run id are compared with them in view.
A job may run in several sessions (killed and resumed, perhaps under other switches); each session that trained
records what it ran with, and the job's summary says per lever "on", "off" or "mixed".

env.json holds (plain keys, so that tools that diff two env.json files see the levers as they see the versions)::

    "levers": {"fold_batchnorm": "on", "fuse_activations": "on", "shared_border": "mixed"},
    "sessions": [{"session": 1, "started_at": "...", "epochs": [0, 2], "fold_batchnorm": "on", ...}, ...]

A session's lever is "on" when it took effect: layers were folded, pairs fused, and for the shared border a plan
actually ran on at least one batch (the switch alone is ``requested``). ``epochs`` is [first, last]: the session
trained epochs first+1 .. last (the epochs of sessions killed before their next checkpoint are not counted, since
the resumed session redoes them). torch-free: the store and the reports read it.
"""

from __future__ import annotations

from typing import Any

LEVERS: tuple[str, ...] = ("fold_batchnorm", "fuse_activations", "shared_border")
STATES: tuple[str, ...] = ("on", "off", "mixed")


def session_record(number: int, started_at: str, first_epoch: int, *, requested: dict[str, bool],
                   folded: int, fused: int, chains: int, border: bool, border_batches: int) -> dict[str, Any]:
    """One session: which levers took effect, their counts, and which switches were on."""
    return {
        "session": number, "started_at": started_at, "epochs": [first_epoch, first_epoch],
        "fold_batchnorm": _state(folded > 0), "fuse_activations": _state(fused + chains > 0),
        "shared_border": _state(border_batches > 0),
        "folded_batchnorm": folded, "fused_activations": fused, "frozen_chains": chains,
        "shared_border_wrapped": border, "shared_border_batches": border_batches,
        "requested": dict(requested),
    }


def _state(on: bool) -> str:
    return "on" if on else "off"


def kept_sessions(sessions: list[dict[str, Any]], start_epoch: int) -> list[dict[str, Any]]:
    """The earlier sessions a job resumed at ``start_epoch`` builds on: those whose last checkpoint is at or
    before it (all of them for a fresh start at 0 are gone: that start redoes everything)."""
    if start_epoch == 0:
        return []
    kept = []
    for session in sessions:
        if not isinstance(session, dict) or not isinstance(session.get("epochs"), list):
            continue
        first, last = session["epochs"][:2]
        if first < start_epoch and last <= start_epoch:
            kept.append(session)
    return kept


def summarize(sessions: list[dict[str, Any]]) -> dict[str, str]:
    """Per lever "on", "off" or "mixed" over the sessions that trained (all of them when none did, as for a
    zero-shot evaluation); {} without sessions."""
    trained = [s for s in sessions if s["epochs"][1] > s["epochs"][0]] or sessions
    summary = {}
    for lever in LEVERS:
        states = {session.get(lever) for session in trained}
        if states:
            summary[lever] = states.pop() if len(states) == 1 else "mixed"
    return summary

"""Processes of a local run end together: a launcher that is stopped or dies takes its workers with it.

Three pieces, one per process role:

- The launcher turns SIGTERM (``kill``, ``timeout``, systemd) and SIGHUP (the terminal or SSH session closed)
  into the same orderly stop as Ctrl-C (``stop_signals``): workers are told to stop, claims are released, the
  index is updated, and the exit code is 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM, 129 for
  SIGHUP).
- A launcher killed without a chance to clean up (SIGKILL, the OOM killer, a crash in C) cannot tell anyone.
  Its fork server sees the command pipe close (and checks its parent pid) and stops its workers
  (forkserver.py); a worker arms ``stop_with_parent`` at start: a parent-death signal (Linux ``prctl``) plus a
  watchdog thread on its parent pid, for kernels without it or a parent that is a thread which ended.
- A worker stops on SIGTERM by raising ``KeyboardInterrupt`` (``stop_on_sigterm``), so a write in progress
  removes its temporary file and the last finished epoch's checkpoint stays for the next run to resume.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

# Set by the launcher (or the fork server) in a worker's environment: the pid whose death must stop the worker.
PARENT_ENV = "VRBENCH_PARENT_PID"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
WATCHDOG_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1


class StopRequested(KeyboardInterrupt):
    """A stop signal reached the launcher: handled exactly like Ctrl-C, remembering which signal it was."""

    def __init__(self, number: int) -> None:
        super().__init__(signal.Signals(number).name)
        self.number = number


def exit_code_for(number: int) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number (Ctrl-C: 130)."""
    return 128 + number


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """In the launcher's main thread: SIGTERM and SIGHUP raise ``StopRequested`` while the pool runs.

    After the first one, further stop signals are ignored so that the cleanup they asked for is not cut short.
    A signal that was ignored when the launcher started (``nohup`` ignores SIGHUP) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread; a library caller keeps its own
        return
    # A signal the launcher was started ignoring stays ignored: `nohup vrbench run ...` must survive the hang-up.
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS
                if signal.getsignal(number) is not signal.SIG_IGN}

    def stop(number: int, frame: FrameType | None) -> None:
        for other in previous:
            signal.signal(other, signal.SIG_IGN)
        if number == signal.SIGHUP:
            _detach_from_closed_terminal()
        raise StopRequested(number)

    for number in previous:
        signal.signal(number, stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _detach_from_closed_terminal() -> None:
    """After a hang-up the terminal is gone and writing to it fails: send what is left to /dev/null instead, so
    the orderly stop is not turned into a crash by its own messages."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream.isatty():
                    stream.flush()
                    os.dup2(null, stream.fileno())
            except (OSError, ValueError):
                pass
    finally:
        os.close(null)


def parent_death_signal(number: int) -> bool:
    """Ask the kernel to send ``number`` to this process when its parent ends (Linux); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(number), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def stop_with_parent(environ: dict[str, str] | None = None) -> int | None:
    """In a worker: stop (SIGTERM to itself) as soon as the process that started it is gone.

    Armed only when the launcher said who that is (``VRBENCH_PARENT_PID``), so a worker run by hand or by a
    Slurm task behaves as before. Returns the parent pid being watched.
    """
    value = (os.environ if environ is None else environ).get(PARENT_ENV, "")
    if not value.isdigit():
        return None
    parent = int(value)
    parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:  # it died before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)
        return parent

    def watch() -> None:
        stopped = threading.Event()
        while not stopped.wait(WATCHDOG_SECONDS):
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="vrbench-parent-watchdog", daemon=True).start()
    return parent


def stop_on_sigterm() -> None:
    """In a worker: SIGTERM raises KeyboardInterrupt, so writes in progress clean up and the job ends as
    interrupted (exit 130, no error recorded), resumable from its last checkpoint."""

    def interrupt(number: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once is enough; a second one must not cut the cleanup
        raise KeyboardInterrupt(signal.Signals(number).name)

    signal.signal(signal.SIGTERM, interrupt)

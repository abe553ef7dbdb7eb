"""A fork server for the local pool: import torch once, then fork one fresh process per job.

Every worker used to pay about two seconds of `import torch` (torch imports torch._dynamo) before doing any work;
on short jobs that was most of the harness's overhead. The server (`python -m vrbench.runner.forkserver`)
imports torch and the engine, then forks a child per job. The child is still one process per job, in its own
session, writing its own run directory and worker.log, exactly as `python -m vrbench.worker RUN_DIR` would: a
crash or an OOM kill still ends one job. The server is single-threaded (a fork with other Python threads alive
could copy a held lock) and never touches CUDA, so each child picks its GPU from CUDA_VISIBLE_DEVICES as a fresh
process does.

Protocol: JSON lines. The launcher sends {"id", "run_dir", "env", "log"}; the server answers {"id", "pid"} at
once and {"exit": pid, "code": c} when the child ends (c < 0: killed by signal -c, as subprocess reports it).

No worker outlives its launcher: the end of the command pipe while children still run means the launcher is
gone (killed, crashed) or gave up, and so does a change of the server's parent pid; either way the server stops
its children (SIGTERM, then SIGKILL after STOP_GRACE_SECONDS) and exits. Each child also watches the server
(lifetime.stop_with_parent), in case the server itself is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from vrbench.runner.lifetime import PARENT_ENV
from vrbench.store.rundir import pid_alive

START_TIMEOUT = 120.0  # seconds for the server to import torch and answer
STOP_GRACE_SECONDS = 10.0  # a stopped worker's time to finish its current write before SIGKILL


class _Lines:
    """Complete lines from a file descriptor, read raw: a buffered reader could hold a line that select() then
    never reports."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""
        self.selector = selectors.DefaultSelector()
        self.selector.register(fd, selectors.EVENT_READ)

    def read(self, timeout: float) -> list[str] | None:
        """The lines that arrived within `timeout` (maybe none); None at end of file."""
        if not self.selector.select(timeout=timeout):
            return []
        chunk = os.read(self.fd, 1 << 16)
        if not chunk:
            return None
        self.buffer += chunk
        *complete, self.buffer = self.buffer.split(b"\n")
        return [line.decode() for line in complete if line.strip()]


# ------------------------------------------------------------------------------------------ server side


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become a worker for one run directory, then exit without returning."""
    code = 1
    try:
        os.setsid()  # its own process group, so the launcher can kill it (and anything it starts) at once
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a worker stops on SIGTERM even where its server ignores it
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        sys.stdin = open(0, closefd=False)  # fd 0 now reads /dev/null
        sys.stdout.reconfigure(line_buffering=True)
        os.environ.update(request["env"])
        os.environ[PARENT_ENV] = str(os.getppid())  # the worker stops if this server dies
        threads = request["env"].get("OMP_NUM_THREADS")
        if threads:  # torch read the server's OMP_NUM_THREADS at import; a fresh worker would read this one
            import torch

            torch.set_num_threads(int(threads))
        sys.argv = [str(Path(__file__).resolve().parent.parent / "worker.py"), request["run_dir"]]
        from vrbench import worker

        code = worker.main([request["run_dir"]])
    except BaseException:  # noqa: BLE001 - the child must never return into the server's loop
        import traceback

        traceback.print_exc()
    finally:
        from vrbench.worker import exit_now

        exit_now(code)


def _status_code(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def serve() -> None:
    import torch  # the point of the server: this import is paid once
    import torch.utils.tensorboard  # noqa: F401 - the default tracker's writer (vrbench.tracking), 0.15 s a job

    import vrbench.engine.loop  # noqa: F401
    import vrbench.worker  # noqa: F401

    # The first optimizer a process builds imports torch._dynamo (about 1-2 s here); pay that once, too.
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)

    if torch.cuda.is_initialized():  # a forked child could not use CUDA: let the launcher start fresh workers
        sys.exit("vrbench fork server: CUDA was initialized during imports; not serving")
    out = sys.stdout

    def send(message: dict[str, Any]) -> bool:
        """False when the launcher can no longer hear it (its end of the pipe is closed)."""
        try:
            out.write(json.dumps(message) + "\n")
            out.flush()
        except BrokenPipeError:
            return False
        return True

    send({"ready": True, "pid": os.getpid()})
    launcher = os.getppid()
    children: set[int] = set()
    lines = _Lines(0)
    heard = True
    while True:
        requests = lines.read(timeout=0.05)
        if requests is None or os.getppid() != launcher:  # the launcher closed the pipe or is gone
            break
        for line in requests:
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                _child(request)
            children.add(pid)
            heard = send({"id": request["id"], "pid": pid}) and heard
        for pid, status in _reap(children):
            heard = send({"exit": pid, "code": _status_code(status)}) and heard
        if not heard:
            break
    _stop_children(children)


def _reap(children: set[int]) -> list[tuple[int, int]]:
    """The children that have ended, with their wait status, without blocking."""
    ended = []
    while children:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            break
        children.discard(pid)
        ended.append((pid, status))
    return ended


def _stop_children(children: set[int]) -> None:
    """No launcher is listening any more: stop every worker still running (each leads its own process group),
    give it STOP_GRACE_SECONDS to end its current write, then kill what is left."""
    for number in (signal.SIGTERM, signal.SIGKILL):
        for pid in children:
            try:
                os.killpg(pid, number)
            except ProcessLookupError:  # not yet its own group leader (just forked): the process itself
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, number)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while children and time.monotonic() < deadline:
            _reap(children)
            time.sleep(0.05)
        if not children:
            return


# ---------------------------------------------------------------------------------------- launcher side


class ForkServer:
    """The launcher's handle on a running server."""

    def __init__(self, ignore_signals: tuple[int, ...] = ()) -> None:
        """``ignore_signals``: signals the server and (by inheritance) every worker ignore, e.g. Slurm's requeue
        signal, which is meant for the array task that started them."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}

        def ignore() -> None:
            for number in ignore_signals:
                signal.signal(number, signal.SIG_IGN)

        self.process = subprocess.Popen([sys.executable, "-m", "vrbench.runner.forkserver"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                                        start_new_session=True,  # Ctrl-C reaches the launcher, not the server
                                        preexec_fn=ignore if ignore_signals else None)
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in: IO[str] = self.process.stdin
        self._lines = _Lines(self.process.stdout.fileno())
        self._pids: dict[int, int] = {}
        self.exits: dict[int, int] = {}
        self._next = 0
        self._ended = False

    def _read(self, timeout: float) -> bool:
        """Take in what the server said within `timeout`; False once it has nothing more to say."""
        if self._ended:
            return False
        lines = self._lines.read(timeout)
        if lines is None:
            self._ended = True
            return False
        for line in lines:
            message = json.loads(line)
            if "exit" in message:
                self.exits[message["exit"]] = message["code"]
            elif "id" in message:
                self._pids[message["id"]] = message["pid"]
        return bool(lines)

    def drain(self) -> None:
        """Collect exit reports that have arrived (non-blocking)."""
        try:
            while self._read(0):
                pass
        except (OSError, ValueError):
            self._ended = True

    def alive(self) -> bool:
        return not self._ended and self.process.poll() is None

    def spawn(self, run_dir: Path, env: dict[str, str], log: Path) -> ForkedWorker:
        request_id = self._next
        self._next += 1
        self._in.write(json.dumps({"id": request_id, "run_dir": str(run_dir), "env": env, "log": str(log)}) + "\n")
        self._in.flush()
        deadline = time.monotonic() + START_TIMEOUT
        while request_id not in self._pids:
            if time.monotonic() > deadline or not self.alive():
                raise OSError("the fork server did not start the worker")
            self._read(0.5)
        return ForkedWorker(self, self._pids.pop(request_id))

    def close(self) -> None:
        """EOF ends the server; workers still running then are stopped (the launcher has given up on them)."""
        try:
            self._in.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=STOP_GRACE_SECONDS + 5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ForkedWorker:
    """The part of subprocess.Popen the pool uses: pid, poll(), wait()."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self.server = server
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.server.drain()
            if self.pid in self.server.exits:
                self.returncode = self.server.exits.pop(self.pid)
            elif not self.server.alive() and not pid_alive(self.pid):
                self.returncode = -9  # the server died with it; no status left to read: count it as killed
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(["vrbench.worker", self.pid], timeout or 0)
            time.sleep(0.02)
        return code


if __name__ == "__main__":
    serve()

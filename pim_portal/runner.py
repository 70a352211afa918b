"""A small process supervisor for `make run`: the portal, a Celery worker and Celery beat.

    python -m pim_portal.runner [--host 127.0.0.1] [--port 8000] [--show FILE]

It starts the three processes, prefixes their output with their name, prints the portal's
URL once it answers, forwards Ctrl-C (SIGINT) and SIGTERM to all of them, and stops all of
them as soon as one dies, exiting non-zero. It is for development and the demo only:
production runs each process under its own service manager (see README "Production").
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

BASE_DIR = Path(__file__).resolve().parent.parent
STOP_GRACE_SECONDS = 15.0
READY_TIMEOUT_SECONDS = 60.0
SETTLE_SECONDS = 15.0
_PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    """One supervised process and the thread copying its output."""

    name: str
    argv: Sequence[str]
    ready_marker: str | None = None  # a line containing this means the process is up
    process: subprocess.Popen | None = None
    pump: threading.Thread | None = field(default=None, repr=False)
    ready: threading.Event = field(default_factory=threading.Event, repr=False)


def _find_prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the supervisor's own stop() still applies
        return None


_prctl = _find_prctl()  # looked up here, not in the forked child


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the supervisor itself is killed (Linux)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Runs children until one exits or we are told to stop; then stops all of them."""

    def __init__(self, children: Sequence[Child], *, out=None, grace: float = STOP_GRACE_SECONDS):
        self.children = list(children)
        self.out = out or sys.stdout
        self.grace = grace
        self.stop_requested: int | None = None  # the signal that asked us to stop
        self.output_lock = threading.Lock()
        self._width = max(len(child.name) for child in self.children)

    def say(self, name: str, line: str) -> None:
        with self.output_lock:
            self.out.write(f"{name:<{self._width}} | {line.rstrip()}\n")
            self.out.flush()

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for child in self.children:
            # Own process group: a terminal Ctrl-C reaches only us, and we forward it once
            # (a Celery worker given SIGINT twice skips its warm shutdown).
            child.process = subprocess.Popen(  # noqa: S603 - fixed argv built in this module
                child.argv,
                cwd=BASE_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                process_group=0,
                preexec_fn=_die_with_parent,  # safe: no other thread runs until all are forked
            )
        for child in self.children:
            process = cast(subprocess.Popen[bytes], child.process)  # started just above
            self.say(child.name, f"started (pid {process.pid}): {' '.join(child.argv)}")
            child.pump = threading.Thread(target=self._pump, args=(child,), daemon=True)
            child.pump.start()

    def _pump(self, child: Child) -> None:
        if child.process is None or child.process.stdout is None:
            return
        for raw in iter(child.process.stdout.readline, b""):
            line = raw.decode(errors="replace")
            self.say(child.name, line)
            if child.ready_marker and child.ready_marker in line:
                child.ready.set()

    def all_marked_ready(self) -> bool:
        return all(child.ready.is_set() for child in self.children if child.ready_marker)

    def request_stop(self, signum: int, _frame=None) -> None:
        self.stop_requested = signum

    def first_exited(self) -> Child | None:
        return next((c for c in self.children if c.process and c.process.poll() is not None), None)

    def wait(self, *, until=None, timeout: float | None = None) -> Child | None:
        """Block until a child exits, a stop is requested, `until()` is true or time runs out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.stop_requested is None:
            dead = self.first_exited()
            if dead or (until and until()):
                return dead
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(0.2)
        return None

    def stop(self) -> None:
        """SIGTERM each process; SIGKILL its whole group if it is still there after the grace.

        Only the group leader gets SIGTERM: a Celery worker then stops its own pool after the
        tasks in hand (warm shutdown) instead of seeing its pool killed under it.
        """
        for child in self.children:
            if child.process and child.process.poll() is None:
                self.say(child.name, "stopping")
                child.process.terminate()
        deadline = time.monotonic() + self.grace
        for child in self.children:
            if not child.process:
                continue
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(child.name, "did not stop in time; killing it")
                _signal_group(child.process, signal.SIGKILL)
                child.process.wait()
            # Whatever the leader left behind in its group (a worker's pool) goes too.
            _signal_group(child.process, signal.SIGKILL)
            if child.pump:
                child.pump.join(timeout=2)
            self.say(child.name, f"exited with code {child.process.returncode}")


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:  # the group is already gone
        pass


def port_answers(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def portal_children(host: str, port: int) -> list[Child]:
    python = sys.executable
    return [
        Child("web", [python, "manage.py", "runserver", f"{host}:{port}", "--noreload"]),
        Child(
            "worker",
            [python, "-m", "celery", "-A", "pim_portal", "worker", "--loglevel", "INFO"],
            ready_marker=" ready.",
        ),
        Child(
            "beat",
            [python, "-m", "celery", "-A", "pim_portal", "beat", "--loglevel", "INFO"],
            ready_marker="beat: Starting",
        ),
    ]


def portal_ready(supervisor: Supervisor, host: str, port: int, settle: float = SETTLE_SECONDS):
    """A readiness test: the portal answers, and the worker and beat are up (or `settle`
    seconds have passed since the portal answered: a worker waiting for its broker must not
    hide the URL, the portal serves without it)."""
    answered_at: list[float] = []

    def ready() -> bool:
        if not answered_at:
            if not port_answers(host, port):
                return False
            answered_at.append(time.monotonic())
        return supervisor.all_marked_ready() or time.monotonic() - answered_at[0] > settle

    return ready


def banner(url: str, show: Path | None) -> str:
    lines = ["", "=" * 72, f"PIM Portal is running at {url}", ""]
    if show and show.exists():
        lines += [show.read_text().rstrip(), ""]
    lines += [
        "Current TOTP codes of the demo users: make codes",
        "Press Ctrl-C to stop the portal, the worker and the scheduler.",
        "=" * 72,
        "",
    ]
    return "\n".join(lines)


def run(supervisor: Supervisor, *, ready=None, on_ready=None) -> int:
    """Supervise until a signal or a child's exit. Returns the process exit code."""
    previous = {sig: signal.signal(sig, supervisor.request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        supervisor.start()
        dead = None
        if ready is not None:
            dead = supervisor.wait(until=ready, timeout=READY_TIMEOUT_SECONDS)
            if dead is None and supervisor.stop_requested is None:
                if ready():
                    if on_ready:
                        on_ready()
                else:
                    supervisor.say("runner", "the portal did not answer in time; stopping")
                    supervisor.stop()
                    return 1
        if dead is None:
            dead = supervisor.wait()
        if dead is not None:
            code = dead.process.returncode if dead.process else 1
            supervisor.say(dead.name, f"exited with code {code}; stopping the others")
            supervisor.stop()
            if code < 0:  # killed by a signal: report it the way a shell does
                return 128 - code
            return code or 1  # a server that exits by itself is a failure, even with 0
        supervisor.stop()
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--show", type=Path, help="a file to print with the URL (the demo sign-ins)")
    args = parser.parse_args(argv)

    if port_answers(args.host, args.port):
        print(f"Something already listens on {args.host}:{args.port}; stop it first.", file=sys.stderr)
        return 1
    url = f"http://{args.host}:{args.port}/"
    supervisor = Supervisor(portal_children(args.host, args.port))

    def show_banner() -> None:
        with supervisor.output_lock:
            supervisor.out.write(banner(url, args.show))
            supervisor.out.flush()

    return run(supervisor, ready=portal_ready(supervisor, args.host, args.port), on_ready=show_banner)


if __name__ == "__main__":
    sys.exit(main())

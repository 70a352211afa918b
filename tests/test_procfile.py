"""`make run`: honcho runs the Procfile's web (Django's development server), worker and beat
with prefixed output, prints the URL and the demo sign-ins once web listens, and stops all of
them when one dies or on Ctrl-C (what pim_portal/runner.py did before honcho)."""

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

from pim_portal.management.commands.devserver import banner

ROOT = Path(settings.BASE_DIR)
HONCHO = [sys.executable, "-m", "honcho", "start", "--no-colour"]  # as the Makefile's `run`


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_until(process: subprocess.Popen, marker: str, timeout: float) -> str:
    """The output so far, once it holds `marker` (or the process ended, or time ran out)."""
    output, deadline = "", time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while marker not in output and time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = process.stdout.readline()
            if not line:
                break
            output += line
    return output


def honcho(folder: Path, procfile: str, env: dict[str, str] | None = None, port: int = 8000):
    (folder / "Procfile").write_text(procfile)
    return subprocess.Popen(  # noqa: S603 - our own interpreter and a Procfile of the test's
        [*HONCHO, "--procfile", str(folder / "Procfile"), "--app-root", str(ROOT), "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_the_procfile_runs_web_worker_and_beat():
    entries = dict(
        line.split(": ", 1)
        for line in (ROOT / "Procfile").read_text().splitlines()
        if line and not line.startswith("#")
    )

    assert list(entries) == ["web", "worker", "beat"]
    assert "manage.py devserver" in entries["web"] and "--noreload" in entries["web"]
    assert "celery -A pim_portal worker" in entries["worker"]
    assert "celery -A pim_portal beat" in entries["beat"]
    assert all(command.startswith("exec ") for command in entries.values())  # signals reach them
    assert "honcho start" in (ROOT / "Makefile").read_text()
    assert not (ROOT / "pim_portal" / "runner.py").exists()


def test_the_banner_shows_the_url_the_sign_ins_and_how_to_stop(tmp_path):
    sign_ins = tmp_path / "demo.txt"
    sign_ins.write_text("  alice   Alice Requester\n")

    text = banner("http://127.0.0.1:8000/", sign_ins)

    assert "PIM Portal is running at http://127.0.0.1:8000/" in text
    assert "alice   Alice Requester" in text
    assert "Press Ctrl-C to stop the portal, the worker and the scheduler." in text
    assert "alice" not in banner("http://127.0.0.1:8000/", tmp_path / "missing.txt")


def test_one_process_dying_stops_the_others_with_its_exit_code(tmp_path):
    sleeper = f"exec {sys.executable} -c \"import time; print('up', flush=True); time.sleep(60)\""
    process = honcho(tmp_path, f"web: {sleeper}\nworker: {sleeper}\nbeat: exit 3\n")

    output, _ = process.communicate(timeout=60)

    assert process.returncode == 3
    for name in ("web", "worker", "beat"):
        assert f"| {name}.1 started (pid=" in output
        assert f"| {name}.1 stopped (rc=" in output
    assert "beat.1 stopped (rc=3)" in output


@pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "") != "", reason="make run is the embedded (SQLite) layout"
)
def test_make_run_layout_serves_the_portal_and_stops_on_ctrl_c(tmp_path):
    env = {
        "DJANGO_DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "pim_portal.settings",
        "PIM_DATA_DIR": str(tmp_path / "data"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "REDIS_URL": "",
    }
    subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    port = free_port()
    process = honcho(tmp_path, (ROOT / "Procfile").read_text(), env, port=port)
    try:
        output = read_until(process, "Press Ctrl-C", timeout=120)
        # Each process's output, prefixed with its name.
        assert f"web.1    | PIM Portal is running at http://127.0.0.1:{port}/" in output, output
        assert requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=10).status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in the terminal: the whole group
        rest, _ = process.communicate(timeout=60)
    output += rest
    for name in ("web", "worker", "beat"):
        assert f"| {name}.1 started (pid=" in output
        assert f"| {name}.1 stopped (rc=" in output
    assert "SIGINT received" in output

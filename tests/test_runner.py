"""The `make run` supervisor: three processes that start, stop and die together."""

import io
import signal
import socket
import sys

from pim_portal.runner import Child, Supervisor, banner, portal_children, portal_ready, run


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


SLEEPER = python("import time; print('up', flush=True); time.sleep(60)")
STUBBORN = python(
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('up', flush=True); time.sleep(60)"
)


def supervise(*children: Child, grace: float = 5.0) -> tuple[Supervisor, io.StringIO]:
    out = io.StringIO()
    return Supervisor(children, out=out, grace=grace), out


def test_one_child_dying_stops_the_others_with_its_exit_code():
    supervisor, out = supervise(Child("web", SLEEPER), Child("worker", python("import sys; sys.exit(3)")))

    assert run(supervisor) == 3
    web = supervisor.children[0].process
    assert web.returncode == -signal.SIGTERM
    assert "worker | exited with code 3; stopping the others" in out.getvalue()


def test_a_child_killed_by_a_signal_fails_the_run_like_a_shell_would():
    killed = python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    supervisor, _ = supervise(Child("web", SLEEPER), Child("worker", killed))

    assert run(supervisor) == 128 + signal.SIGKILL


def test_a_child_that_exits_cleanly_still_fails_the_run():
    supervisor, _ = supervise(Child("web", SLEEPER), Child("beat", python("pass")))

    assert run(supervisor) == 1


def test_ctrl_c_is_forwarded_once_and_all_stop_with_exit_code_zero():
    # The child interrupts its parent (the supervisor), as a Ctrl-C in the terminal would.
    interrupter = python("import os, signal, time; os.kill(os.getppid(), signal.SIGINT); time.sleep(60)")
    supervisor, _ = supervise(Child("web", interrupter), Child("worker", SLEEPER))
    handler_before = signal.getsignal(signal.SIGINT)

    assert run(supervisor) == 0
    assert supervisor.stop_requested == signal.SIGINT
    assert [c.process.returncode for c in supervisor.children] == [-signal.SIGTERM] * 2
    assert signal.getsignal(signal.SIGINT) is handler_before


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period():
    supervisor, out = supervise(
        Child("worker", STUBBORN), Child("beat", python("import time; time.sleep(1)")), grace=1.0
    )

    assert run(supervisor) == 1
    assert supervisor.children[0].process.returncode == -signal.SIGKILL
    assert "worker | did not stop in time; killing it" in out.getvalue()


def test_output_is_prefixed_with_the_process_name():
    supervisor, out = supervise(Child("web", python("print('hello from web')")), Child("worker", SLEEPER))

    run(supervisor)

    assert "web    | hello from web" in out.getvalue()


def test_the_banner_is_printed_once_the_portal_answers():
    supervisor, out = supervise(Child("web", python("import time; time.sleep(1)")))
    shown = []

    run(supervisor, ready=lambda: True, on_ready=lambda: shown.append("banner"))

    assert shown == ["banner"]


def test_ready_waits_for_the_worker_and_beat_to_say_they_are_up():
    supervisor, _ = supervise(
        Child("web", python("import time; time.sleep(60)")),
        Child(
            "worker",
            python("import time; time.sleep(1); print('celery@x ready.', flush=True); time.sleep(60)"),
            ready_marker=" ready.",
        ),
    )
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        ready = portal_ready(supervisor, "127.0.0.1", listener.getsockname()[1], settle=30)
        supervisor.start()
        try:
            assert not ready()  # the port answers, the worker has not said it is ready yet
            assert supervisor.wait(until=ready, timeout=10) is None
            assert ready()
        finally:
            supervisor.stop()


def test_ready_gives_up_waiting_for_a_silent_worker_after_the_settle_time():
    supervisor, _ = supervise(Child("worker", SLEEPER, ready_marker=" ready."))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        ready = portal_ready(supervisor, "127.0.0.1", listener.getsockname()[1], settle=0.5)
        supervisor.start()
        try:
            assert supervisor.wait(until=ready, timeout=10) is None
            assert ready()
            assert not supervisor.all_marked_ready()
        finally:
            supervisor.stop()


def test_ready_is_false_while_the_portal_does_not_answer():
    supervisor, _ = supervise(Child("web", SLEEPER))
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connections are refused
        assert not portal_ready(supervisor, "127.0.0.1", port, settle=0)()


def test_banner_shows_the_url_and_the_demo_sign_ins(tmp_path):
    sign_ins = tmp_path / "demo.txt"
    sign_ins.write_text("Sign in as requester / some-password\n")

    text = banner("http://127.0.0.1:8000/", sign_ins)

    assert "PIM Portal is running at http://127.0.0.1:8000/" in text
    assert "Sign in as requester / some-password" in text


def test_make_run_supervises_the_portal_a_worker_and_one_beat():
    children = portal_children("127.0.0.1", 8000)

    assert [c.name for c in children] == ["web", "worker", "beat"]
    assert children[0].argv[1:] == ["manage.py", "runserver", "127.0.0.1:8000", "--noreload"]
    assert children[1].argv[-4:-2] == ["pim_portal", "worker"]
    assert children[2].argv[-4:-2] == ["pim_portal", "beat"]

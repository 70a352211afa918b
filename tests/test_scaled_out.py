"""The production layout, scaled out, under load: two gunicorn instances, two Celery workers
and one beat on PostgreSQL and Redis, with an SMTP sink and a directory that records its calls.

200 people activate a role that needs approval and 200 approvers approve, over the API with
their tokens and TOTP codes, concurrently and spread over both web instances. One web instance
is restarted (SIGTERM, graceful) during the activations and one worker is killed (SIGKILL, its
whole process group) during the approvals. Then every activation is made due (its end moved
into the past) and beat's expiry job ends them. At the end:

- every email row was delivered, each Message-ID (fixed per row) exactly once, except a row the
  killed worker had in hand when SMTP had taken it (then the same Message-ID twice: mail
  clients show it once);
- every directory operation was carried out exactly once, with the same exception (the back
  ends' calls are idempotent by contract, roles.directory);
- every activation expired exactly once (one activation.expired event, one revoke each);
- the audit chain verifies, /readyz is green on both instances, and every request was logged
  as one JSON line with its request id, with no token or code in any log.

Outbox rows the killed worker had claimed wait for their lease (5 minutes) to run out: the
test moves those leases into the past instead of waiting, as it moves the activations' ends.

Slow (a few minutes): it runs as its own CI step (PIM_SCALED_OUT=1, .ci/run), never on SQLite.
"""

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import timedelta
from io import StringIO
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from aiosmtpd.controller import Controller
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.services.mfa import RECOVERY_ALPHABET, RECOVERY_CODE_LENGTH
from activations.models import ActivationRequest
from api.models import ApiToken
from api.services import api_token_digest
from audit.models import AuditEvent
from notifications.models import Email
from roles.models import ActiveAssignment, DirectoryOperation
from tests.factories import EligibleAssignmentFactory, RoleFactory, UserFactory, totp_code

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.scaled,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (set REDIS_URL)"),
    pytest.mark.skipif(
        os.environ.get("PIM_SCALED_OUT") != "1", reason="slow: its own CI step (set PIM_SCALED_OUT=1)"
    ),
]

PEOPLE = 200
CLIENT_THREADS = 40
Status = ActivationRequest.Status


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, every: float = 0.5) -> None:
    """Poll real processes (this test's clock is real time) until `predicate()` holds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        pause.wait(every)


class Sink:
    """The SMTP sink: the Message-ID and recipients of every message delivered."""

    def __init__(self):
        self.lock = threading.Lock()
        self.delivered: list[tuple[str, tuple[str, ...]]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        message_id = re.search(rb"^Message-ID: *(\S+)", envelope.content, re.MULTILINE | re.IGNORECASE)
        with self.lock:
            self.delivered.append(
                (message_id.group(1).decode() if message_id else "", tuple(envelope.rcpt_tos))
            )
        return "250 OK"


class Layout:
    """The processes, each in its own session (its own process group), output to a log file."""

    def __init__(self, folder: Path, env: dict[str, str]):
        self.folder, self.env = folder, env
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], **extra: str) -> subprocess.Popen:
        with (self.folder / f"{name}.log").open("a") as output:
            # A fixed command line of our own (no shell, no outside input).
            process = subprocess.Popen(  # noqa: S603
                argv,
                cwd=settings.BASE_DIR,
                env={**self.env, **extra},
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def web(self, name: str, port: int) -> subprocess.Popen:
        command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
        return self.start(
            name, command, PIM_WEB_BIND=f"127.0.0.1:{port}", PIM_WEB_WORKERS="2", PIM_WEB_NAME=name
        )

    def worker(self, name: str, run: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "celery", "-A", "pim_portal", "worker", "--concurrency", "2"]
        command += ["--hostname", f"{name}-{run}@%h", "--without-gossip", "--without-mingle"]
        return self.start(name, command + ["--loglevel", "INFO"])

    def beat(self) -> subprocess.Popen:
        command = [sys.executable, "-m", "celery", "-A", "pim_portal", "beat", "--max-interval", "1"]
        return self.start("beat", command + ["--loglevel", "INFO"])

    def stop(self, name: str, signum: int = signal.SIGTERM, timeout: float = 40) -> int:
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(signum)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return process.returncode

    def kill_group(self, name: str) -> None:
        """SIGKILL the process and everything it started (a prefork worker's pool too)."""
        process = self.processes[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is None:
                self.stop(name)
            try:
                os.killpg(process.pid, signal.SIGKILL)  # whatever it left behind
            except ProcessLookupError:
                pass

    def logs(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in sorted(self.folder.glob("*.log")))


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code in (200, 503)
    except requests.RequestException:
        return False


def database_url() -> str:
    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    user = quote(db["USER"] or "", safe="")
    return f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Person:
    def __init__(self, user, device, token, recovery_codes):
        self.user, self.device, self.token = user, device, token
        self.recovery_codes = list(recovery_codes)
        self.codes_used: list[str] = []

    def code(self, *, fresh: bool) -> str:
        """The authenticator's code now, or a recovery code (a retry in the same 30 s step)."""
        code = totp_code(self.device) if not fresh else self.recovery_codes.pop()
        self.codes_used.append(code)
        return code


def recovery_code() -> str:
    return "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))


def people(count: int):
    """Per pair: a requester eligible for a role of its own, that needs approval by an
    approver of its own (TOTP codes are single-use per step and device: one each). Devices,
    recovery codes and API tokens are written directly, in bulk, as enrolment would leave them."""
    pairs, users = [], []
    for i in range(count):
        requester, approver = (
            UserFactory(username=f"scaled-req-{i}"),
            UserFactory(username=f"scaled-appr-{i}"),
        )
        role = RoleFactory(
            name=f"Scaled Administrator {i}", privileged=True, role_settings__require_approval=True
        )
        role.settings.approvers.add(approver)
        pairs.append((requester, approver, EligibleAssignmentFactory(user=requester, role=role)))
        users += [requester, approver]
    devices = TOTPDevice.objects.bulk_create(
        [TOTPDevice(user=user, name="Authenticator", confirmed=True) for user in users]
    )
    static = StaticDevice.objects.bulk_create(
        [StaticDevice(user=user, name="Recovery codes") for user in users]
    )
    codes = {user.pk: [recovery_code() for _ in range(3)] for user in users}
    StaticToken.objects.bulk_create(
        [StaticToken(device=device, token=code) for device in static for code in codes[device.user_id]]
    )
    raw_tokens = {}
    now = timezone.now()
    for user in users:
        prefix = secrets.token_hex(6)
        raw_tokens[user.pk] = f"pim_{prefix}_{secrets.token_urlsafe(32)}"
        user._token = ApiToken(
            user=user,
            name="scaled",
            prefix=prefix,
            key_hash=api_token_digest(raw_tokens[user.pk]),
            created_at=now,
        )
    ApiToken.objects.bulk_create([user._token for user in users])
    device_of = {device.user_id: device for device in devices}
    person = {
        user.pk: Person(user, device_of[user.pk], raw_tokens[user.pk], codes[user.pk]) for user in users
    }
    return [(person[r.pk], person[a.pk], eligible) for r, a, eligible in pairs]


def call(
    urls: list[str], first: int, method: str, path: str, person: Person, body: dict
) -> requests.Response:
    """POST to one web instance; if it refuses the connection (it is restarting), to the other,
    as a load balancer would; a retry needs a fresh code (the first may have been spent)."""
    last_error = None
    for attempt in range(6):
        url = urls[(first + attempt) % len(urls)] + path
        payload = {**body, "otp_code": person.code(fresh=attempt > 0)}
        try:
            return requests.request(
                method, url, json=payload, headers={"Authorization": f"Bearer {person.token}"}, timeout=60
            )
        except requests.ConnectionError as error:
            last_error = error
            threading.Event().wait(0.2)
    raise AssertionError(f"{path}: no web instance answered: {last_error}")


@pytest.fixture
def sink(caplog):
    caplog.set_level("WARNING", logger="mail.log")  # aiosmtpd's own chatter
    mailbox = Sink()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield mailbox, controller.port
    controller.stop()


def test_the_scaled_out_layout_under_load(tmp_path, sink):
    mailbox, smtp_port = sink
    run = uuid.uuid4().hex[:12]
    directory_log = tmp_path / "directory.jsonl"
    (tmp_path / "data").mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.scaled_settings",
        "DATABASE_URL": database_url(),
        "PIM_SCALED_RUN": run,
        "PIM_SCALED_SMTP_PORT": str(smtp_port),
        "PIM_SCALED_DIRECTORY_LOG": str(directory_log),
        "PIM_DATA_DIR": str(tmp_path / "data"),
        "PIM_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DATABASE_URL_FILE", None)
    phases = {"start": time.monotonic()}
    pairs = people(PEOPLE)
    phases["people"] = time.monotonic()
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    layout = Layout(tmp_path, env)
    try:
        layout.web("web-a", ports[0])
        layout.web("web-b", ports[1])
        layout.worker("worker-1", run)
        layout.worker("worker-2", run)
        layout.beat()
        wait_until(lambda: all(answers(url + "/healthz") for url in urls), 60, "both web instances answer")
        phases["started"] = time.monotonic()

        # 1. 200 activations, alternating instances; web-a restarts half-way.
        requests_by_pair: dict[int, str] = {}

        def activate(i: int) -> tuple[int, requests.Response]:
            requester, _approver, eligible = pairs[i]
            body = {"eligible": str(eligible.pk), "duration": 3600, "justification": f"Scaled test {i}"}
            return i, call(urls, i % 2, "POST", "/api/v1/activation-requests/", requester, body)

        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            futures = [pool.submit(activate, i) for i in range(PEOPLE)]
            for done, future in enumerate(as_completed(futures), start=1):
                i, response = future.result()
                assert response.status_code == 201, (i, response.status_code, response.text)
                assert response.json()["status"] == Status.PENDING_APPROVAL
                requests_by_pair[i] = response.json()["id"]
                if done == PEOPLE // 2:
                    assert layout.stop("web-a") == 0  # graceful: the requests in hand finish
                    layout.web("web-a", ports[0])
                    wait_until(lambda: answers(urls[0] + "/healthz"), 60, "web-a answers again")
        assert ActivationRequest.objects.filter(status=Status.PENDING_APPROVAL).count() == PEOPLE
        phases["activated"] = time.monotonic()

        # 2. 200 approvals; worker-1 is killed half-way, while grants and emails are under way.
        def decide(i: int) -> tuple[int, requests.Response]:
            _requester, approver, _eligible = pairs[i]
            path = f"/api/v1/approvals/{requests_by_pair[i]}/decision/"
            return i, call(urls, i % 2, "POST", path, approver, {"decision": "approve", "reason": "Go ahead"})

        killed_at = None
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            futures = [pool.submit(decide, i) for i in range(PEOPLE)]
            for done, future in enumerate(as_completed(futures), start=1):
                i, response = future.result()
                assert response.status_code == 200, (i, response.status_code, response.text)
                assert response.json()["status"] == Status.GRANTED
                if done == PEOPLE // 2:
                    layout.kill_group("worker-1")
                    killed_at = timezone.now()
        assert ActivationRequest.objects.filter(status=Status.GRANTED).count() == PEOPLE
        phases["approved"] = time.monotonic()

        # The killed worker's claims would run out after their 5-minute lease: moved instead.
        threading.Event().wait(3)  # what the surviving worker claimed before the kill is done
        lease_cut = killed_at + timedelta(minutes=6)
        for model in (Email, DirectoryOperation):
            model.objects.filter(
                status="pending",
                next_attempt_at__gt=timezone.now() + timedelta(minutes=1),
                next_attempt_at__lte=lease_cut,
            ).update(next_attempt_at=timezone.now())

        def outboxes_empty() -> bool:
            return not (
                Email.objects.filter(status="pending").exists()
                or DirectoryOperation.objects.filter(status="pending").exists()
            )

        wait_until(outboxes_empty, 90, "every grant and email of the approvals carried out")
        assert DirectoryOperation.objects.filter(operation="grant", status="done").count() == PEOPLE
        phases["granted"] = time.monotonic()

        # 3. Every activation made due; beat's expiry job (every 2 s here) ends them.
        past = timezone.now() - timedelta(seconds=1)
        granted = ActivationRequest.objects.filter(status=Status.GRANTED)
        ActiveAssignment.objects.filter(activation_request__in=granted).update(ends_at=past)
        granted.update(ends_at=past)
        wait_until(
            lambda: (
                ActivationRequest.objects.filter(status=Status.EXPIRED).count() == PEOPLE and outboxes_empty()
            ),
            90,
            "every activation expired, its revoke and emails carried out",
        )

        phases["expired"] = time.monotonic()
        # /readyz green on both instances at the end (heartbeat fresh, broker up, outboxes empty).
        for url in urls:
            response = requests.get(url + "/readyz", timeout=10)
            assert response.status_code == 200, response.text
    finally:
        layout.stop_all()
        logs = layout.logs()

    # Emails: every row sent; each Message-ID delivered once (twice only for a row retried).
    rows = list(Email.objects.values_list("pk", "status", "attempts", "created_at", "to"))
    assert rows and all(status == "sent" for _pk, status, *_ in rows)
    delivered = Counter(message_id for message_id, _to in mailbox.delivered)
    expected = {pk: attempts for pk, _status, attempts, _created, _to in rows}
    by_row = {int(re.match(r"<pim-email-(\d+)\.", mid).group(1)): count for mid, count in delivered.items()}
    assert set(by_row) == set(expected), "a row was not delivered, or a message no row explains"
    assert all(count == 1 or expected[pk] > 1 for pk, count in by_row.items())
    assert sum(count - 1 for count in by_row.values()) <= 4  # only what the killed worker had in hand

    # Directory: every operation carried out (grant and revoke per activation), once each.
    calls = Counter(
        (entry["operation"], entry["assignment"])
        for entry in map(json.loads, directory_log.read_text().splitlines())
    )
    operations = {
        (op, str(assignment)): attempts
        for op, assignment, attempts in DirectoryOperation.objects.values_list(
            "operation", "assignment", "attempts"
        )
    }
    assert len(operations) == 2 * PEOPLE
    assert DirectoryOperation.objects.exclude(status="done").count() == 0
    assert set(calls) == set(operations)
    assert all(count == 1 or operations[key] > 1 for key, count in calls.items())
    assert sum(count - 1 for count in calls.values()) <= 4

    # Expiry: once per activation.
    expired_events = Counter(
        AuditEvent.objects.filter(action="activation.expired").values_list("target_id", flat=True)
    )
    assert len(expired_events) == PEOPLE and set(expired_events.values()) == {1}

    # The audit chain verifies.
    out = StringIO()
    call_command("audit_verify", stdout=out)
    assert out.getvalue().startswith("OK: "), out.getvalue()

    # One JSON line per request, with its request id; no token or code anywhere in the logs.
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith('{"')]
    api_lines = [
        line
        for line in lines
        if line.get("logger") == "pim_portal.requests" and line["path"].startswith("/api/")
    ]
    assert len(api_lines) >= 2 * PEOPLE
    for line in api_lines:
        assert re.fullmatch(r"[0-9a-f]{32}", line["request_id"])
        assert {"time", "level", "method", "path", "status", "duration_ms", "user_id"} <= set(line)
    assert {line["status"] for line in api_lines} <= {200, 201}
    # Six digits standing alone (not part of a time, a duration or an id) and every word.
    numbers = set(re.findall(r"(?<![\w.:,-])(\d{6})(?!\w)", logs))
    words = set(re.findall(r"[\w-]+", logs))
    leaked = []
    for requester, approver, _eligible in pairs:
        for person in (requester, approver):
            secret = person.token.split("_", 2)[2]  # pim_<public prefix>_<secret>
            if person.token in words or secret in logs:
                leaked.append(f"token of {person.user.username}")
            for code in person.codes_used:  # six digits (TOTP) or ten letters and digits (recovery)
                if code in (numbers if code.isdigit() else words):
                    leaked.append(f"code of {person.user.username}")
    assert leaked == []
    previous = phases.pop("start")
    for name, at in phases.items():
        print(f"{name}: {at - previous:.1f}s")  # noqa: T201 - shown with -s, for tuning
        previous = at

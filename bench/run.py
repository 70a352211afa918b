#!/usr/bin/env python
"""PIM Portal benchmarks (SPEC 6): generated data on PostgreSQL, each figure beside its raw-SQL
floor measured in the same run. See bench/README.md.

    DATABASE_URL=postgres://user@host:5432/pim python bench/run.py [--scale 0.02] [--keep]

A separate database, ``<name>_bench``, is created (dropped first if it is left over), migrated
and filled; it is dropped at the end unless --keep. The database named in DATABASE_URL is never
touched. Nothing here asserts a threshold: benchmarks report, tests assert.
"""

import argparse
import json
import math
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

# SPEC 6's sizes at --scale 1.0.
FULL = {
    "users": 100_000,
    "roles": 500,
    "eligible": 500_000,
    "activations": 1_000_000,
    "audit_events": 2_000_000,
    "due": 100_000,
    "review_items": 100_000,
    "export_events": 1_000_000,
}
BENCH_USER = "bench.user"
BENCH_CHECKER = "bench.checker"
BENCH_PASSWORD = "bench-password-" + "x" * 16  # noqa: S105 - a throwaway account in a throwaway database
COPY_CHUNK = 50_000
# The role settings' notification matrix (roles.notification_matrix), at Entra's defaults:
# default recipients on, no additional recipients, all emails.
_MATRIX_PARTS = (("default", True), ("additional", ""), ("critical_only", False))
_MATRIX_RULES = [
    (e, a) for e in ("eligible", "active", "activation") for a in ("admin", "assignee", "approver")
]
MATRIX_FIELDS = tuple(f"notify_{e}_{a}_{part}" for e, a in _MATRIX_RULES for part, _ in _MATRIX_PARTS)
MATRIX_DEFAULTS = tuple(value for _ in _MATRIX_RULES for _, value in _MATRIX_PARTS)


# --- Small helpers ----------------------------------------------------------------------------


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def scaled(name: str, scale: float, minimum: int = 1) -> int:
    return max(minimum, round(FULL[name] * scale))


def new_uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def machine(pg_version: str) -> dict:
    ram = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
    except OSError:
        pass
    import django

    return {
        "cores": os.cpu_count(),
        "ram_gb": round(ram / 2**30, 1) if ram else None,
        "cpu": _cpu_model(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "postgresql": pg_version,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# --- The benchmark database -------------------------------------------------------------------


def database_settings() -> dict:
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        sys.exit(
            "bench: DATABASE_URL is required and must point at PostgreSQL, e.g.\n"
            "  DATABASE_URL=postgres://postgres@127.0.0.1:5432/pim_bench make bench\n"
            "The figures are meaningless on SQLite, so the benchmarks do not run there."
        )
    import dj_database_url

    config = dj_database_url.parse(url)
    if not config["ENGINE"].endswith("postgresql"):
        sys.exit(
            f"bench: DATABASE_URL is {config['ENGINE'].rsplit('.', 1)[-1]}, not PostgreSQL. "
            "The benchmarks run on PostgreSQL only (SPEC 6); SQLite figures would say nothing "
            "about a deployment."
        )
    return config


def conninfo(config: dict, dbname: str) -> str:
    from psycopg.conninfo import make_conninfo

    params = {
        "dbname": dbname,
        "host": config.get("HOST") or None,
        "port": config.get("PORT") or None,
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
    }
    return make_conninfo(**{k: v for k, v in params.items() if v is not None})


def admin_connect(config: dict):
    import psycopg

    last = None
    for dbname in ("postgres", "template1", config["NAME"]):
        try:
            return psycopg.connect(conninfo(config, dbname), autocommit=True)
        except psycopg.OperationalError as error:
            last = error
    sys.exit(f"bench: cannot connect to PostgreSQL to create the benchmark database: {last}")


def create_database(config: dict, name: str) -> None:
    from psycopg import sql

    with admin_connect(config) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(config: dict, name: str) -> None:
    from psycopg import sql

    with admin_connect(config) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def django_setup(bench_db: str) -> None:
    os.environ["PIM_BENCH_DATABASE"] = bench_db
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django

    django.setup()


# --- Data generator ---------------------------------------------------------------------------


class Generator:
    """Fills the benchmark database with COPY through psycopg. Rows are written directly, as
    the portal's services would have left them; audit events are hashed with audit.chain so the
    chain verifies."""

    def __init__(self, db, scale: float, seed: int):
        self.db = db
        self.scale = scale
        self.rng = random.Random(seed)
        self.now = datetime.now(UTC)
        self.counts: dict[str, int] = {}

    def copy(self, table: str, columns: tuple, rows) -> int:
        count = 0
        with self.db.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
        self.db.commit()
        return count

    def bump_identity(self, table: str) -> None:
        self.db.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
        )
        self.db.commit()

    def ago(self, low: timedelta, high: timedelta) -> datetime:
        span = (high - low).total_seconds()
        return self.now - low - timedelta(seconds=self.rng.random() * span)

    def run(self) -> dict:
        self.users()
        self.roles()
        self.groups()
        self.eligible()
        self.activations()
        self.audit_events()
        return self.counts

    # People and groups.

    def users(self) -> None:
        n = scaled("users", self.scale, 200)
        base = self.db.execute("SELECT coalesce(max(id), 0) FROM accounts_user").fetchone()[0]
        self.user_ids = list(range(base + 1, base + n + 1))
        managers = self.user_ids[: max(1, n // 10)]
        columns = (
            "id password last_login is_superuser username first_name last_name email is_staff "
            "is_active date_joined display_name external_id session_epoch last_sign_in_at manager_id"
        ).split()
        self.labels = {}

        def rows():
            for index, pk in enumerate(self.user_ids):
                username = f"user{index:06d}"
                display = f"User {index}"
                self.labels[pk] = f"{display} <{username}>"
                manager = None if index < len(managers) else self.rng.choice(managers)
                active = self.rng.random() > 0.01
                sign_in = self.ago(timedelta(0), timedelta(days=90)) if self.rng.random() > 0.1 else None
                yield (
                    pk, "!bench", None, False, username, "", "", f"{username}@bench.example", False,
                    active, self.now - timedelta(days=400), display, "", 0, sign_in, manager,
                )  # fmt: skip

        self.counts["users"] = self.copy("accounts_user", columns, rows())
        self.bump_identity("accounts_user")

    def roles(self) -> None:
        """The built-in catalog (minus the portal's own roles) plus generated custom roles up to
        the scaled count."""
        catalog = [
            (pk, name)
            for pk, name in self.db.execute(
                "SELECT id, name FROM roles_role WHERE kind <> 'app' ORDER BY name"
            )
        ]
        wanted = scaled("roles", self.scale, 1)
        extra = max(0, wanted - len(catalog))
        new = [(new_uuid(self.rng), f"Bench Role {index:04d}") for index in range(extra)]
        if new:
            self.copy(
                "roles_role",
                (
                    "id name description kind template_id privileged tier builtin "
                    "lockout_protected grants_permissions created_at"
                ).split(),
                ((pk, name, "", "app", "", True, "high", False, False, "[]", self.now) for pk, name in new),
            )
            hours = timedelta(hours=8)
            self.copy(
                "roles_rolesettings",
                (
                    "role_id activation_max_duration require_mfa require_justification require_ticket "
                    "require_approval approvals_required approval_timeout eligible_allow_permanent "
                    "eligible_max_duration active_allow_permanent active_max_duration active_require_mfa "
                    "active_require_justification updated_at"
                ).split() + list(MATRIX_FIELDS),
                (
                    (pk, hours, True, True, False, False, 1, timedelta(hours=24), True,
                     timedelta(days=365), False, timedelta(days=180), False, True, self.now,
                     *MATRIX_DEFAULTS)
                    for pk, _ in new
                ),
            )  # fmt: skip
        self.roles_pool = catalog + new
        self.role_names = dict(self.roles_pool)
        self.counts["roles"] = len(self.roles_pool)

    def groups(self) -> None:
        n = max(1, len(self.user_ids) // 200)
        base = self.db.execute("SELECT coalesce(max(id), 0) FROM accounts_directorygroup").fetchone()[0]
        self.group_ids = list(range(base + 1, base + n + 1))
        self.copy(
            "accounts_directorygroup",
            ("id", "name", "description", "external_id", "created_at"),
            ((pk, f"Bench Group {pk}", "", "", self.now) for pk in self.group_ids),
        )
        self.bump_identity("accounts_directorygroup")
        members = [(group, user) for group in self.group_ids for user in self.rng.sample(self.user_ids, 20)]
        self.copy("accounts_directorygroup_members", ("directorygroup_id", "user_id"), iter(members))
        self.counts["groups"] = n
        self.counts["group_members"] = len(members)

    # Eligibilities, activations.

    def eligible(self) -> None:
        total = scaled("eligible", self.scale, 500)
        group_rows = total // 50
        user_rows = total - group_rows
        roles = [pk for pk, _ in self.roles_pool]
        pairs = self.rng.sample(
            range(len(self.user_ids) * len(roles)), min(user_rows, len(self.user_ids) * len(roles))
        )
        self.user_eligible = []  # (id, user_id, role_id)
        columns = (
            "id scope starts_at ends_at justification created_at ended_at end_reason "
            "created_by_id ended_by_id group_id user_id role_id expiry_notice_days"
        ).split()

        def rows():
            for pair in pairs:
                user, role = self.user_ids[pair // len(roles)], roles[pair % len(roles)]
                pk = new_uuid(self.rng)
                self.user_eligible.append((pk, user, role))
                yield self._eligible_row(pk, None, user, role)
            for _ in range(group_rows):
                group = self.rng.choice(self.group_ids)
                yield self._eligible_row(new_uuid(self.rng), group, None, self.rng.choice(roles))

        self.counts["eligible"] = self.copy("roles_eligibleassignment", columns, rows())

    def _eligible_row(self, pk, group, user, role) -> tuple:
        starts = self.ago(timedelta(days=1), timedelta(days=365))
        ends = None if self.rng.random() < 0.2 else self.now + timedelta(days=self.rng.randint(30, 365))
        return (pk, "/", starts, ends, "bench", starts, None, "", None, None, group, user, role, None)

    def activations(self) -> None:
        """Historical (closed) activations, plus open ones on distinct eligibilities (one open
        activation per person, role and scope): due for expiry, current, pending approval."""
        historical = scaled("activations", self.scale, 1000)
        due = scaled("due", self.scale, 100)
        open_pool = self.rng.sample(self.user_eligible, len(self.user_eligible))
        current = max(10, len(self.user_eligible) // 20)
        pending = max(50, len(self.user_ids) // 100)
        if due + current + pending > len(open_pool):
            sys.exit("bench: not enough eligibilities for the open activations at this scale")
        self.due_set = open_pool[:due]
        self.current_set = open_pool[due : due + current]
        self.pending_set = open_pool[due + current : due + current + pending]
        active_columns = (
            "id scope starts_at ends_at justification created_at ended_at origin end_reason "
            "created_by_id ended_by_id group_id user_id eligible_id role_id expiry_notice_days"
        ).split()
        request_columns = (
            "id kind scope status starts_at duration justification ticket_number ticket_system "
            "mfa_verified_at approvals_required created_at decide_by decided_at decision_reason "
            "granted_at ends_at closed_at ending_reminder_sent_at active_assignment_id decided_by_id "
            "eligible_id requester_id role_id"
        ).split()
        requests = []  # filled while the active assignments are written

        def active_rows():
            for index in range(historical):
                eligible, user, role = self.rng.choice(self.user_eligible)
                granted = self.ago(timedelta(days=1), timedelta(days=365))
                duration = timedelta(hours=self.rng.randint(1, 8))
                deactivated = index % 5 == 0
                ended = granted + duration / 2 if deactivated else None
                status = "deactivated" if deactivated else "expired"
                pk = new_uuid(self.rng)
                yield (pk, "/", granted, granted + duration, "bench", granted, ended, "activation", status,
                       None, user if deactivated else None, None, user, eligible, role, None)  # fmt: skip
                closed = ended or granted + duration
                requests.append(self._request(eligible, user, role, status, granted, duration, pk, closed))
            for eligible, user, role in self.due_set + self.current_set:
                duration = timedelta(hours=self.rng.randint(1, 8))
                if (eligible, user, role) in due_lookup:
                    ends = self.ago(timedelta(minutes=1), timedelta(hours=2))
                else:
                    ends = self.now + timedelta(minutes=self.rng.randint(10, 480))
                granted = ends - duration
                pk = new_uuid(self.rng)
                yield (pk, "/", granted, ends, "bench", granted, None, "activation", "",
                       None, None, None, user, eligible, role, None)  # fmt: skip
                requests.append(self._request(eligible, user, role, "granted", granted, duration, pk, None))

        due_lookup = set(self.due_set)
        self.counts["active_assignments"] = self.copy("roles_activeassignment", active_columns, active_rows())
        for eligible, user, role in self.pending_set:
            created = self.ago(timedelta(minutes=5), timedelta(hours=10))
            row = list(
                self._request(eligible, user, role, "pending_approval", None, timedelta(hours=2), None, None)
            )
            row[request_columns.index("created_at")] = created
            row[request_columns.index("decide_by")] = created + timedelta(hours=24)
            row[request_columns.index("approvals_required")] = 1
            requests.append(tuple(row))
        self.counts["activation_requests"] = self.copy(
            "activations_activationrequest", request_columns, iter(requests)
        )
        self.counts["activations_historical"] = historical
        self.counts["activations_due"] = len(self.due_set)
        self.counts["activations_current"] = len(self.current_set)
        self.counts["activations_pending"] = len(self.pending_set)
        self.pending_ids = [row[0] for row in requests[-len(self.pending_set) :]]

    def _request(self, eligible, user, role, status, granted, duration, assignment, closed) -> tuple:
        created = (granted or self.now) - timedelta(minutes=1)
        ends = granted + duration if granted else None
        return (
            new_uuid(self.rng), "activate", "/", status, None, duration, "bench", "", "", granted, 0, created,
            None, granted, "", granted, ends, closed, None, assignment, None, eligible, user, role,
        )  # fmt: skip

    # The audit log.

    def audit_events(self) -> None:
        from audit import chain, chain_keys

        n = scaled("audit_events", self.scale, 1000)
        key = chain_keys.current()
        seq, prev, keyed_from, checkpoints = self.db.execute(
            "SELECT last_seq, last_hash, keyed_from, checkpoints FROM audit_auditchainhead WHERE id = 1"
        ).fetchone()
        keyed_from = seq + 1 if keyed_from is None else keyed_from
        start = self.now - timedelta(days=365)
        step = timedelta(days=364) / n
        actions = (
            ("activation.requested", "success"), ("activation.granted", "success"),
            ("activation.expired", "success"), ("activation.deactivated", "success"),
            ("eligible.assigned", "success"), ("auth.sign_in", "success"), ("auth.sign_in", "failure"),
            ("activation.denied", "denied"),
        )  # fmt: skip
        columns = (
            "seq occurred_at actor_label action outcome target_type target_id target_label role_id "
            "role_label scope details request_id ip user_agent prev_hash hash mac mac_key_id actor_id"
        ).split()
        self.export_since = None
        half = n // 2

        def rows():
            nonlocal seq, prev
            for index in range(n):
                seq += 1
                occurred = start + step * index
                if index == half:
                    self.export_since = occurred
                system = self.rng.random() < 0.1
                actor = None if system else self.rng.choice(self.user_ids)
                role, role_name = self.rng.choice(self.roles_pool)
                action, outcome = self.rng.choice(actions)
                requester = self.labels[self.rng.choice(self.user_ids)]
                fields = {
                    "seq": seq,
                    "occurred_at": occurred,
                    "actor_id": actor,
                    "actor_label": "system" if system else self.labels[actor],
                    "action": action,
                    "outcome": outcome,
                    "target_type": "activations.activationrequest",
                    "target_id": str(new_uuid(self.rng)),
                    "target_label": f"activation request {role_name} by {requester}",
                    "role_id": str(role),
                    "role_label": role_name,
                    "scope": "/",
                    "details": {"requester": requester, "duration_hours": self.rng.randint(1, 8)},
                    "request_id": "" if system else f"{self.rng.getrandbits(64):016x}",
                    "ip": None if system else f"10.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}.9",
                    "user_agent": "" if system else "Mozilla/5.0 (bench)",
                }  # fmt: skip
                digest = chain.event_hash(prev, fields)
                yield (
                    seq, occurred, fields["actor_label"], action, outcome, fields["target_type"],
                    fields["target_id"], fields["target_label"], role, role_name, "/",
                    json.dumps(fields["details"]), fields["request_id"], fields["ip"], fields["user_agent"],
                    prev, digest, chain.event_mac(key.secret, digest), key.id, actor,
                )  # fmt: skip
                prev = digest

        with self.db.cursor() as cursor:
            with cursor.copy(f"COPY audit_auditevent ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows():
                    copy.write_row(row)
            # The head sealed as audit.services.chain_head_save does.
            head = {"last_seq": seq, "last_hash": prev, "keyed_from": keyed_from, "checkpoints": checkpoints}
            cursor.execute(
                "UPDATE audit_auditchainhead SET last_seq = %s, last_hash = %s, keyed_from = %s, mac = %s, "
                "mac_key_id = %s WHERE id = 1",
                (seq, prev, keyed_from, chain.head_mac(key.secret, head), key.id),
            )
        self.db.commit()
        self.counts["audit_events_generated"] = n


def portal_fixtures(gen: Generator) -> dict:
    """The accounts the measurements act as, made through the portal's own services and models:
    a person who signs in (eligible for some roles, approver of pending requests, PIM Auditor),
    and a service account with an API token for the check."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts.models import User
    from activations.models import ActivationRequest, RequestApprover
    from api import services as api_services
    from roles.models import ActiveAssignment, EligibleAssignment, Role
    from roles.selectors import portal_role

    now = datetime.now(UTC)
    user = User.objects.create_user(
        username=BENCH_USER,
        password=BENCH_PASSWORD,
        email="bench.user@bench.example",
        display_name="Bench User",
    )
    device = TOTPDevice.objects.create(user=user, name="Authenticator", confirmed=True)
    ActiveAssignment.objects.create(
        user=user, role=portal_role("pim.auditor"), starts_at=now - timedelta(minutes=1), ends_at=None
    )
    roles = list(Role.objects.filter(pk__in=[pk for pk, _ in gen.roles_pool[:15]]))
    for role in roles:
        EligibleAssignment.objects.create(
            user=user, role=role, starts_at=now - timedelta(days=10), ends_at=now + timedelta(days=200)
        )
    for role in roles[:3]:
        ActiveAssignment.objects.create(
            user=user,
            role=role,
            origin="direct",
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(hours=3),
        )
    inbox = gen.pending_ids[:30]
    RequestApprover.objects.bulk_create([RequestApprover(request_id=pk, user=user) for pk in inbox])
    others = [
        RequestApprover(request_id=pk, user_id=gen.rng.choice(gen.user_ids)) for pk in gen.pending_ids[30:]
    ]
    RequestApprover.objects.bulk_create(others)
    checker, _ = api_services.service_account_ensure(username=BENCH_CHECKER)
    api_services.role_checker_grant(user=checker)
    _, token = api_services.api_token_create(actor=None, user=checker, name="bench")
    return {
        "user": user,
        "device": device,
        "token": token,
        "inbox": ActivationRequest.objects.filter(pk__in=inbox, status="pending_approval").count(),
    }


# --- Measurements -----------------------------------------------------------------------------


def latencies(function, items, warmup: int = 20) -> list[float]:
    for item in items[:warmup]:
        function(item)
    values = []
    for item in items:
        start = time.perf_counter()
        function(item)
        values.append(time.perf_counter() - start)
    return values


def summary(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50_ms": ms(percentile(values, 50)),
        "p95_ms": ms(percentile(values, 95)),
        "p99_ms": ms(percentile(values, 99)),
        "mean_ms": ms(statistics.fmean(values)),
    }


HOLDING_SQL = """
SELECT id, ends_at, ended_at FROM roles_activeassignment
WHERE (user_id = %(user)s OR group_id IN (
        SELECT directorygroup_id FROM accounts_directorygroup_members WHERE user_id = %(user)s))
  AND role_id = %(role)s AND scope = ANY(%(scopes)s)
  AND starts_at <= %(at)s AND (ends_at IS NULL OR ends_at > %(at)s)
  AND (ended_at IS NULL OR ended_at > %(at)s)
"""

CHECK_SQL = """
SELECT a.id, least(a.ends_at, a.ended_at) AS until FROM roles_activeassignment a
WHERE a.role_id = %(role)s AND a.scope = ANY(%(scopes)s)
  AND (a.user_id = (SELECT id FROM accounts_user WHERE username = %(username)s AND is_active)
       OR a.group_id IN (SELECT m.directorygroup_id FROM accounts_directorygroup_members m
                         JOIN accounts_user u ON u.id = m.user_id
                         WHERE u.username = %(username)s AND u.is_active))
  AND a.starts_at <= %(at)s AND (a.ends_at IS NULL OR a.ends_at > %(at)s)
  AND (a.ended_at IS NULL OR a.ended_at > %(at)s)
ORDER BY until DESC NULLS FIRST, a.id LIMIT 1
"""


def bench_check(gen: Generator, fixtures: dict, db, samples: int) -> dict:
    """role_holding in-process, the API check over the test Client and over loopback HTTP, and
    the single SELECT each is built on."""
    from django.test import Client

    from accounts.models import User
    from roles.models import Role
    from roles.selectors import role_holding

    rng = gen.rng
    hits = [(user, role) for _, user, role in gen.current_set]
    misses = [(user, role) for _, user, role in gen.user_eligible]
    pairs = [rng.choice(hits) if index % 2 else rng.choice(misses) for index in range(samples)]
    users = User.objects.in_bulk({user for user, _ in pairs})
    roles = Role.objects.in_bulk({role for _, role in pairs})
    objects = [(users[user], roles[role]) for user, role in pairs]
    hit_set = set(hits)
    results = {"pairs": samples, "share_holding": round(sum(1 for p in pairs if p in hit_set) / samples, 3)}

    held = [role_holding(user=user, role=role).active for user, role in objects[:200]]
    results["sanity_active_in_first_200"] = sum(held)
    results["in_process"] = summary(latencies(lambda pair: role_holding(user=pair[0], role=pair[1]), objects))
    results["role_check_selector"] = summary(
        latencies(lambda pair: role_holding(user=pair[0].username, role=str(pair[1].pk)), objects)
    )

    def floor_holding(pair):
        db.execute(
            HOLDING_SQL, {"user": pair[0], "role": pair[1], "scopes": ["/"], "at": datetime.now(UTC)}
        ).fetchall()

    def floor_check(pair):
        params = {"username": pair[0].username, "role": pair[1].pk, "scopes": ["/"], "at": datetime.now(UTC)}
        db.execute(CHECK_SQL, params).fetchall()

    results["floor_in_process"] = summary(latencies(floor_holding, pairs))
    results["same_sql_role_holding"] = same_sql(
        db, lambda pair: role_holding(user=pair[0], role=pair[1]), objects
    )
    results["same_sql_role_check"] = same_sql(
        db, lambda pair: role_holding(user=pair[0].username, role=str(pair[1].pk)), objects
    )
    results["floor_check"] = summary(latencies(floor_check, objects))

    client = Client(HTTP_AUTHORIZATION=f"Bearer {fixtures['token']}")

    def via_client(pair):
        response = client.get("/api/v1/check/", {"user": pair[0].username, "role": str(pair[1].pk)})
        if response.status_code != 200:
            raise RuntimeError(f"check answered {response.status_code}: {response.content[:200]!r}")

    results["http_test_client"] = summary(latencies(via_client, objects))
    results["http_loopback"] = bench_loopback(fixtures["token"], objects)
    return results


def same_sql(db, function, items) -> dict:
    """The SQL the portal sent for each item (captured in an untimed pass), replayed through
    psycopg: the database's share of the figure, as opposed to the hand-written floor."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    statements = []
    for item in items:
        with CaptureQueriesContext(connection) as captured:
            function(item)
        statements.append([query["sql"] for query in captured.captured_queries])

    def replay(batch):
        with db.cursor() as cursor:
            for statement in batch:
                cursor.execute(statement)
                cursor.fetchall()

    result = summary(latencies(replay, statements))
    result["queries_per_call"] = max(len(batch) for batch in statements)
    result["statement_example"] = " ".join(statements[0][0].split())[:800] if statements[0] else ""
    db.rollback()
    return result


def bench_loopback(token: str, objects: list) -> dict:
    """Django's threaded WSGI server on 127.0.0.1 and http.client with one keep-alive
    connection: a real HTTP round trip (no TLS, no reverse proxy)."""
    import http.client
    from urllib.parse import urlencode

    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    class QuietHandler(WSGIRequestHandler):
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and
        # the client's delayed ACK add ~40 ms to every response (production servers set it too).
        disable_nagle_algorithm = True

        def log_message(self, format, *args):
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=False)
    server.set_app(get_wsgi_application())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Host": "127.0.0.1"}

    def call(pair):
        connection.request(
            "GET",
            "/api/v1/check/?" + urlencode({"user": pair[0].username, "role": pair[1].pk}),
            headers=headers,
        )
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"check answered {response.status}: {body[:200]!r}")

    try:
        return summary(latencies(call, objects))
    finally:
        connection.close()
        server.shutdown()
        server.server_close()


PAGES = (
    ("My roles", "/roles/"),
    ("Approvals inbox", "/activations/approvals/"),
    ("Audit log page", "/audit/"),
)


def signed_in_client(fixtures: dict):
    """Sign in through the real forms: password, then a TOTP code (as conftest's verified_client)."""
    from django.test import Client
    from django_otp.oath import TOTP

    device = fixtures["device"]
    device.refresh_from_db()
    client = Client()
    response = client.post("/accounts/login/", {"username": BENCH_USER, "password": BENCH_PASSWORD})
    if response.status_code != 302:
        raise RuntimeError(f"sign-in answered {response.status_code}")
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    response = client.post("/accounts/verify/", {"otp_token": f"{totp.token():0{device.digits}d}"})
    if response.status_code != 302:
        raise RuntimeError(f"TOTP verification answered {response.status_code}")
    return client


def bench_pages(fixtures: dict, db, requests: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = signed_in_client(fixtures)
    results = {}
    for name, path in PAGES:
        for _ in range(3):
            client.get(path)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}")
        queries = [query["sql"] for query in captured.captured_queries]
        values = latencies(lambda _, path=path: client.get(path), list(range(requests)), warmup=0)
        results[name] = {
            "path": path,
            "queries": len(queries),
            "bytes": len(response.content),
            **summary(values),
            "floor": replay_floor(db, queries, requests),
        }
    return results


def replay_floor(db, queries: list[str], repeats: int) -> dict:
    """The page's own SQL, replayed through psycopg in one transaction that is rolled back:
    what the database alone needs for the page."""
    statements = [
        q for q in queries if not q.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK"))
    ]
    values, per_statement = [], [0.0] * len(statements)
    for _ in range(repeats):
        start = time.perf_counter()
        with db.cursor() as cursor:
            for index, statement in enumerate(statements):
                began = time.perf_counter()
                cursor.execute(statement)  # no parameters: sent as captured, literals included
                if cursor.description is not None:
                    cursor.fetchall()
                per_statement[index] += time.perf_counter() - began
        values.append(time.perf_counter() - start)
        db.rollback()
    slowest = max(range(len(statements)), key=per_statement.__getitem__) if statements else None
    result = summary(values)
    if slowest is not None:
        result["slowest_statement_mean_ms"] = ms(per_statement[slowest] / repeats)
        result["slowest_statement"] = " ".join(statements[slowest].split())[:600]
    return result


def bench_sweep(gen: Generator, db) -> dict:
    from activations.jobs import activation_expire_due
    from audit.models import AuditEvent
    from roles import directory_services

    now = datetime.now(UTC)
    due = db.execute(
        "SELECT count(*) FROM activations_activationrequest WHERE status = 'granted' AND ends_at <= %s",
        (now,),
    ).fetchone()[0]
    events_before = AuditEvent.objects.count()
    enqueue = {"seconds": 0.0, "calls": 0}
    original = directory_services._enqueue_run

    def counted_enqueue(operation_id):  # the same call, timed: the on-commit broker hand-off
        start = time.perf_counter()
        original(operation_id)
        enqueue["seconds"] += time.perf_counter() - start
        enqueue["calls"] += 1

    directory_services._enqueue_run = counted_enqueue
    try:
        done, seconds = timed(activation_expire_due, now=now)
    finally:
        directory_services._enqueue_run = original
    events = AuditEvent.objects.count() - events_before
    ids = [row[0] for row in db.execute(
        "SELECT id FROM activations_activationrequest WHERE status = 'expired' AND closed_at = %s", (now,)
    )]  # fmt: skip
    start = time.perf_counter()
    db.execute(
        "UPDATE activations_activationrequest SET status = 'expired', closed_at = %s WHERE id = ANY(%s)",
        (now, ids),
    )
    floor = time.perf_counter() - start
    start = time.perf_counter()
    db.execute(
        "UPDATE roles_activeassignment SET end_reason = 'expired' WHERE id IN "
        "(SELECT active_assignment_id FROM activations_activationrequest WHERE id = ANY(%s))",
        (ids,),
    )
    floor_both = floor + time.perf_counter() - start
    db.rollback()
    return {
        "due": due,
        "expired": done,
        "audit_events_written": events,
        "seconds": round(seconds, 3),
        "rows_per_s": round(done / seconds) if seconds else None,
        "of_which_enqueue_seconds": round(enqueue["seconds"], 3),
        "enqueued_tasks": enqueue["calls"],
        "floor_update_requests_seconds": round(floor, 3),
        "floor_update_requests_rows_per_s": round(len(ids) / floor) if floor else None,
        "floor_update_requests_and_assignments_seconds": round(floor_both, 3),
    }


def bench_review(gen: Generator, fixtures: dict, db, target: int) -> dict:
    from django.utils import timezone

    from reviews.models import ReviewDefinition
    from reviews.services import review_instance_start
    from roles.models import EligibleAssignment, Role

    now = timezone.now()
    counts = dict(
        db.execute(
            "SELECT role_id, count(*) FROM roles_eligibleassignment WHERE starts_at <= %(at)s "
            "AND (ends_at IS NULL OR ends_at > %(at)s) AND ended_at IS NULL GROUP BY role_id ORDER BY 2 DESC",
            {"at": now},
        ).fetchall()
    )
    chosen, total = [], 0
    for role_id, count in counts.items():
        if total >= target:
            break
        chosen.append(role_id)
        total += count
    definition = ReviewDefinition.objects.create(
        name="Bench review",
        reviewer_type=ReviewDefinition.Reviewers.MANAGER,
        fallback_reviewer=fixtures["user"],
        review_eligible=True,
        recurrence=ReviewDefinition.Recurrence.ONCE,
        start_date=now.date(),
    )
    definition.roles.set(Role.objects.filter(pk__in=chosen))
    instance, seconds = timed(
        review_instance_start, definition=definition, occurrence=0, starts_at=now, now=now
    )
    expected = EligibleAssignment.objects.filter(role_id__in=chosen).current(now).count()
    # Floor: the items and their reviewer links as two INSERT ... SELECT, rolled back.
    start = time.perf_counter()
    instance_id = uuid.uuid4()
    db.execute(
        "INSERT INTO reviews_reviewinstance "
        "(id, occurrence, starts_at, ends_at, status, item_count, definition_id) "
        "VALUES (%s, 99, %s, %s, 'active', 0, %s)",
        (instance_id, now, now + timedelta(days=14), definition.pk),
    )
    db.execute(
        """
        INSERT INTO reviews_reviewitem (id, assignment_type, principal_label, scope, last_sign_in_at,
            recommendation, recommendation_reason, decision, justification, outcome, outcome_detail,
            eligible_id, group_id, instance_id, role_id, user_id)
        SELECT gen_random_uuid(), 'eligible',
            coalesce(u.display_name || ' <' || u.username || '>', 'group ' || g.name), e.scope,
            u.last_sign_in_at,
            '', '', '', '', '', '', e.id, e.group_id, %(instance)s, e.role_id, e.user_id
        FROM roles_eligibleassignment e
        LEFT JOIN accounts_user u ON u.id = e.user_id
        LEFT JOIN accounts_directorygroup g ON g.id = e.group_id
        WHERE e.role_id = ANY(%(roles)s) AND e.starts_at <= %(at)s
          AND (e.ends_at IS NULL OR e.ends_at > %(at)s) AND (e.ended_at IS NULL OR e.ended_at > %(at)s)
        """,
        {"instance": instance_id, "roles": chosen, "at": now},
    )
    db.execute(
        """
        INSERT INTO reviews_reviewerassignment (item_id, reviewer_id)
        SELECT i.id, coalesce(u.manager_id, %(fallback)s) FROM reviews_reviewitem i
        LEFT JOIN accounts_user u ON u.id = i.user_id WHERE i.instance_id = %(instance)s
        """,
        {"instance": instance_id, "fallback": fixtures["user"].pk},
    )
    floor = time.perf_counter() - start
    db.rollback()
    return {
        "roles": len(chosen),
        "items": instance.item_count if instance else None,
        "expected_items": expected,
        "seconds": round(seconds, 3),
        "items_per_s": round(instance.item_count / seconds) if instance and seconds else None,
        "floor_seconds": round(floor, 3),
    }


def bench_export(gen: Generator, db) -> dict:
    """The CSV export in a child process (so its peak memory is its own), and COPY TO STDOUT of
    the same rows as the floor."""
    from audit.event_exports import FIELDS

    since = gen.export_since
    child = subprocess.run(  # noqa: S603 - this very script, with a timestamp it made
        [sys.executable, str(Path(__file__).resolve()), "--export-child", since.isoformat()],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"export child failed: {child.stderr[-2000:]}")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    columns = ", ".join(FIELDS)
    rows, size = 0, 0
    start = time.perf_counter()
    with db.cursor() as cursor:
        query = (
            f"COPY (SELECT {columns} FROM audit_auditevent WHERE occurred_at >= %s ORDER BY seq) "
            "TO STDOUT WITH (FORMAT csv, HEADER)"
        )
        with cursor.copy(query, (since,)) as copy:
            for chunk in copy:
                size += len(chunk)
                rows += bytes(chunk).count(b"\n")
    floor = time.perf_counter() - start
    db.rollback()
    result["floor_copy_seconds"] = round(floor, 3)
    result["floor_copy_rows_per_s"] = round((rows - 1) / floor) if floor else None
    result["floor_copy_bytes"] = size
    return result


def export_child(since_text: str) -> None:
    """Run in a fresh process: audit_export_start + export_chunks (CSV), consumed to the end."""
    django_setup(os.environ["PIM_BENCH_DATABASE"])
    from accounts.models import User
    from audit.event_exports import audit_export_start, export_chunks
    from audit.models import AuditEvent

    since = datetime.fromisoformat(since_text)
    actor = User.objects.get(username=BENCH_USER)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    export = audit_export_start(
        actor=actor,
        events=AuditEvent.objects.filter(occurred_at__gte=since),
        params={"since": since_text},
        format="csv",
    )
    size, lines = 0, 0
    for chunk in export_chunks(export):
        size += len(chunk.encode())
        lines += chunk.count("\n")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # A second pass over the same pinned export, untimed, under tracemalloc: the peak of what
    # Python allocated while streaming (RSS alone hides it under the start-up high-water mark).
    tracemalloc.start()
    for _ in export_chunks(export):
        pass
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(
        json.dumps(
            {
                "rows": export.rows,
                "lines_written": lines - 1,
                "bytes": size,
                "seconds": round(seconds, 3),
                "rows_per_s": round(export.rows / seconds) if seconds else None,
                "rss_before_mb": round(baseline / 1024, 1),
                "rss_peak_mb": round(peak / 1024, 1),
                "peak_growth_mb": round((peak - baseline) / 1024, 1),
                "tracemalloc_peak_mb": round(traced_peak / 2**20, 1),
            }
        )
    )


def bench_verify(db) -> dict:
    from audit.verify import EVENT_FIELDS, audit_chain_verify

    result, seconds = timed(audit_chain_verify)
    start = time.perf_counter()
    rows = 0
    with db.cursor(name="bench_verify_floor") as cursor:
        cursor.itersize = 5000
        cursor.execute(f"SELECT {', '.join(EVENT_FIELDS)} FROM audit_auditevent ORDER BY seq")
        for _ in cursor:
            rows += 1
    floor = time.perf_counter() - start
    db.rollback()
    return {
        "events": result.count,
        "ok": result.ok,
        "problem": str(result.problem) if result.problem else None,
        "seconds": round(seconds, 3),
        "rows_per_s": round(result.count / seconds) if seconds else None,
        "floor_select_seconds": round(floor, 3),
        "floor_select_rows_per_s": round(rows / floor) if floor else None,
    }


# --- Report -----------------------------------------------------------------------------------


def table(report: dict) -> str:
    m, r = report["machine"], report["results"]
    lines = [
        f"PIM Portal benchmarks, scale {report['scale']} ({report['started_at']})",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, PostgreSQL {m['postgresql']}, "
        f"Python {m['python']}, Django {m['django']}",
        "Data: " + ", ".join(f"{k} {v:,}" for k, v in report["data"].items()),
        f"Data generation {report['timings']['generate_s']} s, migrate {report['timings']['migrate_s']} s",
        "",
    ]
    rows = [("Figure", "Portal", "Raw-SQL floor")]
    c = r["check"]

    def p(s):
        return f"p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms"

    rows += [
        (f"Check: role_holding in-process (n={c['pairs']})", p(c["in_process"]), p(c["floor_in_process"])),
        ("  the ORM's own SQL, replayed", p(c["same_sql_role_holding"]), ""),
        ("Check: role_holding by name in-process", p(c["role_check_selector"]), p(c["floor_check"])),
        ("  the ORM's own SQL, replayed", p(c["same_sql_role_check"]), ""),
        ("Check: GET /api/v1/check/, test Client", p(c["http_test_client"]), p(c["floor_check"])),
        ("Check: GET /api/v1/check/, loopback HTTP", p(c["http_loopback"]), p(c["floor_check"])),
    ]
    for name, page in r["pages"].items():
        rows.append(
            (
                f"Page: {name} {page['path']} (n={page['n']})",
                f"{page['queries']} queries, p95 {page['p95_ms']:.1f} ms",
                f"same SQL p95 {page['floor']['p95_ms']:.1f} ms",
            )
        )
    s = r["sweep"]
    rows.append(
        (
            f"Expiry sweep of {s['expired']:,} due activations",
            f"{s['seconds']:.2f} s, {s['rows_per_s']:,} rows/s",
            f"UPDATE {s['floor_update_requests_seconds']:.2f} s "
            f"({s['floor_update_requests_rows_per_s']:,} rows/s)",
        )
    )
    v = r["review"]
    rows.append(
        (
            f"Review start, {v['items']:,} items ({v['roles']} roles)",
            f"{v['seconds']:.2f} s ({v['items_per_s']:,} items/s)",
            f"INSERT ... SELECT {v['floor_seconds']:.2f} s",
        )
    )
    e = r["export"]
    rows.append(
        (
            f"Audit export CSV, {e['rows']:,} events",
            f"{e['rows_per_s']:,} rows/s, peak {e['tracemalloc_peak_mb']} MB traced "
            f"(+{e['peak_growth_mb']} MB RSS)",
            f"COPY TO STDOUT {e['floor_copy_rows_per_s']:,} rows/s",
        )
    )
    a = r["verify"]
    rows.append(
        (
            f"audit_verify, {a['events']:,} events ({'ok' if a['ok'] else 'PROBLEM'})",
            f"{a['seconds']:.2f} s, {a['rows_per_s']:,} rows/s",
            f"SELECT {a['floor_select_rows_per_s']:,} rows/s",
        )
    )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --- Main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=0.02, help="1.0 = SPEC 6's full sizes (default 0.02)")
    parser.add_argument("--samples", type=int, default=2000, help="authorization checks timed per variant")
    parser.add_argument("--page-requests", type=int, default=50, help="requests timed per portal page")
    parser.add_argument("--seed", type=int, default=6, help="seed of the data generator")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    parser.add_argument("--export-child", metavar="SINCE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        export_child(args.export_child)
        return
    if args.scale <= 0:
        parser.error("--scale must be positive")

    config = database_settings()
    bench_db = f"{config['NAME']}_bench"
    started = datetime.now(UTC)
    run_start = time.perf_counter()
    say(f"bench: creating database {bench_db} (scale {args.scale})")
    create_database(config, bench_db)
    try:
        report = run(args, config, bench_db, started)
    finally:
        from django.db import connections

        connections.close_all()
        if args.keep:
            say(f"bench: kept database {bench_db}")
        else:
            drop_database(config, bench_db)
            say(f"bench: dropped database {bench_db}")
    report["timings"]["total_s"] = round(time.perf_counter() - run_start, 1)
    text = table(report) + f"\nTotal run time {report['timings']['total_s']} s"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    say(f"bench: results written to {path.relative_to(ROOT)}")


def run(args, config: dict, bench_db: str, started: datetime) -> dict:
    import psycopg

    django_setup(bench_db)
    from django.core.management import call_command

    timings = {}
    _, timings["migrate_s"] = timed(call_command, "migrate", verbosity=0, interactive=False, skip_checks=True)
    db = psycopg.connect(conninfo(config, bench_db))
    pg_version = db.execute("SHOW server_version").fetchone()[0]
    say("bench: generating data")
    gen = Generator(db, args.scale, args.seed)
    start = time.perf_counter()
    counts = gen.run()
    fixtures = portal_fixtures(gen)
    db.autocommit = True
    db.execute("VACUUM ANALYZE")
    db.autocommit = False
    timings["generate_s"] = round(time.perf_counter() - start, 1)
    timings["migrate_s"] = round(timings["migrate_s"], 1)
    say(f"bench: data ready in {timings['generate_s']} s: {counts}")

    results = {}
    steps = (
        ("check", lambda: bench_check(gen, fixtures, db, args.samples)),
        ("pages", lambda: bench_pages(fixtures, db, args.page_requests)),
        ("sweep", lambda: bench_sweep(gen, db)),
        ("review", lambda: bench_review(gen, fixtures, db, scaled("review_items", args.scale, 100))),
        ("export", lambda: bench_export(gen, db)),
        ("verify", lambda: bench_verify(db)),
    )
    for name, step in steps:
        say(f"bench: {name}")
        results[name], timings[f"{name}_s"] = timed(step)
        timings[f"{name}_s"] = round(timings[f"{name}_s"], 1)
    db.close()
    counts["inbox_requests"] = fixtures["inbox"]
    return {
        "scale": args.scale,
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine(pg_version),
        "data": counts,
        "timings": timings,
        "results": results,
    }


if __name__ == "__main__":
    main()

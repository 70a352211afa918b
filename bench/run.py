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
import re
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

from common.ids import uuid7_of  # noqa: E402 - pure Python, no Django: importable before setup

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


def time_uuid(rng: random.Random, at: datetime) -> uuid.UUID:
    """The id the portal would have given a row made at ``at``: assignments and activation
    requests get time-ordered (version 7) UUIDs, common.ids.uuid7. Generated data with random
    ids would scatter the rows a job touches together (the activations ending now, which
    started hours ago) over every index keyed by id."""
    return uuid7_of(int(at.timestamp() * 1000), rng.getrandbits(80))


# The same in SQL, for rows the server writes (INSERT ... SELECT): a random UUID's first six
# bytes replaced by the time in milliseconds, its version bits made 7.
TIME_UUID_SQL = (
    "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
    "substring(int8send(floor(extract(epoch FROM {at}) * 1000)::bigint) FROM 3) FROM 1 FOR 6), "
    "52, 1), 53, 1), 'hex')::uuid"
)


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


def model_defaults(table: str, columns) -> dict:
    """The NOT NULL columns of the model behind `table` that are not in `columns`, with their
    fields' defaults (Django keeps defaults in Python, not in the database)."""
    from django.apps import apps
    from psycopg.types.json import Jsonb

    model = next((m for m in apps.get_models() if m._meta.db_table == table), None)
    if model is None:
        return {}
    defaults = {}
    for field in model._meta.concrete_fields:
        if field.column in columns or field.null or field.primary_key:
            continue
        value = field.get_default()  # "" for a text field without one, as the ORM saves it
        if value is None:
            continue  # no default: the generator must name the column (COPY says so)
        defaults[field.column] = Jsonb(value) if isinstance(value, dict | list) else value
    return defaults


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
        """COPY the rows; a NOT NULL column the generator does not name (a field added since)
        gets its model field's default, as the ORM would have written it."""
        defaults = model_defaults(table, columns)
        names = (*columns, *defaults)
        extra = tuple(defaults.values())
        count = 0
        with self.db.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row((*row, *extra))
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
        # The rows are consistent by construction: no foreign-key checks while loading (they
        # are deferred triggers, run at each commit, and took half the generation time).
        # Replica mode skips them, and the audit log's append-only triggers, which only refuse
        # updates and deletes; the portal's own connections are untouched.
        self.db.execute("SET session_replication_role = replica")
        self.users()
        self.roles()
        self.groups()
        self.eligible()
        self.activations()
        self.audit_events()
        self.db.execute("RESET session_replication_role")
        self.db.commit()
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
                row = self._eligible_row(None, user, role)
                self.user_eligible.append((row[0], user, role))
                yield row
            for _ in range(group_rows):
                group = self.rng.choice(self.group_ids)
                yield self._eligible_row(group, None, self.rng.choice(roles))

        self.counts["eligible"] = self.copy("roles_eligibleassignment", columns, rows())

    def _eligible_row(self, group, user, role) -> tuple:
        starts = self.ago(timedelta(days=1), timedelta(days=365))
        ends = None if self.rng.random() < 0.2 else self.now + timedelta(days=self.rng.randint(30, 365))
        return (time_uuid(self.rng, starts), "/", starts, ends, "bench", starts, None, "", None, None,
                group, user, role, None)  # fmt: skip

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
            for eligible, user, role in self.due_set + self.current_set:
                duration = timedelta(hours=self.rng.randint(1, 8))
                if (eligible, user, role) in due_lookup:
                    ends = self.ago(timedelta(minutes=1), timedelta(hours=2))
                else:  # started already (held now), ending 10 minutes to its duration from now
                    ends = self.now + timedelta(minutes=self.rng.randint(10, duration.seconds // 60 - 1))
                granted = ends - duration
                pk = time_uuid(self.rng, granted)
                yield (pk, "/", granted, ends, "bench", granted, None, "activation", "",
                       None, None, None, user, eligible, role, None)  # fmt: skip
                requests.append(self._request(eligible, user, role, "granted", granted, duration, pk, None))

        due_lookup = set(self.due_set)
        self.historical_activations(historical)
        self.counts["active_assignments"] = historical + self.copy(
            "roles_activeassignment", active_columns, active_rows()
        )
        for eligible, user, role in self.pending_set:
            created = self.ago(timedelta(minutes=5), timedelta(hours=10))
            row = list(
                self._request(eligible, user, role, "pending_approval", None, timedelta(hours=2), None, None)
            )
            row[request_columns.index("created_at")] = created
            row[request_columns.index("decide_by")] = created + timedelta(hours=24)
            row[request_columns.index("approvals_required")] = 1
            requests.append(tuple(row))
        self.counts["activation_requests"] = historical + self.copy(
            "activations_activationrequest", request_columns, iter(requests)
        )
        self.counts["activations_historical"] = historical
        self.counts["activations_due"] = len(self.due_set)
        self.counts["activations_current"] = len(self.current_set)
        self.counts["activations_pending"] = len(self.pending_set)
        self.pending_ids = [row[0] for row in requests[-len(self.pending_set) :]]

    def historical_activations(self, n: int) -> None:
        """The closed activations of the past year, written by the server (INSERT ... SELECT
        over generate_series: a million rows built in Python took most of the generation):
        each on a random eligibility of a person, granted 1-365 days ago for 1-8 hours, every
        fifth deactivated half-way, the rest expired; an activation request behind each."""
        db = self.db
        db.execute("SELECT setseed(%s)", (self.rng.random() * 2 - 1,))
        db.execute("CREATE TEMP TABLE bench_eligible (n int PRIMARY KEY, id uuid, user_id int, role_id uuid)")
        with db.cursor().copy("COPY bench_eligible (n, id, user_id, role_id) FROM STDIN") as copy:
            for index, (eligible, user, role) in enumerate(self.user_eligible, start=1):
                copy.write_row((index, eligible, user, role))
        db.execute(
            "CREATE TEMP TABLE bench_history AS "
            f"SELECT {TIME_UUID_SQL.format(at='picked.granted')} AS assignment_id, "
            f"{TIME_UUID_SQL.format(at='picked.granted')} AS request_id, "
            "e.id AS eligible_id, e.user_id, e.role_id, picked.granted, "
            "picked.hours * interval '1 hour' AS duration, "
            "picked.g %% 5 = 0 AS deactivated FROM ("
            "SELECT g, 1 + floor(random() * %s)::int AS pick, "
            "%s::timestamptz - interval '1 day' - random() * interval '364 days' AS granted, "
            "1 + floor(random() * 8)::int AS hours FROM generate_series(0, %s - 1) g"
            ") picked JOIN bench_eligible e ON e.n = picked.pick",
            (len(self.user_eligible), self.now, n),
        )
        active = {
            "id": "assignment_id", "scope": "'/'", "starts_at": "granted", "ends_at": "granted + duration",
            "justification": "'bench'", "created_at": "granted",
            "ended_at": "CASE WHEN deactivated THEN granted + duration / 2 END", "origin": "'activation'",
            "end_reason": "CASE WHEN deactivated THEN 'deactivated' ELSE 'expired' END",
            "ended_by_id": "CASE WHEN deactivated THEN user_id END", "user_id": "user_id",
            "eligible_id": "eligible_id", "role_id": "role_id",
        }  # fmt: skip
        request = {
            "id": "request_id", "kind": "'activate'", "scope": "'/'",
            "status": "CASE WHEN deactivated THEN 'deactivated' ELSE 'expired' END", "duration": "duration",
            "justification": "'bench'", "ticket_number": "''", "ticket_system": "''",
            "mfa_verified_at": "granted",
            "approvals_required": "0", "created_at": "granted - interval '1 minute'", "decided_at": "granted",
            "decision_reason": "''", "granted_at": "granted", "ends_at": "granted + duration",
            "closed_at": "CASE WHEN deactivated THEN granted + duration / 2 ELSE granted + duration END",
            "active_assignment_id": "assignment_id", "eligible_id": "eligible_id", "requester_id": "user_id",
            "role_id": "role_id",
        }  # fmt: skip
        for table, columns in (
            ("roles_activeassignment", active),
            ("activations_activationrequest", request),
        ):
            defaults = model_defaults(table, tuple(columns))
            names = ", ".join((*columns, *defaults))
            values = ", ".join((*columns.values(), *["%s"] * len(defaults)))
            db.execute(
                f"INSERT INTO {table} ({names}) SELECT {values} FROM bench_history",  # noqa: S608 - fixed SQL
                tuple(defaults.values()),
            )
        db.execute("DROP TABLE bench_history, bench_eligible")
        db.commit()

    def _request(self, eligible, user, role, status, granted, duration, assignment, closed) -> tuple:
        created = (granted or self.now) - timedelta(minutes=1)
        ends = granted + duration if granted else None
        return (
            time_uuid(self.rng, created), "activate", "/", status, None, duration, "bench", "", "",
            granted, 0, created, None, granted, "", granted, ends, closed, None, assignment, None,
            eligible, user, role,
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
            "role_label scope details request_id ip user_agent prev_hash hash mac mac_key_id actor_id "
            "chain_version details_text"
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
                    "target_id": str(time_uuid(self.rng, occurred)),
                    "target_label": f"activation request {role_name} by {requester}",
                    "role_id": str(role),
                    "role_label": role_name,
                    "scope": "/",
                    "details": {"requester": requester, "duration_hours": self.rng.randint(1, 8)},
                    "request_id": "" if system else f"{self.rng.getrandbits(64):016x}",
                    "ip": None if system else f"10.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}.9",
                    "user_agent": "" if system else "Mozilla/5.0 (bench)",
                }  # fmt: skip
                # Chain version 3, as audit.services.chain_link writes new events.
                fields["chain_version"] = chain.CHAIN_VERSION
                fields["details_text"] = chain.canonical_details(fields["details"])
                digest = chain.event_hash(prev, fields)
                yield (
                    seq, occurred, fields["actor_label"], action, outcome, fields["target_type"],
                    fields["target_id"], fields["target_label"], role, role_name, "/",
                    json.dumps(fields["details"]), fields["request_id"], fields["ip"], fields["user_agent"],
                    prev, digest, chain.event_mac(key.secret, digest), key.id, actor,
                    fields["chain_version"], fields["details_text"],
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


# The floors: hand-written, indexed statements doing the same work, written here and not
# taken from the portal (the portal's own SQL replayed would only measure the portal again).
# The person's own assignments and their groups' are two index lookups.
FLOOR_HOLDING_SQL = """
SELECT a.id FROM roles_activeassignment a
WHERE a.user_id = %(user)s AND a.role_id = %(role)s AND a.scope = ANY(%(scopes)s)
  AND a.starts_at <= %(at)s AND (a.ends_at IS NULL OR a.ends_at > %(at)s)
  AND (a.ended_at IS NULL OR a.ended_at > %(at)s)
UNION ALL
SELECT a.id FROM accounts_directorygroup_members m
JOIN roles_activeassignment a ON a.group_id = m.directorygroup_id
WHERE m.user_id = %(user)s AND a.role_id = %(role)s AND a.scope = ANY(%(scopes)s)
  AND a.starts_at <= %(at)s AND (a.ends_at IS NULL OR a.ends_at > %(at)s)
  AND (a.ended_at IS NULL OR a.ended_at > %(at)s)
LIMIT 1
"""

FLOOR_CHECK_SQL = """
WITH person AS (SELECT id FROM accounts_user WHERE username = %(username)s AND is_active)
SELECT a.id FROM roles_activeassignment a
WHERE a.user_id = (SELECT id FROM person) AND a.role_id = %(role)s AND a.scope = ANY(%(scopes)s)
  AND a.starts_at <= %(at)s AND (a.ends_at IS NULL OR a.ends_at > %(at)s)
  AND (a.ended_at IS NULL OR a.ended_at > %(at)s)
UNION ALL
SELECT a.id FROM accounts_directorygroup_members m
JOIN roles_activeassignment a ON a.group_id = m.directorygroup_id
WHERE m.user_id = (SELECT id FROM person) AND a.role_id = %(role)s AND a.scope = ANY(%(scopes)s)
  AND a.starts_at <= %(at)s AND (a.ends_at IS NULL OR a.ends_at > %(at)s)
  AND (a.ended_at IS NULL OR a.ended_at > %(at)s)
LIMIT 1
"""


def bench_check(gen: Generator, fixtures: dict, db, samples: int, http_seconds: float) -> dict:
    """role_holding in-process, the API check over the test Client and through gunicorn, each
    beside an independent hand-written floor; the sample is half pairs held right now."""
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
    held = sum(role_holding(user=user, role=role).active for user, role in objects)
    results = {"pairs": samples, "share_held": round(held / samples, 3)}

    results["in_process"] = summary(latencies(lambda pair: role_holding(user=pair[0], role=pair[1]), objects))
    results["role_check_selector"] = summary(
        latencies(lambda pair: role_holding(user=pair[0].username, role=str(pair[1].pk)), objects)
    )

    def floor_holding(pair):
        params = {"user": pair[0].pk, "role": pair[1].pk, "scopes": ["/"], "at": datetime.now(UTC)}
        db.execute(FLOOR_HOLDING_SQL, params, prepare=True).fetchall()

    def floor_check(pair):
        params = {"username": pair[0].username, "role": pair[1].pk, "scopes": ["/"], "at": datetime.now(UTC)}
        db.execute(FLOOR_CHECK_SQL, params, prepare=True).fetchall()

    # Each statement its own transaction, as the portal's (autocommit) are: with many
    # backends, taking a snapshot per transaction is part of what a lookup costs.
    db.rollback()
    db.autocommit = True
    try:
        results["floor_in_process"] = summary(latencies(floor_holding, objects))
        results["floor_check"] = summary(latencies(floor_check, objects))
        floor_seconds = sum(timed(floor_check, pair)[1] for pair in objects)
    finally:
        db.autocommit = False
    results["floor_check_per_s"] = round(len(objects) / floor_seconds) if floor_seconds else None

    client = Client(HTTP_AUTHORIZATION=f"Bearer {fixtures['token']}")

    def via_client(pair):
        response = client.get("/api/v1/check/", {"user": pair[0].username, "role": str(pair[1].pk)})
        if response.status_code != 200:
            raise RuntimeError(f"check answered {response.status_code}: {response.content[:200]!r}")

    results["http_test_client"] = summary(latencies(via_client, objects))
    results["gunicorn"] = bench_gunicorn(fixtures["token"], objects, http_seconds)
    return results


def bench_gunicorn(token: str, objects: list, seconds: float) -> dict:
    """GET /api/v1/check/ through gunicorn (2 sync workers, the production database settings):
    wrk's throughput and latency with 8 connections (a Python client when wrk is missing),
    one keep-alive client's latency, and the same for the trivial DRF view (bench/urls.py)."""
    import http.client
    import shutil
    import socket
    import tempfile
    from urllib.parse import urlencode

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(  # noqa: S603 - gunicorn from this virtualenv
        [sys.executable, "-m", "gunicorn", "pim_portal.wsgi:application", "--workers", "2",
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"},
        cwd=ROOT,
    )  # fmt: skip
    paths = ["/api/v1/check/?" + urlencode({"user": u.username, "role": r.pk}) for u, r in objects]
    headers = {"Authorization": f"Bearer {token}", "Host": "127.0.0.1"}
    try:
        for _ in range(300):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def call(path):
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"{path} answered {response.status}: {body[:200]!r}")

        results = {
            "workers": 2,
            "one_client_check": summary(latencies(call, paths[: min(len(paths), 1000)])),
            "one_client_trivial": summary(latencies(call, ["/bench/trivial/"] * min(len(paths), 1000))),
        }
        connection.close()
        wrk = shutil.which("wrk")
        with tempfile.TemporaryDirectory() as folder:
            for name, urls in (("check", paths), ("trivial", ["/bench/trivial/"])):
                if wrk:
                    results[f"wrk_{name}"] = run_wrk(wrk, port, token, urls, seconds, Path(folder))
                else:
                    results[f"python_load_{name}"] = python_load(port, headers, urls, seconds)
        results["load_tool"] = "wrk" if wrk else "python threads (wrk not installed)"
        return results
    finally:
        server.terminate()
        server.wait(timeout=30)


def run_wrk(wrk: str, port: int, token: str, paths: list, seconds: float, folder: Path) -> dict:
    script = folder / "paths.lua"
    quoted = ",\n".join(json.dumps(path) for path in paths)
    script.write_text(
        f"local paths = {{\n{quoted}\n}}\nlocal i = 0\n"
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        "request = function()\n  i = i % #paths + 1\n  return wrk.format('GET', paths[i])\nend\n"
    )
    output = subprocess.run(  # noqa: S603 - wrk, found on PATH
        [wrk, "-t2", "-c8", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    result: dict = {"connections": 8, "seconds": max(1, round(seconds))}
    for line in output.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            result["requests_per_s"] = round(float(parts[1]))
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            result[f"p{parts[0][:-1]}_ms"] = _wrk_ms(parts[1])
        elif "Non-2xx" in line:
            result["non_2xx"] = int(parts[-1])
    return result


def _wrk_ms(text: str) -> float:
    for suffix, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(suffix):
            return round(float(text[: -len(suffix)]) * factor, 3)
    return float(text)


def python_load(port: int, headers: dict, paths: list, seconds: float, clients: int = 4) -> dict:
    """wrk's stand-in: a few keep-alive clients in threads for the given time."""
    import http.client

    counts, stop = [0] * clients, time.perf_counter() + seconds

    def client(index):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = index
        while time.perf_counter() < stop:
            connection.request("GET", paths[i % len(paths)], headers=headers)
            connection.getresponse().read()
            counts[index] += 1
            i += clients
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"connections": clients, "requests_per_s": round(sum(counts) / (time.perf_counter() - start))}


PAGES = (
    ("My roles", "/roles/"),
    ("Approvals inbox", "/activations/approvals/"),
    ("Audit log page", "/audit/"),
)


def signed_in_client(fixtures: dict):
    """Sign in through the real forms: password, then a TOTP code (as conftest's verified_client).
    Once per run: a code works once, and two steps within its 30 s would reuse it."""
    from django.test import Client
    from django_otp.oath import TOTP

    if "client" in fixtures:
        return fixtures["client"]
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
    fixtures["client"] = client
    return client


_CURRENT = (
    "{t}.starts_at <= %(at)s AND ({t}.ends_at IS NULL OR {t}.ends_at > %(at)s) "
    "AND ({t}.ended_at IS NULL OR {t}.ended_at > %(at)s)"
)


def _own_and_groups(table: str, alias: str) -> str:
    current = _CURRENT.format(t=alias)
    return f"""SELECT {alias}.id, r.name, {alias}.scope, {alias}.ends_at FROM {table} {alias}
        JOIN roles_role r ON r.id = {alias}.role_id WHERE {alias}.user_id = %(user)s AND {current}
        UNION ALL
        SELECT {alias}.id, r.name, {alias}.scope, {alias}.ends_at FROM accounts_directorygroup_members m
        JOIN {table} {alias} ON {alias}.group_id = m.directorygroup_id
        JOIN roles_role r ON r.id = {alias}.role_id WHERE m.user_id = %(user)s AND {current}"""


# Each page's floor: what the page lists, read with hand-written indexed statements.
PAGE_FLOORS = {
    "My roles": [
        _own_and_groups("roles_eligibleassignment", "e"),
        _own_and_groups("roles_activeassignment", "a"),
    ],
    "Approvals inbox": [
        """SELECT q.id, r.name, u.username, q.created_at FROM activations_requestapprover ra
        JOIN activations_activationrequest q ON q.id = ra.request_id
        JOIN roles_role r ON r.id = q.role_id JOIN accounts_user u ON u.id = q.requester_id
        WHERE ra.user_id = %(user)s AND q.status = 'pending_approval' AND q.decide_by > %(at)s
          AND NOT EXISTS (SELECT 1 FROM activations_approval p
                          WHERE p.request_id = q.id AND p.approver_id = %(user)s)
        ORDER BY q.created_at LIMIT 50""",
    ],
    "Audit log page": [
        """SELECT seq, occurred_at, actor_label, action, outcome, target_label, role_label, scope
        FROM audit_auditevent ORDER BY seq DESC LIMIT 50""",
    ],
}


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
            "floor": page_floor(db, PAGE_FLOORS[name], fixtures["user"].pk, requests),
            "statements": [" ".join(query.split())[:2000] for query in queries],
        }
    return results


def page_floor(db, statements: list[str], user_id: int, repeats: int) -> dict:
    """Each repeat one transaction, as a page's request is."""
    values = []
    for _ in range(repeats):
        params = {"user": user_id, "at": datetime.now(UTC)}
        start = time.perf_counter()
        for statement in statements:
            db.execute(statement, params, prepare=True).fetchall()
        db.rollback()
        values.append(time.perf_counter() - start)
    return summary(values)


def bench_sweep(gen: Generator, db, broker_url: str) -> dict:
    """The portal's expiry sweep over every due activation, beside a floor doing the same work
    by hand (rolled back first): close the requests, mark the assignments, insert the revokes
    and the chained audit events, one broker message per batch of 1,000."""
    from django.conf import settings

    from activations.jobs import activation_expire_due
    from audit.models import AuditEvent
    from roles import directory_services

    now = datetime.now(UTC)
    due = db.execute(
        "SELECT count(*) FROM activations_activationrequest WHERE status = 'granted' AND ends_at <= %s",
        (now,),
    ).fetchone()[0]
    db.rollback()
    db.autocommit = True
    db.execute("CHECKPOINT")
    db.autocommit = False
    floor = floor_sweep(db, now, broker_url)
    # The floor's rolled-back work leaves a dead version of every row it touched (and their
    # index entries): vacuumed away, so the portal starts from the state the floor started
    # from, which is what a production sweep meets (autovacuum keeps up between runs); the
    # checkpoint makes both start right after one (every page's first change then writes a
    # full-page image: the costly case).
    db.autocommit = True
    db.execute(
        "VACUUM (ANALYZE) activations_activationrequest, roles_activeassignment, roles_directoryoperation, "
        "audit_auditevent, audit_auditchainhead"
    )
    db.execute("CHECKPOINT")
    db.autocommit = False
    events_before = AuditEvent.objects.count()
    publish = {"seconds": 0.0, "calls": 0}
    original = directory_services.task_publish

    def counted_publish(task, *args):  # the same call, timed: the on-commit broker hand-off
        start = time.perf_counter()
        try:
            return original(task, *args)
        finally:
            publish["seconds"] += time.perf_counter() - start
            publish["calls"] += 1

    directory_services.task_publish = counted_publish
    try:
        done, seconds = timed(activation_expire_due, now=now)
    finally:
        directory_services.task_publish = original
    events = AuditEvent.objects.count() - events_before
    return {
        "due": due,
        "expired": done,
        "workers": settings.PIM_EXPIRY_SWEEP_WORKERS,
        "audit_events_written": events,
        "seconds": round(seconds, 3),
        "rows_per_s": round(done / seconds) if seconds else None,
        "broker_publishes": publish["calls"],
        "of_which_publish_seconds": round(publish["seconds"], 3),
        **floor,
    }


def floor_sweep(db, now: datetime, broker_url: str, batch: int = 1000) -> dict:
    from django.core.serializers.json import DjangoJSONEncoder

    from audit import chain, chain_keys

    encode = DjangoJSONEncoder().default
    key = chain_keys.current()
    broker = _broker(broker_url)
    rows_done, start = 0, time.perf_counter()
    while True:
        rows = db.execute(
            """
            WITH claimed AS (
                SELECT r.id FROM activations_activationrequest r
                WHERE r.status = 'granted' AND r.ends_at <= %(now)s
                ORDER BY r.ends_at LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
            UPDATE activations_activationrequest r SET status = 'expired', closed_at = %(now)s
            FROM roles_role ro, accounts_user u
            WHERE r.id IN (SELECT id FROM claimed) AND ro.id = r.role_id AND u.id = r.requester_id
            RETURNING r.id, r.scope, r.ends_at, r.active_assignment_id, ro.id, ro.name,
                      u.display_name, u.username
            """,
            {"now": now, "batch": batch},
        ).fetchall()
        if not rows:
            break
        assignments = [row[3] for row in rows]
        db.execute(
            "UPDATE roles_activeassignment SET end_reason = 'expired' WHERE id = ANY(%s) AND end_reason = ''",
            (assignments,),
        )
        operations = [
            op for (op,) in db.execute(
                "INSERT INTO roles_directoryoperation (assignment_id, operation, status, attempts, "
                "created_at, next_attempt_at, last_error, result, effect, effect_checks) "
                "SELECT unnest(%s::uuid[]), 'revoke', 'pending', 0, %s, %s, '', '{}', '', 0 RETURNING id",
                (assignments, now, now),
            )
        ]  # fmt: skip
        seq, prev = db.execute(
            "SELECT last_seq, last_hash FROM audit_auditchainhead WHERE id = 1 FOR UPDATE"
        ).fetchone()
        with db.cursor().copy(
            "COPY audit_auditevent (seq, occurred_at, actor_label, action, outcome, target_type, target_id, "
            "target_label, role_id, role_label, scope, details, request_id, ip, user_agent, prev_hash, hash, "
            "mac, mac_key_id, chain_version, details_text) FROM STDIN"
        ) as copy:
            for request_id, scope, ends_at, _, role_id, role_name, display, username in rows:
                seq += 1
                requester = f"{display} <{username}>" if display else username
                fields = {
                    "seq": seq, "occurred_at": now, "actor_id": None, "actor_label": "system",
                    "action": "activation.expired", "outcome": "success",
                    "target_type": "activations.activationrequest", "target_id": str(request_id),
                    "target_label": f"activation request {role_name} by {requester}",
                    "role_id": str(role_id), "role_label": role_name, "scope": scope,
                    "details": {"requester": requester, "ends_at": encode(ends_at)},
                    "request_id": "", "ip": None, "user_agent": "", "chain_version": chain.CHAIN_VERSION,
                }  # fmt: skip
                fields["details_text"] = chain.canonical_details(fields["details"])
                digest = chain.event_hash(prev, fields)
                copy.write_row((
                    seq, now, "system", "activation.expired", "success", fields["target_type"],
                    fields["target_id"], fields["target_label"], role_id, role_name, scope,
                    json.dumps(fields["details"]), "", None, "", prev, digest,
                    chain.event_mac(key.secret, digest), key.id, chain.CHAIN_VERSION, fields["details_text"],
                ))  # fmt: skip
                prev = digest
        db.execute("UPDATE audit_auditchainhead SET last_seq = %s, last_hash = %s WHERE id = 1", (seq, prev))
        broker.publish(operations)
        rows_done += len(rows)
    seconds = time.perf_counter() - start
    db.rollback()
    broker.close()
    return {
        "floor_rows": rows_done,
        "floor_seconds": round(seconds, 3),
        "floor_rows_per_s": round(rows_done / seconds) if seconds else None,
    }


class _broker:
    """The floor's broker hand-off: one LPUSH of the batch to a scratch list on the same Redis
    (deleted at the end), or nothing without Redis."""

    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url) if url else None
        self.key = f"pim-bench-floor-{uuid.uuid4().hex}"

    def publish(self, payload) -> None:
        if self.client is not None:
            self.client.lpush(self.key, json.dumps(payload))

    def close(self) -> None:
        if self.client is not None:
            self.client.delete(self.key)
            self.client.close()


def bench_review(gen: Generator, fixtures: dict, db, target: int, broker_url: str) -> dict:
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
            last_sign_in_source, recommendation, recommendation_reason, decision, from_recommendation,
            justification, outcome, outcome_detail, eligible_id, group_id, instance_id, role_id, user_id)
        SELECT gen_random_uuid(), 'eligible',
            coalesce(u.display_name || ' <' || u.username || '>', 'group ' || g.name), e.scope,
            u.last_sign_in_at, CASE WHEN u.last_sign_in_at IS NULL THEN '' ELSE 'portal' END,
            '', '', '', false, '', '', '', e.id, e.group_id, %(instance)s, e.role_id, e.user_id
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
    # One email row per reviewer (the portal renders its three templates for each) and one
    # broker message for them all.
    emails = db.execute(
        """
        INSERT INTO notifications_email (template, "to", subject, body_text, body_html, status, attempts,
            created_at, next_attempt_at, last_error)
        SELECT 'review-started', u.email, 'Access review started', 'A review started: ' || u.username,
            '<p>A review started: ' || u.username || '</p>', 'pending', 0, %(at)s, %(at)s, ''
        FROM accounts_user u WHERE u.is_active AND u.id IN (
            SELECT l.reviewer_id FROM reviews_reviewerassignment l
            JOIN reviews_reviewitem i ON i.id = l.item_id WHERE i.instance_id = %(instance)s)
        RETURNING id
        """,
        {"instance": instance_id, "at": now},
    ).fetchall()
    broker = _broker(broker_url)
    broker.publish([row[0] for row in emails])
    broker.close()
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


def _proc_status_mb(field: str) -> float:
    """VmRSS / VmHWM of this process in MB. VmHWM is the high-water mark of this process's own
    memory map (a fresh one at exec, unlike getrusage's ru_maxrss, which Linux carries over
    from the forking parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def export_child(since_text: str) -> None:
    """Run in a fresh process (exec'd, not forked from the large bench process):
    audit_export_start + export_chunks (CSV), consumed to the end."""
    django_setup(os.environ["PIM_BENCH_DATABASE"])
    from django.db import connection

    from accounts.models import User
    from audit.event_exports import audit_export_start, export_chunks
    from audit.models import AuditEvent

    since = datetime.fromisoformat(since_text)
    actor = User.objects.get(username=BENCH_USER)
    connection.ensure_connection()
    baseline = _proc_status_mb("VmRSS")
    start = time.perf_counter()
    export = audit_export_start(
        actor=actor,
        events=AuditEvent.objects.filter(occurred_at__gte=since),
        params={"since": since_text},
        format="csv",
    )
    size, lines = 0, 0
    for chunk in export_chunks(export):  # bytes from COPY on PostgreSQL, text elsewhere
        data = chunk if isinstance(chunk, bytes) else chunk.encode()
        size += len(data)
        lines += data.count(b"\n")
    seconds = time.perf_counter() - start
    peak = _proc_status_mb("VmHWM")
    # A second pass over the same pinned export, untimed, under tracemalloc: the peak of what
    # Python allocated while streaming.
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
                "rss_before_mb": baseline,
                "rss_peak_mb": peak,
                "peak_growth_mb": round(peak - baseline, 1),
                "tracemalloc_peak_mb": round(traced_peak / 2**20, 1),
            }
        )
    )


# The verify floor's statement, written here (not audit.verify's): the columns version 3
# hashes, cast to text by the database, and the details' agreement with their hashed text.
FLOOR_VERIFY_SQL = (
    "SELECT seq, prev_hash, hash, mac, mac_key_id, chain_version, "
    "CASE WHEN chain_version >= 3 THEN details = details_text::jsonb END, "
    "seq::text, (extract(epoch FROM occurred_at) * 1000000)::int8::text, actor_id::text, actor_label, "
    "action, outcome, target_type, target_id, target_label, role_id::text, role_label, scope, "
    "details_text, request_id, host(ip), user_agent FROM audit_auditevent ORDER BY audit_auditevent.seq"
)


def bench_verify(db) -> dict:
    """audit_verify (one process per core) beside a floor doing the same work in one process
    and one lean loop written here: the same text columns through a server-side cursor, each
    version-3 event's message put together by hand (length-prefixed texts), its SHA-256 and
    HMAC recomputed and compared, its link and details checked. Events of an older chain
    version are counted as mismatches (the bench writes none)."""
    import hashlib
    import hmac

    from audit import chain_keys
    from audit.verify import PARALLEL_MIN_EVENTS, audit_chain_verify

    result, seconds = timed(audit_chain_verify)
    keys = chain_keys.keyring() or {}
    start = time.perf_counter()
    rows, prev, last_seq, bad = 0, "0" * 64, 0, 0
    sha256, hmac_digest = hashlib.sha256, hmac.digest
    prefix, mac_prefix = "PIM Portal audit event v3\n", b"PIM Portal audit event v2\n"
    with db.cursor(name="bench_verify_floor") as cursor:
        cursor.itersize = 10000
        cursor.execute(FLOOR_VERIFY_SQL)
        for seq, prev_hash, digest, mac, key_id, version, details_ok, *texts in cursor:
            parts = [prefix, prev_hash, "\n"]
            for text in texts:
                parts.append("-" if text is None else f"{len(text)}:{text}")
            computed = sha256("".join(parts).encode()).hexdigest()
            key = keys.get(key_id)
            if (
                seq != last_seq + 1
                or version != 3
                or not details_ok
                or prev_hash != prev
                or computed != digest
                or key is None
                or hmac_digest(key, mac_prefix + digest.encode(), "sha256").hex() != mac
            ):
                bad += 1
            prev, last_seq = digest, seq
            rows += 1
    floor = time.perf_counter() - start
    db.rollback()
    return {
        "events": result.count,
        "ok": result.ok,
        "problem": str(result.problem) if result.problem else None,
        "seconds": round(seconds, 3),
        "rows_per_s": round(result.count / seconds) if seconds else None,
        # One process below PARALLEL_MIN_EVENTS (starting others would cost more).
        "workers": _workers_here() if result.count >= PARALLEL_MIN_EVENTS else 1,
        "floor_seconds": round(floor, 3),
        "floor_rows_per_s": round(rows / floor) if floor else None,
        "floor_mismatches": bad,
    }


def _processes(count: int) -> str:
    return "one process" if count == 1 else f"{count} processes"


def _workers_here() -> int:
    from audit.verify import _workers

    return _workers()


# --- Report -----------------------------------------------------------------------------------


def figures(report: dict) -> list[tuple[str, float | None, str, float | None, str]]:
    """(figure, portal value, unit, floor value, what the floor is) per line of the report."""
    r = report["results"]
    c, g = r["check"], r["check"]["gunicorn"]
    load = "wrk" if "wrk_check" in g else "python_load"
    rows = [
        ("Check role_holding in-process, p50", c["in_process"]["p50_ms"], "ms",
         c["floor_in_process"]["p50_ms"], "indexed lookup"),
        ("Check role_holding by name, p50", c["role_check_selector"]["p50_ms"], "ms",
         c["floor_check"]["p50_ms"], "indexed lookup by name"),
        ("GET /api/v1/check/ test Client, p50", c["http_test_client"]["p50_ms"], "ms",
         c["floor_check"]["p50_ms"], "indexed lookup by name"),
        ("GET /api/v1/check/ gunicorn, one client, p50", g["one_client_check"]["p50_ms"], "ms",
         g["one_client_trivial"]["p50_ms"], "trivial DRF view"),
        (f"GET /api/v1/check/ gunicorn 2 workers, {load}", g[f"{load}_check"]["requests_per_s"], "req/s",
         g[f"{load}_trivial"]["requests_per_s"], "trivial DRF view"),
    ]  # fmt: skip
    for name, page in r["pages"].items():
        rows.append((f"Page {name} ({page['queries']} queries), p95", page["p95_ms"], "ms",
                     page["floor"]["p95_ms"], "hand-written statements"))  # fmt: skip
    s, v, e, a = r["sweep"], r["review"], r["export"], r["verify"]
    rows += [
        (f"Expiry sweep, {s['expired']:,} due ({s.get('workers', 1)} workers)", s["seconds"], "s",
         s["floor_seconds"], "same work by hand, one connection"),
        (f"Review start, {v['items']:,} items", v["seconds"], "s", v["floor_seconds"], "INSERT ... SELECT"),
        (f"Audit export CSV, {e['rows']:,} events", e["rows_per_s"], "rows/s",
         e["floor_copy_rows_per_s"], "COPY TO STDOUT"),
        ("Audit export RSS growth (fresh process)", e["peak_growth_mb"], "MB", None, ""),
        (f"audit_verify, {a['events']:,} events ({_processes(a['workers'])})", a["rows_per_s"], "events/s",
         a["floor_rows_per_s"], "one lean loop, same hashing"),
    ]  # fmt: skip
    return rows


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def table(report: dict) -> str:
    """One run as text: each figure beside its floor and the ratio."""
    m = report["machine"]
    lines = [
        f"PIM Portal benchmarks, scale {report['scale']} ({report['started_at']})",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, load average {m.get('load')}, "
        f"PostgreSQL {m['postgresql']}, Python {m['python']}, Django {m['django']}",
        f"Broker: {report['broker']}",
        "Data: " + ", ".join(f"{k} {v:,}" for k, v in report["data"].items()),
        f"Data generation {report['timings']['generate_s']} s, migrate {report['timings']['migrate_s']} s, "
        f"check sample held {report['results']['check']['share_held']:.0%}",
        "",
    ]
    rows = [("Figure", "Portal", "Floor", "Portal/floor")]
    for name, portal, unit, floor, what in figures(report):
        ratio = ""
        if portal and floor:
            ratio = f"{(floor / portal if unit.endswith('/s') else portal / floor):.2f}×"
        rows.append(
            (name, f"{_number(portal)} {unit}", f"{_number(floor)} {unit} ({what})" if what else "", ratio)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(reports: list[dict]) -> str:
    """All scales in one Markdown table: each figure per scale, its growth from the smallest
    scale to the largest, and the largest scale's floor and ratio."""
    first = reports[0]
    by_scale = [figures(report) for report in reports]
    scales = [str(report["scale"]) for report in reports]
    head = [
        "Figure",
        *(f"scale {scale}" for scale in scales),
        "growth",
        f"floor at {scales[-1]}",
        "portal/floor",
    ]
    out = [
        f"# PIM Portal benchmarks ({first['started_at']})",
        "",
        f"Machine: {first['machine']['cores']} cores ({first['machine']['cpu']}), PostgreSQL "
        f"{first['machine']['postgresql']}; load average at the start of each scale: "
        + ", ".join(f"{report['scale']}: {report['machine'].get('load')}" for report in reports)
        + f". Broker: {first['broker']}. Shared machine: read ratios and growth, not absolute times.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    for index, (name, _, unit, _, what) in enumerate(by_scale[-1]):
        values = [rows[index][1] for rows in by_scale]
        growth = ""
        if values[0] and values[-1] and len(values) > 1:
            growth = f"{values[-1] / values[0]:.2f}×"
        floor = by_scale[-1][index][3]
        ratio = ""
        if values[-1] and floor:
            ratio = f"{(floor / values[-1] if unit.endswith('/s') else values[-1] / floor):.2f}×"
        label = name.split(",")[0] if "," in name and name.split(",")[1].strip()[0].isdigit() else name
        cells = [f"{label} ({unit})", *(_number(v) for v in values), growth,
                 f"{_number(floor)} ({what})" if what else "–", ratio]  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "Sizes: " + "; ".join(
        f"scale {report['scale']}: due {report['results']['sweep']['expired']:,}, review items "
        f"{report['results']['review']['items']:,}, export {report['results']['export']['rows']:,}, "
        f"verify {report['results']['verify']['events']:,}" for report in reports
    ), ""]  # fmt: skip
    return "\n".join(out)


# --- Main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=None, help="1.0 = SPEC 6's full sizes (default 0.02)")
    parser.add_argument(
        "--scales",
        default=None,
        help="several scales in one run, e.g. 0.02,0.2,1.0 (growth factors per figure)",
    )
    parser.add_argument("--samples", type=int, default=2000, help="authorization checks timed per variant")
    parser.add_argument("--page-requests", type=int, default=200, help="requests timed per portal page")
    parser.add_argument("--http-seconds", type=float, default=10.0, help="seconds of load per HTTP figure")
    parser.add_argument("--seed", type=int, default=6, help="seed of the data generator")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    parser.add_argument("--export-child", metavar="SINCE", help=argparse.SUPPRESS)
    parser.add_argument("--one-scale", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--stamp", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        export_child(args.export_child)
        return
    if args.one_scale:
        RESULTS.mkdir(parents=True, exist_ok=True)
        run_scale(args, database_settings(), args.one_scale, args.stamp)
        return
    try:
        scales = [float(text) for text in (args.scales or str(args.scale or 0.02)).split(",") if text.strip()]
    except ValueError:
        parser.error("--scales takes numbers separated by commas, e.g. 0.02,0.2")
    if not scales or any(scale <= 0 for scale in scales):
        parser.error("every scale must be positive")

    config = database_settings()
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    reports = []
    for scale in sorted(scales):
        # One database per scale, each run in its own process (a fresh Django, fresh memory).
        child = subprocess.run(  # noqa: S603 - this very script
            [sys.executable, str(Path(__file__).resolve()), "--one-scale", str(scale), "--stamp", stamp,
             *(["--keep"] if args.keep else []), "--samples", str(args.samples),
             "--page-requests", str(args.page_requests), "--http-seconds", str(args.http_seconds),
             "--seed", str(args.seed)],
            env=os.environ.copy(), check=False, stdout=subprocess.PIPE, text=True,
        ) if len(scales) > 1 else None  # fmt: skip
        if child is None:
            reports.append(run_scale(args, config, scale, stamp))
        elif child.returncode != 0:
            sys.exit(f"bench: scale {scale} failed")
        else:
            reports.append(json.loads((RESULTS / f"{stamp}-scale-{scale}.json").read_text()))
    if len(reports) > 1:
        for report in reports:
            print(table(report) + "\n")
    text = markdown(reports)
    path = RESULTS / f"{stamp}.md"
    path.write_text(text)
    (RESULTS / f"{stamp}.json").write_text(json.dumps(reports, indent=2, default=str) + "\n")
    print(text)
    say(f"bench: results written to {path.relative_to(ROOT)} and {path.with_suffix('.json').name}")


def run_scale(args, config: dict, scale: float, stamp: str) -> dict:
    bench_db = f"{config['NAME']}_bench"
    started = datetime.now(UTC)
    run_start = time.perf_counter()
    say(f"bench: creating database {bench_db} (scale {scale})")
    create_database(config, bench_db)
    try:
        report = run(args, config, bench_db, started, scale)
    finally:
        from django.db import connections

        connections.close_all()
        if args.keep:
            say(f"bench: kept database {bench_db}")
        else:
            drop_database(config, bench_db)
            say(f"bench: dropped database {bench_db}")
    report["timings"]["total_s"] = round(time.perf_counter() - run_start, 1)
    print(table(report) + f"\nTotal run time {report['timings']['total_s']} s", file=sys.stderr)
    (RESULTS / f"{stamp}-scale-{scale}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def run(args, config: dict, bench_db: str, started: datetime, scale: float) -> dict:
    import psycopg

    django_setup(bench_db)
    from django.conf import settings
    from django.core.management import call_command

    broker_url = settings.REDIS_URL
    timings = {}
    _, timings["migrate_s"] = timed(call_command, "migrate", verbosity=0, interactive=False, skip_checks=True)
    db = psycopg.connect(conninfo(config, bench_db))
    pg_version = db.execute("SHOW server_version").fetchone()[0]
    say("bench: generating data")
    gen = Generator(db, scale, args.seed)
    start = time.perf_counter()
    counts = gen.run()
    fixtures = portal_fixtures(gen)
    db.autocommit = True
    db.execute("VACUUM ANALYZE")
    db.autocommit = False
    timings["generate_s"] = round(time.perf_counter() - start, 1)
    timings["migrate_s"] = round(timings["migrate_s"], 1)
    say(f"bench: data ready in {timings['generate_s']} s: {counts}")
    info = machine(pg_version)
    info["load"] = round(os.getloadavg()[0], 1)

    results = {}
    steps = (
        ("check", lambda: bench_check(gen, fixtures, db, args.samples, args.http_seconds)),
        ("pages", lambda: bench_pages(fixtures, db, args.page_requests)),
        ("explain", lambda: bench_explain(gen, fixtures, db)),
        ("sweep", lambda: bench_sweep(gen, db, broker_url)),
        ("review", lambda: bench_review(gen, fixtures, db, scaled("review_items", scale, 100), broker_url)),
        ("export", lambda: bench_export(gen, db)),
        ("verify", lambda: bench_verify(db)),
    )
    for name, step in steps:
        say(f"bench: {name}")
        results[name], timings[f"{name}_s"] = timed(step)
        timings[f"{name}_s"] = round(timings[f"{name}_s"], 1)
    db.close()
    if broker_url:
        _queue_purge()
    counts["inbox_requests"] = fixtures["inbox"]
    return {
        "scale": scale,
        "started_at": started.isoformat(timespec="seconds"),
        "machine": info,
        "broker": "Redis (REDIS_URL)" if broker_url else "in-memory (REDIS_URL not set)",
        "data": counts,
        "timings": timings,
        "results": results,
    }


def _queue_purge() -> None:
    """Empty the broker's queues of what the bench queued (nothing consumes it)."""
    from celery import current_app

    current_app.control.purge()


def bench_explain(gen: Generator, fixtures: dict, db) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) of the hot statements, with the server's defaults (JIT on):
    the check (role_holding by name and the API's one statement), My roles' two lists."""
    from django.db import connection

    from roles.selectors import holding_sql

    user_id, role_id = next((user, role) for _, user, role in gen.current_set)
    username = gen.db.execute("SELECT username FROM accounts_user WHERE id = %s", (user_id,)).fetchone()[0]
    now = datetime.now(UTC)
    plans = {}
    sql, params = holding_sql(user=username, role=str(role_id), scope="/", at=now)
    with connection.cursor() as cursor:
        plans["role_holding by name (the check)"] = _explain(cursor, sql, params)
        plans["role_holding by name, generic plan (as prepared)"] = _explain_generic(cursor, sql, params)
        page = PAGES[0][1]
        client = signed_in_client(fixtures)
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            client.get(page)
        for query in captured.captured_queries:
            text = query["sql"]
            if "roles_eligibleassignment" in text and "SAVEPOINT" not in text:
                plans.setdefault("My roles: eligible list", _explain(cursor, text, None))
            if "roles_activeassignment" in text and "INNER JOIN" in text and "SAVEPOINT" not in text:
                plans.setdefault("My roles: active list", _explain(cursor, text, None))
    db.rollback()
    return plans


def _explain(cursor, sql: str, params) -> str:
    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
    return "\n".join(row[0] for row in cursor.fetchall())


def _explain_generic(cursor, sql: str, params) -> str:
    """The plan a prepared statement settles on after its first runs: planned once for any
    values, so it may only use what the text itself proves (e.g. a partial index's condition
    must be in the query, not only in the values)."""
    numbers = iter(range(1, len(params) + 1))
    prepared = re.sub(r"%s", lambda _: f"${next(numbers)}", sql)
    cursor.execute("SET plan_cache_mode = force_generic_plan")
    cursor.execute("PREPARE bench_explain_generic AS " + prepared)
    try:
        values = ", ".join(["%s"] * len(params))
        return _explain(cursor, f"EXECUTE bench_explain_generic({values})", params)
    finally:
        cursor.execute("DEALLOCATE bench_explain_generic")
        cursor.execute("RESET plan_cache_mode")


if __name__ == "__main__":
    main()

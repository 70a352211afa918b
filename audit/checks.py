"""System checks for the audit keys and the database role (registered in AuditConfig.ready)."""

from django.conf import settings
from django.core.checks import Error, Info, Tags, Warning, register
from django.db import DatabaseError, connection

from . import chain_keys, signing
from .models import AuditCheckpoint, AuditEvent


@register(Tags.security)
def audit_keys_check(app_configs, **kwargs):
    """A key that is set must be readable (an Error). A missing signing key is only Info: the
    web processes are meant not to hold it (SPEC 2.6), so its absence there is right, and a
    Warning would fail every correct web node's `check --deploy --fail-level WARNING`. Where it
    matters, in the worker running audit-checkpoint, the job logs a warning on every run."""
    messages = []
    for name, load in (
        ("PIM_AUDIT_SIGNING_KEY", signing.load_private_key),
        ("PIM_AUDIT_PUBLIC_KEY", signing.load_public_keys),
        ("PIM_AUDIT_CHAIN_KEY", chain_keys.parse),
    ):
        value = getattr(settings, name, "")
        if not value:
            continue
        try:
            load(value)
        except ValueError as error:
            messages.append(Error(f"{name} cannot be read: {error}.", id="audit.E001"))
    if not getattr(settings, "PIM_AUDIT_SIGNING_KEY", "") and not settings.DEBUG:
        messages.append(
            Info(
                "PIM_AUDIT_SIGNING_KEY is not set: this process writes no signed audit checkpoints.",
                hint=(
                    "Set it (manage.py audit_keygen) for the Celery worker and beat that run "
                    "audit-checkpoint; web processes do not need it."
                ),
                id="audit.I001",
            )
        )
    return messages


@register(Tags.security, deploy=True)
def audit_chain_key_check(app_configs, **kwargs):
    """Every process that writes audit events needs the chain key: without it they refuse to
    write, so every state change fails."""
    if getattr(settings, "PIM_AUDIT_CHAIN_KEY", ""):
        return []
    return [
        Error(
            "PIM_AUDIT_CHAIN_KEY is not set: this process cannot write audit events, so no state "
            "change succeeds.",
            hint=(
                "Set the same key (manage.py audit_keygen prints one) for the web processes, the Celery "
                "worker and beat, and the cron host; keep it out of the database."
            ),
            id="audit.E002",
        )
    ]


@register(Tags.security, deploy=True)
def audit_table_owner_check(app_configs, **kwargs):
    """On PostgreSQL, the role the portal connects as must not own the audit tables (nor be a
    superuser): an owner can disable the append-only trigger and wipe the log."""
    if connection.vendor != "postgresql":
        return []
    tables = [AuditEvent._meta.db_table, AuditCheckpoint._meta.db_table]
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
                "WHERE c.oid = ANY(ARRAY[to_regclass(%s), to_regclass(%s)]::oid[]) "
                "AND pg_has_role(current_user, c.relowner, 'USAGE') ORDER BY c.relname",
                tables,
            )
            owned = cursor.fetchall()
            cursor.execute("SELECT current_user")
            role = cursor.fetchone()[0]
    except DatabaseError:
        return []  # no database to ask (yet): nothing to say about it
    if not owned:
        return []
    names = ", ".join(table for table, _ in owned)
    return [
        Warning(
            f"The database role {role} that the portal connects as owns the audit tables ({names}), "
            f"directly, through a role it belongs to, or as a superuser: it can disable the "
            f"append-only trigger and wipe the audit log.",
            hint=(
                "Run migrations as a separate owner role and connect the portal as a role with only "
                "SELECT and INSERT on the audit tables (README 'Database roles')."
            ),
            id="audit.W001",
        )
    ]

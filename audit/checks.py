"""System checks for the audit signing keys (registered in AuditConfig.ready)."""

from django.conf import settings
from django.core.checks import Error, Info, Tags, register

from . import signing


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

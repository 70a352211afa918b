"""What alerts hears from the apps below it."""

from django.db import transaction
from django.dispatch import receiver

from roles.signals import directory_effect_overdue

DIRECTORY_KIND = "directory_changes_not_effective"


@receiver(directory_effect_overdue, dispatch_uid="alerts.directory_effect_overdue")
def directory_effect_alert_update(sender, operation, now, **kwargs) -> None:
    """Raise (or resolve) the proof-of-effect alert now, not at the next hourly evaluation."""
    from .services import alerts_evaluate

    transaction.on_commit(lambda: alerts_evaluate(kinds=[DIRECTORY_KIND], now=now))

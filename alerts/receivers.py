"""What alerts hears: the apps below it (the proof-of-effect alert raised at once), and
`migrate` (the first evaluation of the rules, queued once the tables are built: a new portal
says what it found instead of "no open alerts" from a rule that never ran)."""

from django.conf import settings
from django.db import connections, transaction
from django.dispatch import receiver

from common.broker import task_publish
from roles.signals import directory_effect_overdue

from .models import RuleEvaluation

DIRECTORY_KIND = "directory_changes_not_effective"


@receiver(directory_effect_overdue, dispatch_uid="alerts.directory_effect_overdue")
def directory_effect_alert_update(sender, operation, now, **kwargs) -> None:
    """Raise (or resolve) the proof-of-effect alert now, not at the next hourly evaluation."""
    from .services import alerts_evaluate

    transaction.on_commit(lambda: alerts_evaluate(kinds=[DIRECTORY_KIND], now=now))


def evaluate_after_migrate(sender, using: str = "default", **kwargs) -> None:
    """post_migrate (of the alerts app): queue the first evaluation if none ever ran. The
    worker runs it (after `make run` starts it); if the broker does not take it, the periodic
    evaluation is the first."""
    if not settings.PIM_ALERTS_EVALUATE_AFTER_MIGRATE:
        return
    if RuleEvaluation._meta.db_table not in connections[using].introspection.table_names():
        return  # migrated to a point before the table (e.g. `migrate alerts 0002`)
    if RuleEvaluation.objects.using(using).exists():
        return
    from .tasks import alerts_evaluate_first

    transaction.on_commit(lambda: task_publish(alerts_evaluate_first), using=using)

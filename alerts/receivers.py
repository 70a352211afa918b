"""The first evaluation of the alert rules, queued once `migrate` has built the tables: a new
portal says what it found instead of "no open alerts" from a rule that never ran."""

from django.conf import settings
from django.db import connections, transaction

from common.broker import task_publish

from .models import RuleEvaluation


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

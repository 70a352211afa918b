"""Before the rules ever ran, the pages say "not evaluated yet" (never "No open alerts"); the
first evaluation is queued after `migrate` (and the demo runs it)."""

import pytest
from django.apps import apps
from django.db.models.signals import post_migrate

from alerts.models import RuleEvaluation
from alerts.rules import KINDS
from alerts.services import alerts_evaluate, alerts_evaluate_if_never, alerts_last_evaluated_at

pytestmark = pytest.mark.django_db


def test_the_alert_list_says_not_evaluated_yet_before_the_first_evaluation(verified_client, admin):
    client = verified_client(admin)
    page = client.get("/audit/alerts/").content.decode()
    assert 'id="not-evaluated"' in page and "Not evaluated yet" in page
    assert "No open alerts" not in page

    alerts_evaluate()
    page = client.get("/audit/alerts/").content.decode()
    assert "Not evaluated yet" not in page and "(last run " in page


def test_the_dashboard_says_not_evaluated_yet_before_the_first_evaluation(verified_client, auditor):
    client = verified_client(auditor)
    page = client.get("/audit/dashboard/").content.decode()
    assert 'id="alerts-not-evaluated"' in page and 'id="chart-alerts"' not in page
    alerts_evaluate()
    page = client.get("/audit/dashboard/").content.decode()
    assert 'id="alerts-not-evaluated"' not in page and 'id="chart-alerts"' in page


def test_every_evaluation_records_when_each_rule_ran(clock):
    assert alerts_last_evaluated_at() is None
    alerts_evaluate(kinds=[next(iter(KINDS))])
    assert RuleEvaluation.objects.count() == 1
    clock.shift(60)
    evaluation = alerts_evaluate()
    assert RuleEvaluation.objects.count() == len(KINDS)
    assert alerts_last_evaluated_at() is not None and evaluation is not None


def test_the_first_evaluation_runs_only_if_none_ever_did():
    assert alerts_evaluate_if_never() is not None
    assert alerts_evaluate_if_never() is None


def test_migrate_queues_the_first_evaluation(settings, django_capture_on_commit_callbacks):
    settings.PIM_ALERTS_EVALUATE_AFTER_MIGRATE = True
    with django_capture_on_commit_callbacks(execute=True):
        post_migrate.send(
            sender=apps.get_app_config("alerts"), app_config=apps.get_app_config("alerts"), using="default"
        )
    assert RuleEvaluation.objects.count() == len(KINDS)  # the eager task ran it
    first = alerts_last_evaluated_at()
    with django_capture_on_commit_callbacks(execute=True) as queued:
        post_migrate.send(
            sender=apps.get_app_config("alerts"), app_config=apps.get_app_config("alerts"), using="default"
        )
    assert queued == [] and alerts_last_evaluated_at() == first  # once only


def test_migrate_queues_nothing_when_switched_off(settings, django_capture_on_commit_callbacks):
    settings.PIM_ALERTS_EVALUATE_AFTER_MIGRATE = False
    with django_capture_on_commit_callbacks(execute=True) as queued:
        post_migrate.send(
            sender=apps.get_app_config("alerts"), app_config=apps.get_app_config("alerts"), using="default"
        )
    assert queued == [] and not RuleEvaluation.objects.exists()

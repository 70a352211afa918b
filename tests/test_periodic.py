"""The periodic-job registry (pim_portal/periodic.py) is the one list that beat, run_periodic
and README read."""

import re
from io import StringIO
from pathlib import Path

import pytest
from celery.schedules import crontab
from django.conf import settings
from django.core.management import call_command
from django.utils.module_loading import import_string

from pim_portal.celery import app as celery_app
from pim_portal.periodic import PERIODIC_JOBS, beat_schedule, jobs_table

README = Path(settings.BASE_DIR) / "README.md"


def test_every_job_is_a_registered_celery_task_with_a_unique_name():
    celery_app.loader.import_default_modules()
    assert len({job.name for job in PERIODIC_JOBS}) == len(PERIODIC_JOBS)
    for job in PERIODIC_JOBS:
        assert import_string(job.task).name == job.task
        assert job.task in celery_app.tasks


def test_beat_schedule_in_settings_is_the_registry():
    assert settings.CELERY_BEAT_SCHEDULE == beat_schedule(
        {"ENTRA_SYNC_ENABLED": settings.ENTRA_SYNC_ENABLED, "ENTRA_SYNC_INTERVAL_MINUTES": 60}
    )
    assert [name for name in settings.CELERY_BEAT_SCHEDULE] == [
        job.name for job in PERIODIC_JOBS if job.when == "always"
    ]


def test_the_entra_sync_is_scheduled_only_when_on_at_its_interval_and_never_under_5_minutes():
    assert "entra-sync" not in beat_schedule({"ENTRA_SYNC_ENABLED": False})
    on = beat_schedule({"ENTRA_SYNC_ENABLED": True, "ENTRA_SYNC_INTERVAL_MINUTES": 30})
    assert on["entra-sync"] == {"task": "entra.tasks.entra_sync", "schedule": 1800.0}
    assert (
        beat_schedule({"ENTRA_SYNC_ENABLED": True, "ENTRA_SYNC_INTERVAL_MINUTES": 1})["entra-sync"][
            "schedule"
        ]
        == 300.0
    )
    assert isinstance(on["audit-checkpoint"]["schedule"], crontab)


def test_readme_lists_exactly_the_registered_jobs():
    text = README.read_text()
    table = re.search(r"<!-- periodic-jobs:start -->\n(.*?)\n<!-- periodic-jobs:end -->", text, re.S)
    assert table, "README lost its periodic-jobs table"
    assert table.group(1) == jobs_table()


def test_run_periodic_list_prints_the_table_and_runs_nothing():
    out = StringIO()
    call_command("run_periodic", "--list", stdout=out)
    assert out.getvalue().strip() == jobs_table()


@pytest.mark.django_db
def test_run_periodic_runs_each_enabled_job_once_in_registry_order(settings):
    settings.ENTRA_SYNC_ENABLED = False
    out = StringIO()
    call_command("run_periodic", stdout=out)
    printed = [line.split(": ")[0] for line in out.getvalue().splitlines()]
    assert printed == [job.counts for job in PERIODIC_JOBS if job.when == "always"]
    assert all(line.split(": ")[1].isdigit() for line in out.getvalue().splitlines())

"""The emails one transaction queues reach the broker as one message (email_send_many with
their ids), one email as before (email_send); the batch task sends each once."""

from unittest import mock

import pytest
from django.core import mail

from notifications import services
from notifications.models import Email

pytestmark = pytest.mark.django_db


def queued(recipients, django_capture_on_commit_callbacks):
    published = []

    def publish(task, *args):
        published.append((task.name, args))
        return True

    with mock.patch("notifications.services.task_publish", side_effect=publish):
        with django_capture_on_commit_callbacks(execute=True):
            services.email_queue(recipients=recipients, template="review-reminder", context={})
    return published


def test_many_emails_are_one_message_and_one_email_keeps_its_own_task(django_capture_on_commit_callbacks):
    addresses = ["a@example.test", "b@example.test", "c@example.test"]

    many = queued(addresses, django_capture_on_commit_callbacks)
    one = queued(["d@example.test"], django_capture_on_commit_callbacks)

    ids = sorted(Email.objects.filter(to__in=addresses).values_list("pk", flat=True))
    assert [(name, sorted(args[0])) for name, args in many] == [("notifications.tasks.email_send_many", ids)]
    assert one == [("notifications.tasks.email_send", (Email.objects.get(to="d@example.test").pk,))]


def test_the_batch_task_sends_each_email_once(django_capture_on_commit_callbacks):
    queued(["a@example.test", "b@example.test"], django_capture_on_commit_callbacks)
    ids = list(Email.objects.values_list("pk", flat=True))

    assert services.email_send_many(email_ids=ids) == 2
    assert services.email_send_many(email_ids=ids) == 0  # claimed already: nothing twice

    assert sorted(message.to[0] for message in mail.outbox) == ["a@example.test", "b@example.test"]
    assert set(Email.objects.values_list("status", flat=True)) == {Email.Status.SENT}


def test_queued_rows_take_their_ids_from_the_table_and_later_rows_follow_them(
    django_capture_on_commit_callbacks,
):
    """On PostgreSQL the rows are COPYed with ids drawn from the table's own sequence: the
    returned emails are the stored rows, and an ordinary insert afterwards does not collide."""
    queued_emails = services.email_queue(
        recipients=["a@example.test", "b@example.test", "c@example.test"],
        template="review-reminder",
        context={},
    )
    stored = dict(Email.objects.values_list("pk", "to"))
    assert {email.pk: email.to for email in queued_emails} == stored
    assert all(not email._state.adding for email in queued_emails)
    later = services.email_queue(recipients=["d@example.test"], template="review-reminder", context={})
    assert later[0].pk not in stored and Email.objects.count() == 4

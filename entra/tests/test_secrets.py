"""No secret or token in logs, audit details, sync runs or outbox rows."""

import logging

import pytest
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent
from entra import client
from entra.models import SyncRun
from entra.services import entra_connection_test, entra_sync_run
from entra.tests.conftest import ALICE, HELPDESK_ADMIN, activate, contoso
from entra.tests.stub import CLIENT_SECRET
from roles.directory_services import directory_outbox_drain
from roles.models import DirectoryOperation, Role

pytestmark = pytest.mark.django_db


def test_secrets_and_tokens_never_reach_logs_or_records(graph, stub, entra_settings, caplog):
    caplog.set_level(logging.DEBUG)  # msal, urllib3 and the portal at their most talkative
    contoso(stub)
    stub.fail("GET", "users", 429, headers={"Retry-After": "0.01"})
    entra_sync_run()
    now = timezone.now()
    activate(User.objects.get(external_id=ALICE), Role.objects.get(template_id=HELPDESK_ADMIN), now=now)
    directory_outbox_drain(now=now)
    entra_connection_test(actor=None)
    entra_settings.ENTRA_CLIENT_SECRET = "a-wrong-secret-also-never-logged"
    entra_sync_run()  # fails at the token
    client.get_graph()
    entra_connection_test(actor=None)

    assert stub.tokens and caplog.records
    records = " ".join(
        [caplog.text]
        + [str(details) for details in AuditEvent.objects.values_list("details", flat=True)]
        + [f"{run.counts} {run.errors}" for run in SyncRun.objects.all()]
        + [f"{op.result} {op.last_error}" for op in DirectoryOperation.objects.all()]
    )
    for secret in [CLIENT_SECRET, "a-wrong-secret-also-never-logged", *stub.tokens]:
        assert secret not in records
    assert "invalid_client" in records  # the failure itself is recorded
    assert "msal.token_cache" in caplog.text and "urllib3" in caplog.text  # they did log


def test_the_client_does_not_show_its_credential(graph):
    assert CLIENT_SECRET not in repr(graph) and CLIENT_SECRET not in str(vars(graph).get("transport"))

"""The Entra sync's drift findings feed the alert "Roles are being assigned outside of the
portal" (registered with alerts.rules in EntraConfig.ready())."""

import pytest
from django.utils import timezone

from alerts.rules import GLOBAL_ADMINISTRATOR, KINDS
from entra.models import DriftFinding
from roles.models import Role

pytestmark = pytest.mark.django_db


def test_roles_assigned_outside_the_portal_come_from_open_drift():
    now = timezone.now()
    role = Role.objects.get(kind=Role.Kind.ENTRA, template_id=GLOBAL_ADMINISTRATOR)
    common = {
        "principal_type": "user",
        "role": role,
        "role_template_id": GLOBAL_ADMINISTRATOR,
        "directory_scope": "/",
        "first_seen_at": now,
        "last_seen_at": now,
    }
    drift = DriftFinding.objects.create(principal_id="abc", **common)
    gone = DriftFinding.objects.create(principal_id="def", resolved_at=now, resolution="gone", **common)

    findings = KINDS["assigned_outside_portal"].rule(now=now)

    ids = {entry["id"] for finding in findings for entry in finding.items}
    assert str(drift.pk) in ids
    assert str(gone.pk) not in ids
    labels = [entry["label"] for finding in findings for entry in finding.items]
    assert f"{role.name} — abc at / (seen {now:%Y-%m-%d})" in labels

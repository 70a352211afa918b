from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from audit.services import audit_record
from tests.factories import EligibleAssignmentFactory, RoleFactory, UserFactory, portal_role

pytestmark = pytest.mark.django_db

LIST = reverse("audit:event_list")
EXPORT = reverse("audit:export")
SIGN_IN = ("mfa.", "auth.")


def _seqs(response) -> list[int]:
    return [event.seq for event in response.context["page"].events]


def _detail(event) -> str:
    return reverse("audit:event_detail", args=[event.seq])


# --- Who may read --------------------------------------------------------------------------


def test_the_auditor_sees_the_audit_log_newest_first(verified_client, auditor):
    audit_record(action="test.older")
    audit_record(action="test.newer")

    response = verified_client(auditor).get(LIST)

    assert response.status_code == 200
    seqs = _seqs(response)
    assert seqs == sorted(seqs, reverse=True)
    assert b"test.newer" in response.content and b"test.older" in response.content
    assert response["Cache-Control"].startswith("max-age=0")


def test_the_nav_links_the_audit_log_for_its_readers_only(verified_client, auditor, outsider):
    assert b'id="nav-audit"' in verified_client(auditor).get(reverse("activations:my_roles")).content
    verified_client(auditor).post(reverse("accounts:logout"))

    assert b'id="nav-audit"' not in verified_client(outsider).get(reverse("activations:my_roles")).content


def test_the_pim_administrator_reads_the_audit_log_as_the_catalog_grants(verified_client, admin):
    assert verified_client(admin).get(LIST).status_code == 200


@pytest.fixture(params=["outsider", "requester", "lapsed_auditor"])
def non_reader(request):
    if request.param == "lapsed_auditor":
        # Eligible for PIM Auditor, but the role is not active right now.
        user = UserFactory(username="lapsed")
        EligibleAssignmentFactory(user=user, role=portal_role("pim.auditor"))
        return user
    return request.getfixturevalue(request.param)


def test_non_readers_get_404_everywhere(verified_client, non_reader):
    event = audit_record(action="test.secret")
    client = verified_client(non_reader)
    urls = [
        LIST,
        f"{LIST}?action=test.",
        _detail(event),
        *(f"{EXPORT}?format={format}" for format in ("csv", "jsonl", "xlsx")),
    ]

    for url in urls:
        assert client.get(url).status_code == 404, url
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get(LIST)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_the_explorer_only_reads(verified_client, auditor):
    assert verified_client(auditor).post(LIST).status_code == 405


# --- Filters -------------------------------------------------------------------------------


@pytest.fixture
def log(requester, approver):
    """A small, varied log; returns {name: event}."""
    role = RoleFactory(name="Global Test Administrator", template_id="11111111-2222-3333-4444-555555555555")
    other_role = RoleFactory(name="Reader Test")
    at = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
    return {
        "requested": audit_record(
            action="activation.requested", actor=requester, target=requester, role=role, scope="/", at=at
        ),
        "approved": audit_record(
            action="activation.approved", actor=approver, role=role, scope="/", at=at + timedelta(hours=1)
        ),
        "expired": audit_record(
            action="activation.expired", role=role, scope="/", at=at + timedelta(days=20)
        ),
        "sub": audit_record(
            action="role.assigned",
            actor=approver,
            role=other_role,
            scope="/subscriptions/abc/resourceGroups/rg1",
            at=at + timedelta(days=40),
        ),
        "denied": audit_record(
            action="activation.denied",
            actor=approver,
            role=other_role,
            outcome="denied",
            at=at + timedelta(days=41),
        ),
    }


def _filtered(client, **params) -> set[str]:
    response = client.get(LIST, params)
    assert response.status_code == 200
    assert not response.context["form"].errors, response.context["form"].errors
    # Signing the auditor in writes events of its own (mfa.verified ...): not the point here.
    return {event.action for event in response.context["page"].events if not event.action.startswith(SIGN_IN)}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"action": "activation.expired"}, {"activation.expired"}),
        (
            {"action": "activation."},
            {"activation.requested", "activation.approved", "activation.expired", "activation.denied"},
        ),
        ({"action": "role*"}, {"role.assigned"}),
        ({"actor": "approver"}, {"activation.approved", "role.assigned", "activation.denied"}),
        ({"actor": "system", "action": "activation."}, {"activation.expired"}),
        ({"principal": "requester"}, {"activation.requested"}),
        (
            {"role": "Global Test Administrator"},
            {"activation.requested", "activation.approved", "activation.expired"},
        ),
        ({"role": "global test administrator", "actor": "approver"}, {"activation.approved"}),
        (
            {"role": "11111111-2222-3333-4444-555555555555"},
            {"activation.requested", "activation.approved", "activation.expired"},
        ),
        ({"scope": "/subscriptions/abc*"}, {"role.assigned"}),
        ({"scope": "/subscriptions/abc"}, set()),
        ({"outcome": "denied"}, {"activation.denied"}),
        ({"since": "2026-03-15T12:30", "until": "2026-04-05"}, {"activation.approved", "activation.expired"}),
        (
            {"since": "2026-03-15", "until": "2026-03-15", "action": "activation."},
            {"activation.requested", "activation.approved"},
        ),
    ],
)
def test_filters(verified_client, auditor, log, params, expected):
    assert _filtered(verified_client(auditor), **params) == expected


def test_a_role_filter_by_id(verified_client, auditor, log):
    role_id = log["sub"].role_id

    assert _filtered(verified_client(auditor), role=str(role_id)) == {"role.assigned", "activation.denied"}


def test_the_target_and_request_id_filters(verified_client, auditor, log):
    client = verified_client(auditor)  # signing in writes events with a request id

    assert _filtered(client, target=log["requested"].target_id) == {"activation.requested"}
    latest = AuditEvent.objects.exclude(request_id="").order_by("-seq").first()
    matching = client.get(LIST, {"request_id": latest.request_id}).context["page"].events
    assert {e.request_id for e in matching} == {latest.request_id}


def test_the_target_principal_covers_their_requests(verified_client, auditor, activation_story):
    actions = _filtered(verified_client(auditor), principal="requester", action="activation.")

    assert actions == {"activation.requested", "activation.approved", "activation.deactivated"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"actor": "nobody-by-that-name"}, "actor"),
        ({"principal": "nobody-by-that-name"}, "principal"),
        ({"role": "No Such Role"}, "role"),
        ({"since": "yesterday-ish"}, "since"),
        ({"since": "2026-05-01", "until": "2026-04-01"}, "until"),
        ({"outcome": "exploded"}, "outcome"),
        ({"action": "x" * 65}, "action"),
    ],
)
def test_bad_filters_are_explained_not_guessed(verified_client, auditor, params, field):
    response = verified_client(auditor).get(LIST, params)

    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert response.context["page"] is None


def test_filter_input_is_escaped_on_the_page(verified_client, auditor):
    response = verified_client(auditor).get(LIST, {"action": "<script>x</script>"})

    assert b"<script>x</script>" not in response.content
    assert b"&lt;script&gt;x&lt;/script&gt;" in response.content


# --- Keyset pagination and query count ------------------------------------------------------


def test_pages_are_keyset_pages_newest_first(verified_client, auditor):
    for number in range(60):
        audit_record(action="test.page", details={"n": number})
    client = verified_client(auditor)

    first = client.get(LIST, {"action": "test.page"})
    older = client.get(LIST, {"action": "test.page", "before": first.context["page"].older})
    newer = client.get(LIST, {"action": "test.page", "after": older.context["page"].newer})

    assert len(_seqs(first)) == 50 and len(_seqs(older)) == 10
    assert min(_seqs(first)) > max(_seqs(older))
    assert older.context["page"].older is None
    assert _seqs(newer) == _seqs(first)
    assert newer.context["page"].newer is None
    assert f"before={first.context['page'].older}".encode() in first.content
    assert b"action=test.page" in first.content  # the links keep the filter


@pytest.mark.parametrize("key", ["abc", "-5", "0", "99999999999999999999999", "１２"])
def test_nonsense_page_keys_are_ignored(verified_client, auditor, key):
    audit_record(action="test.event")

    for name in ("before", "after"):
        assert verified_client(auditor).get(LIST, {name: key}).status_code == 200


def _queries(client, params) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(LIST, params)
    assert response.status_code == 200
    return [query["sql"] for query in captured.captured_queries]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"before": "40"},
        {"actor": "approver", "principal": "requester", "role": "Reader Test", "action": "activation."},
    ],
)
def test_a_page_runs_the_same_queries_whatever_the_size_of_the_log_and_no_offset(
    verified_client, auditor, approver, requester, params
):
    RoleFactory(name="Reader Test")
    client = verified_client(auditor)
    for _ in range(5):
        audit_record(action="activation.requested", actor=approver)
    small = _queries(client, params)
    for _ in range(55):
        audit_record(action="activation.requested", actor=approver)

    large = _queries(client, params)

    assert len(small) == len(large)
    assert not any("OFFSET" in sql.upper() for sql in small + large)
    assert len(large) <= 12, large


# --- One event -----------------------------------------------------------------------------


def test_an_event_shows_its_before_and_after_escaped_and_its_chain_fields(verified_client, auditor):
    event = audit_record(
        action="role_settings.changed",
        details={
            "changes": {"require_mfa": {"before": True, "after": False}},
            "note": "<img src=x onerror=alert(1)>",
        },
    )

    response = verified_client(auditor).get(_detail(event))

    content = response.content.decode()
    assert response.status_code == 200
    assert "<th>require_mfa</th><td><code>true</code></td><td><code>false</code></td>" in content
    assert "&lt;img src=x onerror=alert(1)&gt;" in content
    assert "<img src=x" not in content
    assert event.prev_hash in content and event.hash in content


def test_an_event_with_before_and_after_dicts_reads_as_a_table(verified_client, auditor):
    event = audit_record(
        action="eligible_assignment.extended", details={"before": {"ends_at": "a"}, "after": {"ends_at": "b"}}
    )

    content = verified_client(auditor).get(_detail(event)).content.decode()

    assert "<th>ends_at</th><td><code>a</code></td><td><code>b</code></td>" in content


def test_a_field_on_one_side_only_reads_as_a_dash(verified_client, auditor):
    event = audit_record(action="role.changed", details={"before": {}, "after": {"owner": None}})

    content = verified_client(auditor).get(_detail(event)).content.decode()

    assert "<th>owner</th><td><code>—</code></td><td><code>null</code></td>" in content


def test_an_unknown_event_is_404(verified_client, auditor):
    client = verified_client(auditor)

    assert client.get(reverse("audit:event_detail", args=[10**6])).status_code == 404
    assert client.get("/audit/events/99999999999999999999999/").status_code == 404

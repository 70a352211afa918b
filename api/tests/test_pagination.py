"""Keyset pages of every paged endpoint: a cursor the API did not make is a 400 in the API's
one error shape, never a 404 or a 500 (a tampered position used to reach the database)."""

import base64
from urllib.parse import parse_qs, urlparse

import pytest

from audit.services import audit_record
from tests.factories import RoleFactory

from .helpers import error

pytestmark = pytest.mark.django_db

# Each keyset-paged list, with who may read it.
PAGED = [
    ("/api/v1/audit-events/", "auditor"),
    ("/api/v1/roles/", "requester"),
    ("/api/v1/activation-requests/", "requester"),
    ("/api/v1/reviews/items/", "requester"),
    ("/api/v1/alerts/", "auditor"),
]


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# Bad whatever the list is ordered by.
BAD_CURSORS = [
    "not base64 at all!",
    "é",
    encoded("p=a\x00b"),  # PostgreSQL refuses NUL in text
    encoded("p=" + "x" * 5000),  # longer than any column
    encoded("o=-1"),
    encoded("o=" + "9" * 5000),
    encoded("r=maybe"),
]
# Bad for a list ordered by a number (seq) or a moment (created_at, first_raised_at); the
# lists ordered by a name take any text as a position.
NOT_A_NUMBER_OR_MOMENT = [
    encoded("p=abc"),
    encoded("p=" + "9" * 40),  # beyond any integer column
    encoded("p=2026-13-45T99:00:00"),
]
NON_TEXT_ORDERED = [entry for entry in PAGED if not entry[0].endswith(("/roles/", "/reviews/items/"))]


def assert_invalid_cursor(response):
    assert response.status_code == 400, response.content
    body = error(response)
    assert body["code"] == "invalid"
    assert body["fields"] == {"cursor": ["This page cursor is not valid: start again from the first page."]}


@pytest.fixture
def some_events():
    audit_record(action="test.one")
    audit_record(action="test.two")


@pytest.mark.parametrize("cursor", BAD_CURSORS)
@pytest.mark.parametrize(("url", "persona"), PAGED)
def test_a_tampered_cursor_is_a_400_with_the_error_shape(
    request, token_client, some_events, url, persona, cursor
):
    client = token_client(request.getfixturevalue(persona))

    assert_invalid_cursor(client.get(url, {"cursor": cursor}))


@pytest.mark.parametrize("cursor", NOT_A_NUMBER_OR_MOMENT)
@pytest.mark.parametrize(("url", "persona"), NON_TEXT_ORDERED)
def test_a_position_of_the_wrong_type_is_a_400_not_a_500(
    request, token_client, some_events, url, persona, cursor
):
    client = token_client(request.getfixturevalue(persona))

    assert_invalid_cursor(client.get(url, {"cursor": cursor}))


def test_the_cursors_the_api_makes_still_work(requester, token_client):
    for n in range(3):
        RoleFactory(name=f"Paged role {n}")
    client = token_client(requester)

    first = client.get("/api/v1/roles/", {"page_size": 1}).json()
    cursor = parse_qs(urlparse(first["next"]).query)["cursor"][0]
    second = client.get("/api/v1/roles/", {"page_size": 1, "cursor": cursor})

    assert second.status_code == 200
    assert second.json()["results"] != first["results"]

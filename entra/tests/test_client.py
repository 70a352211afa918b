"""The Graph client against the stub: real msal, real requests, real HTTP on loopback."""

from datetime import UTC, datetime

import pytest

from entra import client
from entra.client import GraphAuthError, GraphError, GraphUnavailable, parse_retry_after
from entra.tests.conftest import GLOBAL_ADMIN, contoso

DEFINITION = f"roleManagement/directory/roleDefinitions/{GLOBAL_ADMIN}"


def test_one_token_serves_many_graph_calls(graph, stub):
    contoso(stub)
    for _ in range(5):
        graph.get(DEFINITION)
    users = list(graph.all("users"))
    assert len(users) == 5
    assert stub.token_requests == 1
    assert len(stub.graph_calls()) == 5 + 3  # three pages of users
    assert graph.token()[1] == "cache"


def test_the_process_client_is_built_once_and_lazily(entra_settings, stub, monkeypatch):
    from entra.tests.stub import StubSession

    monkeypatch.setattr(client, "new_session", lambda: StubSession(contoso(stub)))
    client.graph_install(None)
    assert stub.received == []  # nothing at import or install time
    first = client.get_graph()
    assert client.get_graph() is first
    first.get(DEFINITION)
    client.get_graph().get(DEFINITION)
    assert stub.token_requests == 1
    discovery = [r for r in stub.received if r.path.endswith("openid-configuration")]
    assert len(discovery) == 1


def test_paging_follows_next_links_verbatim(graph, stub):
    contoso(stub, page_size=2)
    pages = list(graph.pages("users", params={"$select": "id,displayName"}))
    assert [len(page) for page in pages] == [2, 2, 1]
    user_calls = stub.requests_to("GET", "/v1.0/users")
    assert [call.query.get("$skiptoken") for call in user_calls] == [None, "2", "4"]
    assert all(call.query["$select"] == "id,displayName" for call in user_calls)


def test_a_next_link_to_another_host_is_not_followed_with_the_token(graph, stub, monkeypatch):
    contoso(stub)
    with pytest.raises(GraphError, match="another host"):
        graph.get("https://evil.example/v1.0/users?$skiptoken=2")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"Retry-After": "7"}, 7.0), ({"Retry-After": "2.128"}, 2.128), ({}, None)],
    ids=["whole seconds", "fractional", "missing"],
)
def test_429_is_transient_with_the_servers_retry_after(graph, stub, headers, expected):
    contoso(stub)
    stub.fail("GET", "roleManagement", 429, headers=headers)
    with pytest.raises(GraphUnavailable) as caught:
        graph.request("GET", DEFINITION)
    assert caught.value.retry_after == expected
    assert "429" in str(caught.value)


def test_reads_wait_retry_after_then_succeed(graph, stub, sleeps):
    contoso(stub)
    stub.fail("GET", "roleManagement", 429, headers={"Retry-After": "1.5"})
    stub.fail("GET", "roleManagement", 429)
    assert graph.get(DEFINITION)["displayName"] == "Global Administrator"
    assert sleeps[0] == 1.5
    assert 2 <= sleeps[1] <= 2.5  # no Retry-After: exponential backoff with jitter
    assert len(stub.requests_to("GET", "/v1.0/roleManagement")) == 3


def test_a_500_then_success(graph, stub, sleeps):
    contoso(stub)
    stub.fail("GET", "users", 500)
    assert len(list(graph.all("users"))) == 5
    assert [call.status for call in stub.requests_to("GET", "/v1.0/users")][:2] == [500, 200]
    assert len(sleeps) == 1


def test_reads_give_up_after_a_few_tries(graph, stub, sleeps):
    contoso(stub)
    stub.fail("GET", "users", 503, times=10)
    with pytest.raises(GraphUnavailable, match="503"):
        graph.get("users")
    assert len(stub.requests_to("GET", "/v1.0/users")) == client.READ_RETRIES + 1


def test_a_slow_graph_times_out_as_transient(graph, stub, entra_settings):
    contoso(stub)
    graph.get(DEFINITION)  # token and discovery done with the normal timeout
    graph.transport.timeout = graph.timeout = 0.2
    stub.fail("GET", "roleManagement", 200, delay=0.6)
    with pytest.raises(GraphUnavailable, match="did not answer within 0.2 s"):
        graph.request("GET", DEFINITION)


def test_graph_down_is_transient(graph, stub):
    contoso(stub)
    graph.get(DEFINITION)
    stub.stop()
    with pytest.raises(GraphUnavailable, match="unreachable"):
        graph.request("GET", DEFINITION)


def test_a_refusal_carries_graphs_error_code(graph, stub):
    contoso(stub)
    with pytest.raises(GraphError) as caught:
        graph.request("GET", "roleManagement/directory/roleDefinitions/00000000-0000-0000-0000-000000000000")
    assert caught.value.code == "Request_ResourceNotFound"
    assert caught.value.status == 404
    assert not isinstance(caught.value, GraphUnavailable)


def test_a_rejected_token_is_renewed_once(graph, stub):
    contoso(stub)
    graph.get(DEFINITION)
    stub.tokens.clear()  # Graph no longer accepts the cached token
    assert graph.get(DEFINITION)["id"] == GLOBAL_ADMIN
    assert stub.token_requests == 2


def test_a_wrong_secret_is_a_permanent_auth_error_that_names_no_secret(graph, stub, entra_settings):
    contoso(stub)
    wrong = "wrong-secret-Kx9~do-not-print"
    entra_settings.ENTRA_CLIENT_SECRET = wrong  # drops the installed client
    with pytest.raises(GraphAuthError) as caught:
        client.get_graph().get(DEFINITION)
    message = str(caught.value)
    assert "invalid_client" in message and "AADSTS7000215: Invalid client secret provided" in message
    assert wrong not in message and "Trace ID" not in message
    assert stub.graph_calls() == []


def test_the_token_endpoint_down_is_transient(graph, stub):
    stub.stop()
    with pytest.raises(GraphUnavailable, match="sign-in endpoint is unreachable"):
        graph.get(DEFINITION)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10", 10.0),
        ("2.128", 2.128),
        ("0", 0.0),
        ("-3", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("nan", None),
        ("99999", 3600.0),
        ("Wed, 21 Oct 2026 07:28:30 GMT", 30.0),
    ],
)
def test_retry_after_values(value, expected):
    now = datetime(2026, 10, 21, 7, 28, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == expected


def test_the_client_refuses_to_start_when_the_sync_is_off(settings):
    settings.ENTRA_SYNC_ENABLED = False
    with pytest.raises(GraphError, match="ENTRA_SYNC_ENABLED"):
        client.get_graph()


def test_a_certificate_signs_the_token_request_instead_of_a_secret(entra_settings, stub, monkeypatch):
    from cryptography import x509

    from entra.tests.conftest import key_and_certificate
    from entra.tests.stub import StubSession

    pem, _ = key_and_certificate()
    stub.certificate = x509.load_pem_x509_certificate(pem.encode())
    monkeypatch.setattr(client, "new_session", lambda: StubSession(contoso(stub)))
    entra_settings.ENTRA_CLIENT_SECRET = ""
    entra_settings.ENTRA_CLIENT_CERTIFICATE = pem

    assert client.get_graph().get(DEFINITION)["displayName"] == "Global Administrator"
    [token_call] = stub.requests_to("POST", "/11111111-2222-3333-4444-555555555555/oauth2/v2.0/token")
    assert "client_secret" not in token_call.body and "client_assertion" in token_call.body

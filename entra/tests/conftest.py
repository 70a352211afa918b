"""Fixtures for the Entra tests: settings that turn the integration on, the local stub of the
token endpoint and Graph, and a process client that reaches only the stub (real msal, real
requests, real HTTP on loopback)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from entra import client
from entra.tests.stub import CLIENT_ID, CLIENT_SECRET, TENANT, GraphStub, StubSession

GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
PRIVILEGED_ROLE_ADMIN = "e8611ab8-c189-46e8-94e1-60213ab1f814"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
HELPDESK_ADMIN = "729827e3-9c14-49f7-bb1b-9608f156bbb8"
CUSTOM_ROLE = "c0ffee00-1234-4abc-8def-000000000001"

ALICE = "0a000000-0000-4000-8000-00000000000a"
BOB = "0b000000-0000-4000-8000-00000000000b"
CAROL = "0c000000-0000-4000-8000-00000000000c"
DAVE = "0d000000-0000-4000-8000-00000000000d"
ERIN = "0e000000-0000-4000-8000-00000000000e"
TIER0 = "90000000-0000-4000-8000-000000000001"
SERVICE_PRINCIPAL = "5e000000-0000-4000-8000-000000000001"


@pytest.fixture(autouse=True)
def only_the_stub(monkeypatch):
    """Whatever a test builds, its HTTP session can reach nothing but a stub."""
    monkeypatch.setattr(client, "new_session", lambda: StubSession(None))
    yield
    client.graph_install(None)


@pytest.fixture
def entra_settings(settings):
    settings.ENTRA_SYNC_ENABLED = True
    settings.ENTRA_TENANT_ID = TENANT
    settings.ENTRA_CLIENT_ID = CLIENT_ID
    settings.ENTRA_CLIENT_SECRET = CLIENT_SECRET
    settings.ENTRA_CLIENT_CERTIFICATE = ""
    settings.ENTRA_CLIENT_CERTIFICATE_THUMBPRINT = ""
    settings.ENTRA_AUTHORITY_HOST = "https://login.microsoftonline.com"
    settings.ENTRA_GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
    settings.ENTRA_ARM_URL = "https://management.azure.com"
    settings.ENTRA_ARM_SUBSCRIPTIONS = []  # the ARM part is off unless a test names some
    settings.ENTRA_HTTP_TIMEOUT = 5.0
    settings.ENTRA_REMOVE_DRIFT = False
    settings.ENTRA_DRIFT_EXCLUDE = []
    settings.PIM_DIRECTORY_BACKEND = "entra.backend.GraphBackend"
    return settings


@pytest.fixture
def stub():
    stub = GraphStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def sleeps():
    """The waits the client asked for (recorded instead of slept)."""
    return []


@pytest.fixture
def graph(entra_settings, stub, sleeps, monkeypatch):
    """This process's Graph client, pointed at the stub."""
    monkeypatch.setattr(client, "new_session", lambda: StubSession(stub))
    graph = client.GraphClient.from_settings(sleep=sleeps.append)
    client.graph_install(graph)
    return graph


def activate(user, role, *, now, duration=timedelta(hours=1)):
    """A granted activation through the real service (the role needs no approval)."""
    from activations.services import activation_request
    from tests.factories import EligibleAssignmentFactory

    eligible = EligibleAssignmentFactory(user=user, role=role)
    request = activation_request(
        requester=user,
        eligible=eligible,
        duration=duration,
        justification="Incident 42",
        mfa_verified_at=now,
        now=now,
    )
    assert request.status == "granted"
    return request


def key_and_certificate() -> tuple[str, str]:
    """A throwaway RSA key and self-signed certificate (PEM, key first) and its thumbprint."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pim-portal")])
    now = timezone.now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    thumbprint = certificate.fingerprint(hashes.SHA1()).hex()  # noqa: S303  (Entra's thumbprint)
    return key_pem + certificate.public_bytes(serialization.Encoding.PEM).decode(), thumbprint


def graph_time(moment) -> str:
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def entra_default_rules(**overrides) -> list[dict]:
    """The 17 rules of an untouched Entra role policy (research/entra-pim.md §3.3)."""

    def expiration(rule_id, caller, level, required, maximum):
        return {
            "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule",
            "id": rule_id,
            "isExpirationRequired": required,
            "maximumDuration": maximum,
            "target": {"caller": caller, "level": level, "operations": ["all"]},
        }

    def enablement(rule_id, caller, level, enabled):
        return {
            "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule",
            "id": rule_id,
            "enabledRules": enabled,
            "target": {"caller": caller, "level": level, "operations": ["all"]},
        }

    rules = {
        "Expiration_EndUser_Assignment": expiration(
            "Expiration_EndUser_Assignment", "EndUser", "Assignment", True, "PT8H"
        ),
        "Enablement_EndUser_Assignment": enablement(
            "Enablement_EndUser_Assignment",
            "EndUser",
            "Assignment",
            ["MultiFactorAuthentication", "Justification"],
        ),
        "AuthenticationContext_EndUser_Assignment": {
            "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyAuthenticationContextRule",
            "id": "AuthenticationContext_EndUser_Assignment",
            "isEnabled": False,
            "claimValue": None,
        },
        "Approval_EndUser_Assignment": {
            "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule",
            "id": "Approval_EndUser_Assignment",
            "setting": {
                "isApprovalRequired": False,
                "isApprovalRequiredForExtension": False,
                "isRequestorJustificationRequired": True,
                "approvalMode": "SingleStage",
                "approvalStages": [
                    {
                        "approvalStageTimeOutInDays": 1,
                        "isApproverJustificationRequired": True,
                        "escalationTimeInMinutes": 0,
                        "isEscalationEnabled": False,
                        "primaryApprovers": [],
                        "escalationApprovers": [],
                    }
                ],
            },
        },
        "Expiration_Admin_Eligibility": expiration(
            "Expiration_Admin_Eligibility", "Admin", "Eligibility", False, "P365D"
        ),
        "Expiration_Admin_Assignment": expiration(
            "Expiration_Admin_Assignment", "Admin", "Assignment", False, "P180D"
        ),
        "Enablement_Admin_Assignment": enablement(
            "Enablement_Admin_Assignment", "Admin", "Assignment", ["Justification"]
        ),
        "Enablement_Admin_Eligibility": enablement(
            "Enablement_Admin_Eligibility", "Admin", "Eligibility", []
        ),
    }
    for recipient in ("Admin", "Requestor", "Approver"):
        for caller_level in ("Admin_Eligibility", "Admin_Assignment", "EndUser_Assignment"):
            rule_id = f"Notification_{recipient}_{caller_level}"
            rules[rule_id] = {
                "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyNotificationRule",
                "id": rule_id,
                "notificationType": "Email",
                "recipientType": recipient,
                "notificationLevel": "All",
                "isDefaultRecipientsEnabled": True,
                "notificationRecipients": [],
            }
    for rule_id, changes in overrides.items():
        rules[rule_id] = {**rules[rule_id], **changes}
    assert len(rules) == 17
    return list(rules.values())


def contoso(stub: GraphStub, *, page_size: int = 2) -> GraphStub:
    """A small tenant: five users over three pages, a role-assignable group, role definitions
    (three built in, one custom), four eligibilities over two pages and role policies."""
    now = timezone.now()
    stub.page_size = page_size
    stub.role_definitions = [
        {
            "id": GLOBAL_ADMIN,
            "templateId": GLOBAL_ADMIN,
            "displayName": "Global Administrator",
            "isBuiltIn": True,
        },
        {"id": USER_ADMIN, "templateId": USER_ADMIN, "displayName": "User Administrator", "isBuiltIn": True},
        {
            "id": HELPDESK_ADMIN,
            "templateId": HELPDESK_ADMIN,
            "displayName": "Helpdesk Administrator",
            "isBuiltIn": True,
        },
        {
            "id": CUSTOM_ROLE,
            "templateId": CUSTOM_ROLE,
            "displayName": "Contoso Payroll Reader",
            "description": "Reads payroll data",
            "isBuiltIn": False,
        },
    ]

    def user(object_id, name, enabled=True, manager=None):
        upn = f"{name.lower()}@contoso.example"
        return {
            "id": object_id,
            "displayName": f"{name} Example",
            "userPrincipalName": upn,
            "mail": upn,
            "accountEnabled": enabled,
            "jobTitle": "not selected by the portal",
            "_manager": manager,
        }

    stub.users = [
        user(ALICE, "Alice", manager=BOB),
        user(BOB, "Bob"),
        user(CAROL, "Carol", enabled=False),
        user(DAVE, "Dave", manager=BOB),
        user(ERIN, "Erin", manager=ALICE),
    ]
    stub.groups = [
        {
            "id": TIER0,
            "displayName": "Tier0 Admins",
            "description": "Role-assignable",
            "isAssignableToRole": True,
            "_members": [ALICE, DAVE],
        },
        {
            "id": "91000000-0000-4000-8000-000000000002",
            "displayName": "Everyone",
            "isAssignableToRole": False,
            "_members": [ALICE, BOB],
        },
    ]
    ends = graph_time(now + timedelta(days=90))
    stub.eligibilities = [
        _eligibility("e1", ALICE, USER_ADMIN, ends),
        _eligibility("e2", BOB, HELPDESK_ADMIN, None),
        _eligibility("e3", TIER0, USER_ADMIN, ends),
        _eligibility("e4", DAVE, CUSTOM_ROLE, ends),
    ]
    stub.policies = {
        USER_ADMIN: entra_default_rules(
            Expiration_EndUser_Assignment={"maximumDuration": "PT4H"},
            Enablement_EndUser_Assignment={
                "enabledRules": ["MultiFactorAuthentication", "Justification", "Ticketing"]
            },
            Approval_EndUser_Assignment={
                "setting": {
                    "isApprovalRequired": True,
                    "approvalMode": "SingleStage",
                    "approvalStages": [
                        {
                            "approvalStageTimeOutInDays": 2,
                            "primaryApprovers": [
                                {"@odata.type": "#microsoft.graph.singleUser", "userId": BOB}
                            ],
                        }
                    ],
                }
            },
            Expiration_Admin_Eligibility={"isExpirationRequired": True, "maximumDuration": "P180D"},
            Notification_Admin_Admin_Assignment={"notificationRecipients": ["SOC@contoso.example"]},
        ),
        HELPDESK_ADMIN: entra_default_rules(),
        GLOBAL_ADMIN: entra_default_rules(Expiration_EndUser_Assignment={"maximumDuration": "PT1H"}),
    }
    return stub


def _eligibility(suffix, principal_id, role_id, ends):
    return {
        "id": f"eligibility-{suffix}",
        "principalId": principal_id,
        "roleDefinitionId": role_id,
        "directoryScopeId": "/",
        "appScopeId": None,
        "startDateTime": "2026-01-01T00:00:00Z",
        "endDateTime": ends,
        "memberType": "Direct",
        "roleEligibilityScheduleId": f"schedule-{suffix}",
    }

"""Small helpers for the reviews tests."""

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from reviews import services
from reviews.models import ReviewDefinition, ReviewInstance
from roles.models import Role
from tests.factories import PASSWORD, totp_code, totp_device

GA = "62e90394-69f5-4237-9190-012177145e10"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
XSS = "<script>alert(1)</script>"
ESCAPED_XSS = "&lt;script&gt;alert(1)&lt;/script&gt;"


def global_administrator() -> Role:
    return Role.objects.get(template_id=GA)


def definition_create(*, roles, actor=None, **overrides) -> ReviewDefinition:
    """A review definition through the service, with settings tests rarely care about."""
    fields = {
        "name": "Quarterly access review",
        "reviewer_type": ReviewDefinition.Reviewers.MANAGER,
        "recurrence": ReviewDefinition.Recurrence.QUARTERLY,
        "start_date": timezone.now().date(),
        "duration_days": 14,
        "justification_required": False,
        "auto_apply": True,
    }
    fields.update(overrides)
    return services.review_definition_create(actor=actor, roles=roles, **fields)


def start(definition: ReviewDefinition, *, now=None) -> ReviewInstance:
    """Run the start job and return the run it started for the definition."""
    started = [i for i in services.review_instances_start_due(now=now) if i.definition_id == definition.pk]
    assert len(started) == 1, started
    return started[0]


def signed_in(user, *, client: Client | None = None) -> Client:
    """A client signed in as the user through the real forms (password, then a TOTP code)."""
    client = client or Client()
    device = totp_device(user)
    response = client.post(reverse("accounts:login"), {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content
    response = client.post(reverse("accounts:verify"), {"otp_token": totp_code(device)})
    assert response.status_code == 302, response.content
    return client


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]

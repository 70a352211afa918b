"""System check for the Entra settings (`manage.py check`): explains what is missing or
inconsistent before the first sync or grant fails at run time."""

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Tags, register

GRAPH_BACKEND = "entra.backend.GraphBackend"
_OBJECT_ID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_TENANT = re.compile(r"^([0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}|[A-Za-z0-9.-]+\.[A-Za-z]{2,})$")
_MULTI_TENANT = {"common", "organizations", "consumers"}


@register(Tags.security, "entra")
def entra_settings_check(app_configs=None, **kwargs) -> list:
    if not settings.ENTRA_SYNC_ENABLED:
        if settings.PIM_DIRECTORY_BACKEND == GRAPH_BACKEND:
            return [
                Error(
                    "PIM_DIRECTORY_BACKEND is the Entra back end but ENTRA_SYNC_ENABLED is off.",
                    hint="Set ENTRA_SYNC_ENABLED=1 with the tenant, client id and credential, or use "
                    "roles.directory.NullBackend.",
                    id="entra.E001",
                )
            ]
        return []
    return _identity_errors() + _credential_errors() + _url_errors() + _other_problems()


def _identity_errors() -> list:
    errors = []
    tenant = settings.ENTRA_TENANT_ID
    if not tenant:
        errors.append(Error("ENTRA_SYNC_ENABLED is on but ENTRA_TENANT_ID is empty.", id="entra.E002"))
    elif tenant.lower() in _MULTI_TENANT:
        errors.append(
            Error(
                f"ENTRA_TENANT_ID cannot be “{tenant}”: the client-credentials flow needs one tenant.",
                hint="Use the directory (tenant) id GUID or the tenant's domain name.",
                id="entra.E003",
            )
        )
    elif not _TENANT.match(tenant):
        errors.append(
            Error(
                "ENTRA_TENANT_ID is neither a GUID nor a domain name.",
                hint="Copy the Directory (tenant) ID from the app registration's overview page.",
                id="entra.E003",
            )
        )
    if not settings.ENTRA_CLIENT_ID:
        errors.append(
            Error(
                "ENTRA_SYNC_ENABLED is on but ENTRA_CLIENT_ID is empty.",
                hint="The Application (client) ID of the app registration.",
                id="entra.E004",
            )
        )
    return errors


def _credential_errors() -> list:
    secret, certificate = settings.ENTRA_CLIENT_SECRET, settings.ENTRA_CLIENT_CERTIFICATE
    if secret and certificate:
        return [
            Error(
                "Both ENTRA_CLIENT_SECRET and ENTRA_CLIENT_CERTIFICATE are set; choose one.",
                hint="Prefer the certificate; unset the secret (and its _FILE variant).",
                id="entra.E005",
            )
        ]
    if not secret and not certificate:
        return [
            Error(
                "ENTRA_SYNC_ENABLED is on but there is no credential.",
                hint="Set ENTRA_CLIENT_CERTIFICATE_FILE (PEM key and certificate) or "
                "ENTRA_CLIENT_SECRET_FILE.",
                id="entra.E006",
            )
        ]
    if certificate:
        from .client import certificate_credential

        try:
            certificate_credential(certificate, settings.ENTRA_CLIENT_CERTIFICATE_THUMBPRINT)
        except ValueError as error:
            return [Error(f"ENTRA_CLIENT_CERTIFICATE cannot be used: {error}", id="entra.E007")]
    return []


def _url_errors() -> list:
    errors = []
    for name in ("ENTRA_AUTHORITY_HOST", "ENTRA_GRAPH_BASE_URL", "ENTRA_ARM_URL"):
        value = getattr(settings, name)
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.netloc:
            errors.append(
                Error(
                    f"{name} must be an https URL, not “{value}”.",
                    hint="msal refuses any other authority, and tokens must never travel in clear text.",
                    id="entra.E008",
                )
            )
        elif name == "ENTRA_AUTHORITY_HOST" and parts.path.strip("/"):
            errors.append(
                Error(
                    f"ENTRA_AUTHORITY_HOST is a host, without a path: “{value}”.",
                    hint="The tenant is added from ENTRA_TENANT_ID, e.g. https://login.microsoftonline.com.",
                    id="entra.E009",
                )
            )
    return errors


_SUBSCRIPTION = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _other_problems() -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    if not 0 < settings.ENTRA_HTTP_TIMEOUT <= 300:
        problems.append(Error("ENTRA_HTTP_TIMEOUT must be between 0 and 300 seconds.", id="entra.E010"))
    malformed = [s for s in settings.ENTRA_ARM_SUBSCRIPTIONS if not _SUBSCRIPTION.fullmatch(s)]
    if malformed:
        problems.append(
            Error(
                f"ENTRA_ARM_SUBSCRIPTIONS holds what is not a subscription id: {', '.join(malformed)[:200]}.",
                hint="Comma-separated subscription ids (GUIDs), as in /subscriptions/<id>.",
                id="entra.E011",
            )
        )
    not_ids = [value for value in settings.ENTRA_PIM_GROUPS if not _OBJECT_ID.fullmatch(value)]
    if not_ids:
        problems.append(
            Error(
                f"ENTRA_PIM_GROUPS holds “{not_ids[0][:60]}”, which is not a group's object id.",
                hint="List the groups' object ids (GUIDs), comma-separated.",
                id="entra.E020",
            )
        )
    if settings.PIM_DIRECTORY_BACKEND != GRAPH_BACKEND:
        problems.append(
            Info(
                "The Entra sync is on but activations are not provisioned in Entra.",
                hint=f"Set PIM_DIRECTORY_BACKEND={GRAPH_BACKEND} to carry grants and revokes over.",
                id="entra.I001",
            )
        )
    return problems

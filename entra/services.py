"""Entry points of the Entra integration: a sync run (command, periodic task) and the admin's
connection test. Grants and revokes go through entra.backend.GraphBackend and the outbox."""

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent
from audit.refusals import audit_permission_denied
from audit.services import audit_record
from roles.directory import DirectoryError

from . import arm_sync, eligibilities, groups, people, sign_ins, sync
from .arm import ELIGIBILITY_INSTANCES, arm_beside, scope_path
from .client import GraphAuthError, GraphClient, GraphError, GraphUnavailable, get_graph
from .drift import check_drift
from .models import SyncRun

logger = logging.getLogger(__name__)

# A run still RUNNING after this long was left by a process that died; the next run closes it.
STALE_RUN = timedelta(hours=2)
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"


class SyncAlreadyRunning(Exception):
    """Another sync run holds the claim."""


def entra_sync_run(*, now: datetime | None = None, trigger: str = SyncRun.Trigger.SCHEDULE) -> SyncRun:
    """Import from Entra and check for drift, recording a SyncRun with counts and errors."""
    now = now or timezone.now()
    run = _run_claim(now, trigger)
    tally = sync.Tally()
    status: str = SyncRun.Status.FAILED
    try:
        status = _run_steps(get_graph(), tally, now)
    except DirectoryError as error:
        tally.error("sync", "", str(error))
    except Exception:
        tally.error("sync", "", "Unexpected error; the worker's log has the details.")
        raise
    finally:
        _run_finish(run, tally, status)
    return run


def _run_claim(now: datetime, trigger: str) -> SyncRun:
    abandoned = [{"kind": "sync", "item": "", "message": "Abandoned: the process running it stopped."}]
    SyncRun.objects.filter(status=SyncRun.Status.RUNNING, started_at__lt=now - STALE_RUN).update(
        status=SyncRun.Status.FAILED, finished_at=now, errors=abandoned
    )
    try:
        with transaction.atomic():
            return SyncRun.objects.create(started_at=now, trigger=trigger)
    except IntegrityError:  # entra_syncrun_one_running
        raise SyncAlreadyRunning("Another Entra sync is running; this one did not start.") from None


def _run_steps(graph: GraphClient, tally: sync.Tally, now: datetime) -> str:
    """Each step in order (later ones use what earlier ones imported). A refused read ends
    only its step; no token or no Graph at all ends the run."""
    managers: dict[str, str] = {}
    steps: list[tuple[str, Callable[[], object]]] = [
        ("roles", lambda: sync.import_roles(graph, tally)),
        ("users", lambda: managers.update(people.import_users(graph, tally))),
        ("managers", lambda: people.import_managers(managers, tally)),
        ("sign_in_activity", lambda: _sign_ins(graph, tally)),
        ("groups", lambda: people.import_groups(graph, tally)),
        ("role_settings", lambda: sync.import_role_settings(graph, tally)),
        ("eligibilities", lambda: eligibilities.import_eligibilities(graph, tally, now)),
        ("drift", lambda: check_drift(graph, tally, now)),
        ("arm", lambda: arm_sync.import_arm(graph, tally, now)),  # ENTRA_ARM_SUBSCRIPTIONS
        ("group_pim", lambda: groups.import_group_pim(graph, tally, now)),
    ]
    for kind, step in steps:
        try:
            step()
        except (GraphAuthError, GraphUnavailable) as error:
            tally.error(kind, "", str(error))
            return SyncRun.Status.FAILED
        except DirectoryError as error:
            tally.error(kind, "", str(error))
        except ValidationError as error:  # Graph sent something unreadable for the whole step
            tally.error(kind, "", sync.refusal_message(error))
    return SyncRun.Status.PARTIAL if tally.error_total else SyncRun.Status.SUCCEEDED


def _sign_ins(graph: GraphClient, tally: sync.Tally) -> None:
    if settings.ENTRA_SIGN_IN_ACTIVITY:
        sign_ins.import_sign_in_activity(graph, tally)


def _run_finish(run: SyncRun, tally: sync.Tally, status: str) -> None:
    run.finished_at = timezone.now()
    run.status = status
    run.counts = tally.as_dict()
    run.errors = tally.errors
    run.save(update_fields=["finished_at", "status", "counts", "errors"])
    log: Callable[..., None] = logger.warning if tally.error_total else logger.info
    log("Entra sync %s: %s (%d errors)", status, run.counts, tally.error_total)


def entra_connection_test(*, actor: User | None) -> dict[str, Any]:
    """Get a token and read one role definition; with ENTRA_ARM_SUBSCRIPTIONS, also an ARM
    token and one read at each subscription (result["arm"], one answer each: a subscription
    ARM refuses fails the test). The outcome, audited (no secret in it)."""
    if actor is not None and not actor.has_perm("entra.test_connection"):
        raise audit_permission_denied(
            actor=actor,
            attempted="entra_connection_test",
            permission="entra.test_connection",
            message="You may not test the Entra connection.",
        )
    started = time.monotonic()
    graph: GraphClient | None = None
    try:
        graph = get_graph()
        _, source = graph.token()
        role = graph.request(
            "GET",
            f"roleManagement/directory/roleDefinitions/{GLOBAL_ADMINISTRATOR}",
            params={"$select": "id,displayName"},
        )
    except DirectoryError as error:
        result: dict[str, Any] = {"ok": False, "message": str(error)}
    else:
        token = "a cached token" if source == "cache" else "a new token"
        result = {
            "ok": True,
            "message": f"Signed in to tenant {settings.ENTRA_TENANT_ID} ({token}) and read the role "
            f"“{role.get('displayName', GLOBAL_ADMINISTRATOR)}” from Microsoft Graph.",
        }
    if settings.ENTRA_ARM_SUBSCRIPTIONS:
        arm_answers = _arm_connection_test(graph)
        result["arm"] = arm_answers
        result["ok"] = result["ok"] and all(answer["ok"] for answer in arm_answers)
    result["elapsed_ms"] = round((time.monotonic() - started) * 1000)
    audit_record(
        action="entra.connection_tested",
        actor=actor,
        details={
            "tenant_id": settings.ENTRA_TENANT_ID,
            "client_id": settings.ENTRA_CLIENT_ID,
            "graph": settings.ENTRA_GRAPH_BASE_URL,
            **result,
        },
        outcome=AuditEvent.Outcome.SUCCESS if result["ok"] else AuditEvent.Outcome.FAILURE,
    )
    return result


def _arm_connection_test(graph: GraphClient | None) -> list[dict[str, Any]]:
    """An ARM token for the same app, then, for each configured subscription, one page of its
    eligibility schedule instances at the subscription and above ($filter=atScope(): the
    smallest listing ARM gives; what the sync reads needs the same permission). Each
    subscription answers on its own: the app may hold its Azure role on some and not others."""
    subscriptions = settings.ENTRA_ARM_SUBSCRIPTIONS
    if graph is None:  # no Graph client could be built (settings): nothing to sign in with
        return [_arm_answer(sub, False, "Not tried: no Entra client.") for sub in subscriptions]
    arm = arm_beside(graph)
    try:
        _, source = arm.token()
    except DirectoryError as error:
        return [
            _arm_answer(sub, False, f"No token for Azure Resource Manager: {error}") for sub in subscriptions
        ]
    token = "a cached token" if source == "cache" else "a new token"
    answers = []
    for subscription in subscriptions:
        scope = f"/subscriptions/{subscription}"
        path = scope_path(scope, ELIGIBILITY_INSTANCES)
        try:
            page = arm.get(path, params={"$filter": "atScope()"}, retries=0)
        except GraphError as error:
            hint = ""
            if error.status == 403:
                hint = " Give the app's service principal “User Access Administrator” on the subscription."
            answers.append(_arm_answer(subscription, False, f"{error}{hint}"))
            continue
        except DirectoryError as error:
            answers.append(_arm_answer(subscription, False, str(error)))
            continue
        count = len(page.get("value") or [])
        more = " or more" if page.get("nextLink") else ""
        answers.append(
            _arm_answer(
                subscription,
                True,
                f"Read {count}{more} eligibility schedule instance{'' if count == 1 and not more else 's'} "
                f"at {scope} from Azure Resource Manager ({token}).",
            )
        )
    return answers


def _arm_answer(subscription: str, ok: bool, message: str) -> dict[str, Any]:
    return {"subscription": subscription, "ok": ok, "message": message}

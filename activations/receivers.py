"""How activations hears of changes made in roles and accounts (same transaction)."""

from django.db import transaction
from django.dispatch import receiver

from accounts.hooks import user_deactivated
from roles.signals import active_assignment_ended, active_assignments_ending, role_settings_changed

from . import services


@receiver(active_assignments_ending)
def lock_requests_of_ending_assignments(sender, assignments, **kwargs):
    services.activation_requests_lock_for_assignments(assignments=assignments)


@receiver(active_assignment_ended)
def close_activation_of_ended_assignment(sender, assignment, actor, reason, now, **kwargs):
    services.activation_close_for_ended_assignment(assignment=assignment, actor=actor, reason=reason, now=now)


@receiver(user_deactivated)
def cancel_pending_requests_of_deactivated_user(sender, user, now, **kwargs):
    services.activation_requests_cancel_for_user(user=user, now=now)


@receiver(role_settings_changed)
def refresh_approvers_of_pending_requests(sender, role, **kwargs):
    # After commit, each request under its own lock: the settings change does not wait on them.
    transaction.on_commit(lambda: services.activation_approvers_refresh(role=role))

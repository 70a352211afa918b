"""Signals roles sends to apps that build on it (activations), inside the transaction that
made the change. Audit events are never written from receivers of Django's model signals;
these are explicit, sent by the services themselves."""

from django.dispatch import Signal

# An active assignment was ended before its end (removed, revoked, deactivated); kwargs:
# assignment, actor, reason, now.
active_assignment_ended = Signal()

# A role's settings changed (role_settings_update, also when a pending change is approved);
# kwargs: role. Activations brings its pending requests' approvers up to date after commit.
role_settings_changed = Signal()

# Live active assignments, locked, are about to be ended (removed, revoked, deactivated);
# kwargs: assignments. Sent before anything is written, so receivers lock the rows that hang
# on them — activations locks the requests behind them — before the transaction writes its
# first audit event (the lock order in roles.services).
active_assignments_ending = Signal()

# A directory change (grant or revoke) that the directory accepted is overdue: still not in
# force PIM_DIRECTORY_EFFECT_ALERT_MINUTES after it was accepted, or given up on, or confirmed
# after being overdue; kwargs: operation, now. Alerts re-evaluates its alert on it after commit.
directory_effect_overdue = Signal()

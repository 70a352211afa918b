"""Signals accounts sends to apps that build on it, inside the service's transaction (the
apps above connect their receivers in their AppConfig.ready). A receiver that raises refuses
the change: the whole transaction rolls back and the caller sees its error."""

from django.dispatch import Signal

# A user is about to be deactivated: their groups and row are locked and they are still
# active, so receivers see what they hold; kwargs: user, actor, reason, now. Roles revokes
# their active assignments (refusing, LockoutError, if they are the last holder of a
# lockout-protected role).
user_deactivating = Signal()

# A user was deactivated; kwargs: user, actor, now. Activations cancels their pending requests.
user_deactivated = Signal()

# A user is about to leave a group (the group is locked, the membership still there); kwargs:
# group, user, actor, now. Each receiver returns how many activations it ended (roles ends
# the user's activations of the group's eligibilities, or refuses with LockoutError).
group_member_leaving = Signal()

"""Signals accounts sends to apps that build on it, inside the service's transaction."""

from django.dispatch import Signal

# A user was deactivated; kwargs: user, actor, now. Activations cancels their pending requests.
user_deactivated = Signal()

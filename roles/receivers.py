"""How roles hears of changes made in accounts (inside the accounts service's transaction)."""

from django.dispatch import receiver

from accounts.hooks import group_member_leaving, user_deactivating

from . import services


@receiver(user_deactivating)
def revoke_active_assignments_of_deactivated_user(sender, user, actor, reason, now, **kwargs):
    services.active_assignments_revoke_for_user(actor=actor, user=user, reason=reason, now=now)


@receiver(group_member_leaving)
def end_activations_of_group_leaver(sender, group, user, actor, now, **kwargs) -> int:
    return services.assignments_end_for_group_leaver(actor=actor, group=group, user=user, now=now)

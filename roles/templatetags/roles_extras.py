from django import template

from common.step_up import user_is_verified

from ..selectors import user_is_pim_administrator
from ..two_person.selectors import pending_changes_waiting_for, user_may_see_pending_changes

register = template.Library()


@register.simple_tag(takes_context=True)
def pending_changes_nav(context) -> dict:
    """For the navigation: whether the signed-in user sees pending changes (PIM Administrators
    while active) and how many wait for someone else's decision (one COUNT query)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user_is_verified(user):
        return {"show": False, "waiting": 0}
    if not user_may_see_pending_changes(user=user):
        return {"show": False, "waiting": 0}
    return {"show": True, "waiting": pending_changes_waiting_for(user=user)}


@register.simple_tag(takes_context=True)
def manages_roles(context) -> bool:
    """For the navigation: whether to link the administration pages (PIM Administrators while
    their role is active). People without the role's permissions cost no query here."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user_is_verified(user):
        return False
    if not user.has_perm("roles.change_rolesettings"):
        return False
    return user_is_pim_administrator(user=user)

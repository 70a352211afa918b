from django import template

from common.step_up import user_is_verified

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

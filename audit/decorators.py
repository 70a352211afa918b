"""The guard of every page that shows the audit log or evidence drawn from it."""

from functools import wraps

from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from common.decorators import verified_required

from .selectors import audit_reader_check


def audit_reader_required(view):
    """Signed in and MFA-verified, and allowed to read the audit log (else 404); never cached;
    GET and HEAD only."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        audit_reader_check(user=request.user)
        return view(request, *args, **kwargs)

    return never_cache(require_safe(verified_required(wrapper)))

"""Rate limits of the API, counted in the "api_throttle" cache (Redis when REDIS_URL is set,
so every web process counts together). A cache that is down lets requests through: django-otp
still throttles wrong codes per device in the database, and the portal keeps serving."""

import logging

from django.core.cache import BaseCache, caches
from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

logger = logging.getLogger(__name__)
CACHE_ALIAS = "api_throttle"


class _FailOpen:
    @property
    def cache(self) -> BaseCache:
        return caches[CACHE_ALIAS]

    @cache.setter
    def cache(self, value: BaseCache) -> None:
        # What a property without a setter does; DRF only reads the attribute (typed writeable).
        raise AttributeError("The throttle cache follows settings.CACHES; it cannot be set.")

    def get_rate(self):
        # DRF reads the rates once, at import; here they follow the settings (tests change them).
        rates = api_settings.DEFAULT_THROTTLE_RATES
        if self.scope not in rates:
            raise ImproperlyConfigured(f"No throttle rate for scope {self.scope!r}.")
        return rates[self.scope]

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception:  # the cache is unreachable: availability wins, see the module doc
            logger.warning("API throttle cache unavailable; request let through", exc_info=True)
            return True


class FailOpenScopedRateThrottle(_FailOpen, ScopedRateThrottle):
    """DRF's ScopedRateThrottle (the view's ``throttle_scope``); views apply it to the
    actions that create requests only (get_throttles)."""


class TotpAttemptThrottle(_FailOpen, SimpleRateThrottle):
    """Codes a user may submit through the API per period (scope "totp"); checked only when a
    request carries a code (see views.mfa_verified_at)."""

    scope = "totp"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}

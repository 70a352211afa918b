"""The small test override of pim_portal.settings."""

import os

os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-" + "t" * 40)

from pim_portal.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
SECURE_SSL_REDIRECT = False
# The test database is migrated (and flushed) without a first alert evaluation: tests start
# from "not evaluated yet" (alerts.tests test the receiver itself).
PIM_ALERTS_EVALUATE_AFTER_MIGRATE = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
# The refusal counter in process memory, emptied before each test (root conftest): a Redis one
# would carry counts from test to test under the stopped clock.
CACHES["refusals"] = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "refusals"}  # noqa: F405
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405

if DATABASES["default"]["ENGINE"].endswith("postgresql"):  # noqa: F405
    # Test-database flushes get past the audit tables' TRUNCATE trigger from the root
    # conftest.py (as the tables' owner), never through anything the portal could switch on.
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
else:
    DATABASES["default"]["NAME"] = ":memory:"  # noqa: F405
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}  # noqa: F405
# Tests move the clock by hours with one signed-in client; the idle timeout has its own tests
# (accounts/tests/test_sessions.py), which set it back to the production default.
PIM_SESSION_IDLE_SECONDS = 30 * 24 * 3600

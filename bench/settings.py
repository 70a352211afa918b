"""Settings for bench/run.py: the portal's own settings, pointed at the benchmark database.

run.py sets PIM_BENCH_DATABASE (the separate database it created) before Django starts. The
database connection is the production one (CONN_MAX_AGE 60, CONN_HEALTH_CHECKS on: a request
that follows another checks its connection first). With REDIS_URL set, tasks queued on commit
(directory revokes, emails) go to that real Redis broker, as in production (nothing consumes
them; run.py empties the queue at the end); without it, to Celery's in-memory transport, and
the report says so.
"""

import os
import secrets

os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("PIM_AUDIT_CHAIN_KEY", secrets.token_urlsafe(32))

from pim_portal.settings import *  # noqa: E402,F403

DATABASES["default"]["NAME"] = os.environ["PIM_BENCH_DATABASE"]  # noqa: F405
if not REDIS_URL:  # noqa: F405
    CELERY_BROKER_URL = "memory://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# A trivial DRF view beside the portal's URLs: the check endpoint is measured against it.
ROOT_URLCONF = "bench.urls"
# Plain http on loopback and the test Client: no redirect to https, no secure-only cookies.
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver", "127.0.0.1"]  # noqa: F405 - the test Client, gunicorn
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
STATIC_ROOT = BASE_DIR / "static"  # noqa: F405 - whitenoise wants a folder; no page here reads it
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # noqa: F405

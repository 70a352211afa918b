"""Settings for bench/run.py: the portal's own settings, pointed at the benchmark database.

run.py sets PIM_BENCH_DATABASE (the separate database it created) before Django starts. Tasks
queued on commit (directory revokes, emails) go to Celery's in-memory transport: the
benchmarks measure the portal, not a broker, and nothing lands in a real queue.
"""

import os
import secrets

os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("PIM_AUDIT_CHAIN_KEY", secrets.token_urlsafe(32))

from pim_portal.settings import *  # noqa: E402,F403

DATABASES["default"]["NAME"] = os.environ["PIM_BENCH_DATABASE"]  # noqa: F405
DATABASES["default"]["CONN_MAX_AGE"] = None  # noqa: F405 - one connection for the whole run
DATABASES["default"]["CONN_HEALTH_CHECKS"] = False  # noqa: F405
CELERY_BROKER_URL = "memory://localhost/"
CELERY_BROKER_TRANSPORT_OPTIONS = {}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Plain http on loopback and the test Client: no redirect to https, no secure-only cookies.
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]  # noqa: F405 - the test Client
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
STATIC_ROOT = BASE_DIR / "static"  # noqa: F405 - whitenoise wants a folder; no page here reads it
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # noqa: F405

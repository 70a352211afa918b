"""PIM Portal settings.

Everything is driven by environment variables (see README "Configuration"). The embedded
defaults run a development portal with no services: a SQLite file and a Celery transport on
the file system. Set DATABASE_URL and REDIS_URL for real deployments.
"""

import hashlib
import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from pythonjsonlogger.core import RESERVED_ATTRS as JSON_LOG_RESERVED_ATTRS

from pim_portal.periodic import beat_schedule

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str | None = None) -> str | None:
    """A string from NAME, or from the file named by NAME_FILE (for secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        return Path(file_name).read_text().strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_networks(name: str) -> list[str]:
    """Comma-separated IP addresses or networks (CIDR), each checked, as network strings."""
    try:
        return [str(ipaddress.ip_network(item, strict=False)) for item in env_list(name)]
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must list IP addresses or networks: {error}") from None


DEBUG = env_bool("DJANGO_DEBUG", False)
DATA_DIR = Path(os.environ.get("PIM_DATA_DIR", BASE_DIR / "var"))

SECRET_KEY: str = env_str("DJANGO_SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) is required")
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production-" + "x" * 20

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
PIM_BASE_URL = os.environ.get("PIM_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "pim_portal.apps.PortalAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_otp_webauthn",  # passkeys: WebAuthn credentials as django-otp devices
    "guardian",
    "axes",  # brute-force lockout (README "Sign-in protection")
    "mozilla_django_oidc",  # single sign-on (README "Single sign-on")
    "accounts",
    "audit",
    "roles",
    "notifications",
    "activations",
    "reviews",
    "alerts",
    "entra",
    "integrations",
    "rest_framework",
    "django_filters",  # the audit log's search (audit.filters), also behind the API's
    "drf_spectacular",
    "drf_spectacular_sidecar",  # vendored Swagger UI files for /api/docs/ (no CDN)
    "api",
    "pim_portal",  # last: the project-level commands (run_periodic, demo)
]

MIDDLEWARE = [
    "pim_portal.middleware.RequestIdMiddleware",
    "pim_portal.middleware.RequestLogMiddleware",  # one log line and the metrics per request
    "pim_portal.middleware.ProbeMiddleware",  # /healthz, /readyz, /metrics: before host and HTTPS checks
    "django.middleware.security.SecurityMiddleware",
    "pim_portal.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.middleware.ProviderMfaMiddleware",
    "pim_portal.middleware.TimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.middleware.SessionIdleMiddleware",  # says why on the sign-in page (messages)
    "accounts.middleware.BreakGlassAuditMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last (django-axes' rule): turns a locked-out sign-in into the "try again at" page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "pim_portal.urls"
WSGI_APPLICATION = "pim_portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
    # Plain text (the text part and subject of emails): the same templates, not HTML-escaped.
    # Never used for a web page; notifications.services renders "*.txt" email parts with it.
    {
        "NAME": "text",
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {"autoescape": False},
    },
]

# Database: PostgreSQL through DATABASE_URL in production and CI; a SQLite file otherwise.
DATABASE_URL = env_str("DATABASE_URL", "") or ""  # may hold a password: DATABASE_URL_FILE works too
DATABASES: dict[str, Any]  # the sqlite NAME is a Path
# The authorization check's hand-written statements run as server-side prepared statements on
# PostgreSQL (common.db.fetchone_prepared): off for a connection pooler in transaction mode
# that cannot carry them (PgBouncer before 1.21, or without max_prepared_statements).
PIM_DB_PREPARED_STATEMENTS = env_bool("PIM_DB_PREPARED_STATEMENTS", True)
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            # Web, worker and beat share the file: take the write lock at BEGIN, wait for it.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # First: refuses any sign-in (password or code) from a locked-out account or address.
    "axes.backends.AxesStandaloneBackend",
    # Single sign-on (OpenID Connect): the first factor only; grants no permission either.
    "accounts.sso.SsoBackend",
    # Passwords only: grants no permission of its own (nobody keeps standing rights).
    "accounts.backends.PasswordBackend",
    # Django permissions behind the portal's own roles, only while the role is active.
    "roles.backends.PortalRoleBackend",
    # Object permissions for role owners (delegated administration).
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "activations:my_roles"
LOGOUT_REDIRECT_URL = "accounts:login"
ANONYMOUS_USER_NAME = None  # django-guardian: no anonymous user object

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", DATA_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# whitenoise's own default, frozen here: pytest-django turns settings.DEBUG off at run time,
# and whitenoise would then warn on every request that STATIC_ROOT (not collected) is missing.
WHITENOISE_AUTOREFRESH = DEBUG

# Sessions and cookies: an absolute lifetime, and an idle timeout (accounts.middleware).
SESSION_COOKIE_AGE = env_int("PIM_SESSION_AGE_SECONDS", 8 * 3600)
PIM_SESSION_IDLE_SECONDS = env_int("PIM_SESSION_IDLE_SECONDS", 1800)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
SECURE_COOKIES = env_bool("PIM_SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
if SECURE_COOKIES:
    # "__Host-": the browser accepts the cookie only over HTTPS, for this exact host and path
    # "/", so a sibling subdomain can never plant or overwrite it.
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"

# Security headers. "same-origin": no Referer ever leaves the portal. Not "no-referrer"
# everywhere: with it, browsers send "Origin: null" on form posts and CSRF protection (rightly)
# refuses them. The one response that carries an email-link token in its URL sets
# no-referrer itself (activations.views) and drops the token at once.
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env_bool("PIM_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("PIM_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("PIM_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("PIM_HSTS_PRELOAD", True)
if env_bool("PIM_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The proxies (load balancers) whose X-Request-ID and X-Forwarded-For headers are believed, by
# the address the portal sees them connect from (REMOTE_ADDR). Nobody by default: every request
# gets a fresh id, and the client address is REMOTE_ADDR (common.client.client_address).
PIM_TRUSTED_PROXIES = env_networks("PIM_TRUSTED_PROXIES")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

# Email: printed (readably) in development, SMTP when EMAIL_HOST is set.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 20)
# Without an SMTP server, emails are printed readably (text part, links on their own lines)
# rather than as raw MIME; with DJANGO_DEBUG they are also listed at /dev/emails/.
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "notifications.backends.ReadableConsoleBackend"
)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "PIM Portal <pim@localhost>")
# The right-hand side of every email's Message-ID (<pim-email-{row}.{created}@domain>, the same
# at every send of an outbox row): the host name of PIM_BASE_URL unless said otherwise.
_HOST_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
PIM_EMAIL_MESSAGE_ID_DOMAIN = os.environ.get("PIM_EMAIL_MESSAGE_ID_DOMAIN", "")
if not PIM_EMAIL_MESSAGE_ID_DOMAIN:
    _base_host = urlsplit(PIM_BASE_URL).hostname or ""
    PIM_EMAIL_MESSAGE_ID_DOMAIN = _base_host if re.fullmatch(_HOST_NAME, _base_host) else "localhost"
elif not re.fullmatch(_HOST_NAME, PIM_EMAIL_MESSAGE_ID_DOMAIN):
    raise ImproperlyConfigured(
        f"PIM_EMAIL_MESSAGE_ID_DOMAIN must be a host name, not {PIM_EMAIL_MESSAGE_ID_DOMAIN!r}"
    )

# Celery: Redis when REDIS_URL is set, otherwise a file-system transport that needs no server.
REDIS_URL = env_str("REDIS_URL", "") or ""  # may hold a password: REDIS_URL_FILE works too
# A web request must never wait on a hung Redis: tasks are published after commit while the
# request waits, and the API counts its throttles there. Every socket operation on Redis
# (connect, send, read) gives up after this long; a publish that fails is not retried and its
# outbox row waits for the drain job (common.broker), a throttle that fails lets the request by.
PIM_REDIS_TIMEOUT_SECONDS = env_float("PIM_REDIS_TIMEOUT_SECONDS", 1.0)
REDIS_SOCKET_OPTIONS = {
    "socket_timeout": PIM_REDIS_TIMEOUT_SECONDS,
    "socket_connect_timeout": PIM_REDIS_TIMEOUT_SECONDS,
}
REDIS_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, **REDIS_SOCKET_OPTIONS}
CELERY_BROKER_CONNECTION_TIMEOUT = PIM_REDIS_TIMEOUT_SECONDS  # bounds kombu's connect retries too
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = REDIS_TRANSPORT_OPTIONS
else:
    _queue_dir = DATA_DIR / "celery" / "queue"
    _processed_dir = DATA_DIR / "celery" / "processed"
    _queue_dir.mkdir(parents=True, exist_ok=True)
    _processed_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_processed_dir),
        "control_folder": str(DATA_DIR / "celery" / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the message for another worker
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Workers and beat log through LOGGING below (JSON lines in production), not Celery's own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# The expiry sweep works through a backlog (after downtime, or many activations ending at
# once) on this many database connections at once (threads in the worker running it; 1: one).
PIM_EXPIRY_SWEEP_WORKERS = env_int("PIM_EXPIRY_SWEEP_WORKERS", 2)
if PIM_EXPIRY_SWEEP_WORKERS < 1:
    raise ImproperlyConfigured(f"PIM_EXPIRY_SWEEP_WORKERS must be 1 or more, not {PIM_EXPIRY_SWEEP_WORKERS}")
# Periodic jobs: declared once in pim_portal/periodic.py (beat, run_periodic and README's job
# table read the same list); CELERY_BEAT_SCHEDULE is built below, once the settings it reads are set.
# The directory back end that carries out grants and revokes (SPEC 2.7): a dotted path.
PIM_DIRECTORY_BACKEND = os.environ.get("PIM_DIRECTORY_BACKEND", "roles.directory.NullBackend")

# Microsoft Entra ID (SPEC 2.7, README "Entra set-up"): off unless ENTRA_SYNC_ENABLED. The
# entra app's system check explains any missing or inconsistent value. Secrets may come from
# <NAME>_FILE; they are never logged.
ENTRA_SYNC_ENABLED = env_bool("ENTRA_SYNC_ENABLED", False)
ENTRA_TENANT_ID = os.environ.get("ENTRA_TENANT_ID", "").strip()
ENTRA_CLIENT_ID = os.environ.get("ENTRA_CLIENT_ID", "").strip()
ENTRA_CLIENT_SECRET = env_str("ENTRA_CLIENT_SECRET", "") or ""
# A PEM private key (and its certificate, from which the thumbprint is computed if not given).
ENTRA_CLIENT_CERTIFICATE = env_str("ENTRA_CLIENT_CERTIFICATE", "") or ""
ENTRA_CLIENT_CERTIFICATE_THUMBPRINT = os.environ.get("ENTRA_CLIENT_CERTIFICATE_THUMBPRINT", "").strip()
ENTRA_AUTHORITY_HOST = os.environ.get("ENTRA_AUTHORITY_HOST", "https://login.microsoftonline.com")
ENTRA_GRAPH_BASE_URL = os.environ.get("ENTRA_GRAPH_BASE_URL", "https://graph.microsoft.com/v1.0")
ENTRA_HTTP_TIMEOUT = env_float("ENTRA_HTTP_TIMEOUT", 30.0)  # seconds, on every HTTP call
ENTRA_SYNC_INTERVAL_MINUTES = env_int("ENTRA_SYNC_INTERVAL_MINUTES", 60)
# Remove assignments made in Entra outside the portal (drift); off: report them only.
ENTRA_REMOVE_DRIFT = env_bool("ENTRA_REMOVE_DRIFT", False)
# Object ids never removed as drift (break-glass accounts, the app's own service principal).
ENTRA_DRIFT_EXCLUDE = env_list("ENTRA_DRIFT_EXCLUDE")
# Import each linked user's last sign-ins from Entra (Graph signInActivity; needs
# AuditLog.Read.All and Entra ID P1): reviews and the stale-account alert then use them too.
ENTRA_SIGN_IN_ACTIVITY = env_bool("ENTRA_SIGN_IN_ACTIVITY", False)
# Azure resource roles through Azure Resource Manager (README "Entra set-up", ARM): its base
# URL (the token's scope is its host's /.default), and the subscriptions whose eligibilities
# are imported and whose assignments are checked for drift (none: that part is off).
ENTRA_ARM_URL = os.environ.get("ENTRA_ARM_URL", "https://management.azure.com").strip()
ENTRA_ARM_SUBSCRIPTIONS = env_list("ENTRA_ARM_SUBSCRIPTIONS")
# PIM for Groups: object ids of Entra groups the sync governs (member and owner roles each).
ENTRA_PIM_GROUPS = env_list("ENTRA_PIM_GROUPS")
# Proof of effect (README "Entra set-up"): after Entra accepts a grant or a revoke, the worker
# reads the schedule instances until the change is in force (or gone). An alert fires when it
# is not within PIM_DIRECTORY_EFFECT_ALERT_MINUTES; the worker stops checking after
# PIM_DIRECTORY_EFFECT_GIVE_UP_MINUTES and records the change as not confirmed.
PIM_DIRECTORY_EFFECT_ALERT_MINUTES = env_int("PIM_DIRECTORY_EFFECT_ALERT_MINUTES", 5)
PIM_DIRECTORY_EFFECT_GIVE_UP_MINUTES = env_int("PIM_DIRECTORY_EFFECT_GIVE_UP_MINUTES", 60)
CELERY_BEAT_SCHEDULE = beat_schedule(globals())  # pim_portal/periodic.py; reads the settings above

# Signed audit checkpoints (SPEC 2.6): the Ed25519 private key (base64 of its 32 bytes, or
# PEM; `manage.py audit_keygen` makes one) is needed only by the Celery worker that runs
# "audit-checkpoint", never by the web processes. The public key(s), several when the key was
# rotated, let audit_verify check the signatures. See README "Verifying the audit log".
PIM_AUDIT_SIGNING_KEY = env_str("PIM_AUDIT_SIGNING_KEY", "") or ""
PIM_AUDIT_PUBLIC_KEY = env_str("PIM_AUDIT_PUBLIC_KEY", "") or ""
# The audit chain key: an HMAC key every process that writes audit events needs (web, worker,
# beat, cron), and that must never be stored in the database; several, separated by commas,
# after a rotation (the first keys new events). Without it in production the portal writes no
# audit event and `check --deploy` fails; with DJANGO_DEBUG a development key is derived from
# the secret key. README "Verifying the audit log".
PIM_AUDIT_CHAIN_KEY = env_str("PIM_AUDIT_CHAIN_KEY", "") or ""
if not PIM_AUDIT_CHAIN_KEY and DEBUG:
    PIM_AUDIT_CHAIN_KEY = hashlib.sha256(
        b"PIM Portal development audit chain key\n" + SECRET_KEY.encode()
    ).hexdigest()
# Where the checkpoint job also appends each signed checkpoint (JSON Lines), out of the
# database's reach: audit_verify compares the database with it, so a wipe or a rollback shows.
PIM_AUDIT_CHECKPOINT_FILE = os.environ.get("PIM_AUDIT_CHECKPOINT_FILE", "")
# ... and sends it to this syslog destination: "/dev/log" (the local syslog or journal) or
# "host:port" (UDP), tagged pim-audit-checkpoint, facility authpriv.
PIM_AUDIT_CHECKPOINT_SYSLOG = os.environ.get("PIM_AUDIT_CHECKPOINT_SYSLOG", "")
if PIM_AUDIT_CHECKPOINT_SYSLOG and not (
    PIM_AUDIT_CHECKPOINT_SYSLOG.startswith("/") or re.fullmatch(r".+:\d+", PIM_AUDIT_CHECKPOINT_SYSLOG)
):
    raise ImproperlyConfigured(
        f"PIM_AUDIT_CHECKPOINT_SYSLOG must be a socket path or host:port, not {PIM_AUDIT_CHECKPOINT_SYSLOG!r}"
    )

# Security alerts (SPEC 2.6, README "Alerts"): thresholds with Entra's defaults
# (research/entra-pim.md §7). Alerts are evaluated hourly ("alerts-evaluate").
# Queue the first evaluation of the alert rules after `migrate` (alerts.receivers).
PIM_ALERTS_EVALUATE_AFTER_MIGRATE = env_bool("PIM_ALERTS_EVALUATE_AFTER_MIGRATE", True)
PIM_ALERT_MAX_ACTIVATION_HOURS = env_int("PIM_ALERT_MAX_ACTIVATION_HOURS", 8)
PIM_ALERT_UNUSED_DAYS = env_int("PIM_ALERT_UNUSED_DAYS", 30)
PIM_ALERT_STALE_SIGN_IN_DAYS = env_int("PIM_ALERT_STALE_SIGN_IN_DAYS", 30)
PIM_ALERT_GLOBAL_ADMIN_COUNT = env_int("PIM_ALERT_GLOBAL_ADMIN_COUNT", 3)
PIM_ALERT_GLOBAL_ADMIN_PERCENT = env_int("PIM_ALERT_GLOBAL_ADMIN_PERCENT", 10)
PIM_ALERT_RENEWAL_COUNT = env_int("PIM_ALERT_RENEWAL_COUNT", 3)
PIM_ALERT_RENEWAL_WINDOW_HOURS = env_int("PIM_ALERT_RENEWAL_WINDOW_HOURS", 24)
PIM_ALERT_FREQUENT_LOOKBACK_DAYS = env_int("PIM_ALERT_FREQUENT_LOOKBACK_DAYS", 30)
PIM_ALERT_REVIEW_DAYS = env_int("PIM_ALERT_REVIEW_DAYS", 90)
PIM_ALERT_BREAK_GLASS_DAYS = env_int("PIM_ALERT_BREAK_GLASS_DAYS", 30)
# Who is emailed about new high-severity alerts; empty: the PIM Administrators.
PIM_ALERT_EMAILS = env_list("PIM_ALERT_EMAILS")

# Signing in (README "Single sign-on", "Sign-in protection"). PIM_PASSWORD_LOGIN: "on",
# "break-glass-only" (only superusers sign in with a password) or "off" (single sign-on only).
PIM_PASSWORD_LOGIN = os.environ.get("PIM_PASSWORD_LOGIN", "on").strip().lower()
if PIM_PASSWORD_LOGIN not in {"on", "break-glass-only", "off"}:
    raise ImproperlyConfigured(
        f"PIM_PASSWORD_LOGIN must be on, break-glass-only or off, not {PIM_PASSWORD_LOGIN!r}"
    )
# OpenID Connect: on when PIM_OIDC_DISCOVERY_URL (any provider) or PIM_OIDC_ENTRA_TENANT_ID
# (Microsoft Entra ID: the discovery URL follows from the tenant) is set. The provider's
# endpoints and keys are read from its discovery document at first use (accounts.sso).
PIM_OIDC_ENTRA_TENANT_ID = os.environ.get("PIM_OIDC_ENTRA_TENANT_ID", "").strip()
PIM_OIDC_DISCOVERY_URL = os.environ.get("PIM_OIDC_DISCOVERY_URL", "").strip()
if PIM_OIDC_ENTRA_TENANT_ID and not PIM_OIDC_DISCOVERY_URL:
    PIM_OIDC_DISCOVERY_URL = (
        f"{ENTRA_AUTHORITY_HOST.rstrip('/')}/{PIM_OIDC_ENTRA_TENANT_ID}/v2.0/.well-known/openid-configuration"
    )
PIM_OIDC_ENABLED = bool(PIM_OIDC_DISCOVERY_URL)
PIM_OIDC_PROVIDER_NAME = os.environ.get(
    "PIM_OIDC_PROVIDER_NAME", "Microsoft" if PIM_OIDC_ENTRA_TENANT_ID else "single sign-on"
)
# Just-in-time creation of a person at their first sign-in; off: only linked people get in.
PIM_OIDC_CREATE_USERS = env_bool("PIM_OIDC_CREATE_USERS", False)
# Trust the provider's MFA for signing in (never for activation or approval): the sign-in
# counts as verified when the ID token's amr lists one of these, or its acr is one of those.
PIM_OIDC_TRUST_MFA = env_bool("PIM_OIDC_TRUST_MFA", False)
PIM_OIDC_TRUSTED_AMR = env_list("PIM_OIDC_TRUSTED_AMR", "mfa,hwk,fido")
PIM_OIDC_TRUSTED_ACR = env_list("PIM_OIDC_TRUSTED_ACR")
OIDC_RP_CLIENT_ID = os.environ.get("PIM_OIDC_CLIENT_ID", "").strip()
OIDC_RP_CLIENT_SECRET = env_str("PIM_OIDC_CLIENT_SECRET", "") or ""
# A PEM private key with its certificate: the portal authenticates with a signed assertion
# (private_key_jwt, Entra's "certificate credential") instead of a secret.
PIM_OIDC_CLIENT_CERTIFICATE = env_str("PIM_OIDC_CLIENT_CERTIFICATE", "") or ""
OIDC_RP_SCOPES = os.environ.get("PIM_OIDC_SCOPES", "openid profile email")
OIDC_RP_SIGN_ALGO = os.environ.get("PIM_OIDC_SIGN_ALGO", "RS256")
OIDC_TIMEOUT = env_float("PIM_OIDC_TIMEOUT", 10.0)  # seconds, on every call to the provider
OIDC_USE_PKCE = True
OIDC_CREATE_USER = False  # accounts.sso decides (PIM_OIDC_CREATE_USERS)
OIDC_STORE_ID_TOKEN = False
OIDC_AUTHENTICATION_CALLBACK_URL = "accounts:sso_callback"
LOGIN_REDIRECT_URL_FAILURE = "accounts:login"

# Brute force (django-axes, README "Sign-in protection"): after PIM_SIGN_IN_FAILURE_LIMIT wrong
# passwords or codes, the account, and separately the client address, are locked for
# PIM_SIGN_IN_LOCKOUT_MINUTES; the right password is refused too until then.
AXES_FAILURE_LIMIT = env_int("PIM_SIGN_IN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("PIM_SIGN_IN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own: the account, the address
AXES_CLIENT_IP_CALLABLE = "common.client.client_address"
AXES_LOCKOUT_CALLABLE = "accounts.views.locked_out"
# Not reset by a successful sign-in: axes would forget the address's failures too, and an
# attacker with an account of their own could sign in between guesses. Failures age out.
AXES_RESET_ON_SUCCESS = False
AXES_DISABLE_ACCESS_LOG = True  # sign-ins are in the audit log already
AXES_ENABLE_ACCESS_FAILURE_LOG = False
AXES_VERBOSE = False
AXES_ENABLE_ADMIN = False  # attempts hold addresses and user names: `manage.py axes_reset_username` unlocks
AXES_USERNAME_CALLABLE = "accounts.throttle.attempt_username"
# Notifications (roles.notification_matrix, integrations/). One event emails at most this many
# addresses (Entra's cap); the weekly digest for PIM Administrators is off unless turned on.
PIM_NOTIFICATION_MAX_RECIPIENTS = env_int("PIM_NOTIFICATION_MAX_RECIPIENTS", 1000)
PIM_WEEKLY_DIGEST = env_bool("PIM_WEEKLY_DIGEST", False)
# Slack (slack-sdk): a bot token (xoxb-…) with chat:write and users:read.email; approval
# requests go to PIM_SLACK_CHANNEL (a channel id) and/or as DMs to approvers matched by email.
PIM_SLACK_BOT_TOKEN = env_str("PIM_SLACK_BOT_TOKEN", "") or ""  # a secret: PIM_SLACK_BOT_TOKEN_FILE works too
PIM_SLACK_CHANNEL = os.environ.get("PIM_SLACK_CHANNEL", "")
PIM_SLACK_DM_APPROVERS = env_bool("PIM_SLACK_DM_APPROVERS", False)
PIM_SLACK_DM_REQUESTERS = env_bool("PIM_SLACK_DM_REQUESTERS", False)
PIM_SLACK_API_URL = os.environ.get("PIM_SLACK_API_URL", "https://slack.com/api/")
# Microsoft Teams: an incoming webhook or Workflows ("Post to a channel when a webhook request
# is received") URL that takes Adaptive Cards.
PIM_TEAMS_WEBHOOK_URL = env_str("PIM_TEAMS_WEBHOOK_URL", "") or ""  # holds a signature: _FILE works too
# Signed webhooks (integrations.webhooks): a subscription pauses after this many consecutive
# failed deliveries (and raises an alert); HTTP timeout per delivery.
PIM_WEBHOOK_PAUSE_AFTER_FAILURES = env_int("PIM_WEBHOOK_PAUSE_AFTER_FAILURES", 10)
PIM_WEBHOOK_TIMEOUT_SECONDS = env_int("PIM_WEBHOOK_TIMEOUT_SECONDS", 10)
# Plain-http webhook URLs are refused unless this is on (it follows DJANGO_DEBUG).
PIM_WEBHOOK_ALLOW_HTTP = env_bool("PIM_WEBHOOK_ALLOW_HTTP", DEBUG)
PIM_CHAT_TIMEOUT_SECONDS = env_int("PIM_CHAT_TIMEOUT_SECONDS", 10)

# PIM behaviour.
PIM_STEP_UP_WINDOW = timedelta(seconds=env_int("PIM_STEP_UP_WINDOW_SECONDS", 300))
PIM_MFA_ISSUER = os.environ.get("PIM_MFA_ISSUER", "PIM Portal")
PIM_RECOVERY_CODE_COUNT = 10
PIM_MIN_ASSIGNMENT_DURATION = timedelta(minutes=5)
# The two-person rule (README "The two-person rule"): an assignment a person makes for
# themselves, and loosening a privileged role's settings, wait for a second PIM Administrator's
# approval, who has this long to decide (then the change expires).
PIM_TWO_PERSON_RULE = env_bool("PIM_TWO_PERSON_RULE", True)
PIM_TWO_PERSON_DECIDE_HOURS = env_int("PIM_TWO_PERSON_DECIDE_HOURS", 24)
PIM_MAX_TEXT_LENGTH = 2000
# Refused attempts (self-approval, deciding without being an approver, an administrative action
# without the permission) are audited; at most this many per person and minute, then one
# "suppressed" event (audit.refusals).
PIM_AUDIT_REFUSALS_PER_MINUTE = env_int("PIM_AUDIT_REFUSALS_PER_MINUTE", 10)

# REST API (api/). Throttles count in the "api_throttle" cache: Redis when REDIS_URL is set, so
# every web process counts together; the throttles let requests through if it is down.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "api_throttle": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "pim",
            "OPTIONS": REDIS_SOCKET_OPTIONS,
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "api-throttle"}
    ),
    # audit.refusals counts each person's refused attempts per minute here (shared, like the
    # throttles); with it down, every refusal is recorded.
    "refusals": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "pim",
            "OPTIONS": REDIS_SOCKET_OPTIONS,
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "refusals"}
    ),
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.ApiTokenAuthentication",
        "api.authentication.VerifiedSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "api.schema.PortalAutoSchema",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "activation": os.environ.get("PIM_API_ACTIVATION_RATE", "20/hour"),
        "totp": os.environ.get("PIM_API_TOTP_RATE", "10/minute"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PIM Portal API",
    "DESCRIPTION": "Privileged Identity Management: roles, eligibilities, just-in-time activation, "
    "approvals, the audit log and an authorization check for services. Errors always read "
    '`{"error": {"code", "message", "fields"}}`.',
    "VERSION": "1",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RoleKindEnum": "roles.models.Role.Kind",
        "AuthenticationStrengthEnum": "roles.models.AuthenticationStrength",
        "RequestKindEnum": "activations.models.ActivationRequest.Kind",
        # Two choice sets share the field name "status": the activation's keeps StatusEnum.
        "StatusEnum": "activations.models.ActivationRequest.Status",
        "AlertStatusEnum": "alerts.models.Alert.Status",
        # Two choice sets share the field name "decision": an approver's and a reviewer's.
        "DecisionEnum": "activations.models.Approval.Decision",
        "ReviewDecisionEnum": "reviews.models.ReviewItem.Decision",
    },
}

# django-otp: exponential back-off after wrong codes (1 s, 2 s, 4 s, ...).
OTP_TOTP_ISSUER = PIM_MFA_ISSUER
OTP_TOTP_THROTTLE_FACTOR = env_int("PIM_OTP_THROTTLE_FACTOR", 1)
OTP_STATIC_THROTTLE_FACTOR = env_int("PIM_OTP_THROTTLE_FACTOR", 1)

# Operations (README "Production"): /readyz's limits and who may read /metrics.
# /readyz fails when beat's heartbeat (the "beat-heartbeat" job, every 60 s) is older than this;
# 0 turns the check off (a deployment that runs run_periodic from cron less often than that).
PIM_READY_BEAT_MAX_AGE_SECONDS = env_int("PIM_READY_BEAT_MAX_AGE_SECONDS", 180)
# ... and when an outbox's oldest pending row has waited longer than this.
PIM_READY_OUTBOX_MAX_AGE_SECONDS = env_int("PIM_READY_OUTBOX_MAX_AGE_SECONDS", 900)
# /metrics answers a request with "Authorization: Bearer <PIM_METRICS_TOKEN>", or one from these
# addresses or networks (REMOTE_ADDR); with neither set, nobody.
PIM_METRICS_TOKEN = env_str("PIM_METRICS_TOKEN", "") or ""
PIM_METRICS_ALLOWED_NETWORKS = env_networks("PIM_METRICS_ALLOWED_ADDRESSES")

# Logs go to standard error: JSON lines (one object per line: time, level, logger, message,
# request_id, and for each request method, path, status, duration_ms, user_id) unless DEBUG or
# PIM_LOG_FORMAT=plain. Never a query string, password, code or token (tests/test_logs.py).
PIM_LOG_FORMAT = os.environ.get("PIM_LOG_FORMAT", "plain" if DEBUG else "json")
if PIM_LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured(f"PIM_LOG_FORMAT must be json or plain, not {PIM_LOG_FORMAT!r}")
# Passkeys (django-otp-webauthn), a second factor only: the portal's own views run the
# ceremonies (accounts.views_passkeys), never the library's passwordless sign-in. The relying
# party is the portal's host name by default; a passkey works only for the RP id it was made for.
_BASE = urlsplit(PIM_BASE_URL)


def _webauthn_default_origin() -> tuple[str, str]:
    """The RP id and origin PIM_BASE_URL implies. WebAuthn takes no IP address as RP id, so a
    development URL on 127.0.0.1 or ::1 means http://localhost on the same port."""
    host = _BASE.hostname or "localhost"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host, f"{_BASE.scheme}://{_BASE.netloc}"
    return "localhost", f"{_BASE.scheme}://localhost" + (f":{_BASE.port}" if _BASE.port else "")


PIM_WEBAUTHN_RP_ID = os.environ.get("PIM_WEBAUTHN_RP_ID", "") or _webauthn_default_origin()[0]
PIM_WEBAUTHN_RP_NAME = os.environ.get("PIM_WEBAUTHN_RP_NAME", "") or PIM_MFA_ISSUER
PIM_WEBAUTHN_ALLOWED_ORIGINS = env_list("PIM_WEBAUTHN_ALLOWED_ORIGINS") or [_webauthn_default_origin()[1]]
OTP_WEBAUTHN_RP_ID = PIM_WEBAUTHN_RP_ID
OTP_WEBAUTHN_RP_NAME = PIM_WEBAUTHN_RP_NAME
OTP_WEBAUTHN_ALLOWED_ORIGINS = PIM_WEBAUTHN_ALLOWED_ORIGINS
OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = False
OTP_WEBAUTHN_TIMEOUT_SECONDS = 120

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "pim_portal.middleware.RequestIdLogFilter"},
        "no_query_string": {"()": "pim_portal.middleware.QueryStringRedactFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",  # ISO 8601, UTC
            # Django's request loggers attach the request, whose text is its full URL (with an
            # approval link's token): never written, the line has the path already.
            "reserved_attrs": [*JSON_LOG_RESERVED_ATTRS, "request", "taskName"],
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": PIM_LOG_FORMAT,
            "filters": ["request_id"],
        },
    },
    "loggers": {
        # django-axes logs every sign-in at INFO; its warnings (lockouts) are what matter.
        "axes": {"level": "WARNING"},
        # The development server's request lines, without their query strings.
        "django.server": {
            "handlers": ["console"],
            "level": "INFO",
            "propagate": False,
            "filters": ["no_query_string"],
        },
    },
    "root": {"handlers": ["console"], "level": os.environ.get("PIM_LOG_LEVEL", "INFO")},
}

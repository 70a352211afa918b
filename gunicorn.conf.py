"""gunicorn's configuration for the portal's web processes (README "Production").

    gunicorn -c gunicorn.conf.py pim_portal.wsgi

Everything comes from the environment, so two instances can share a host (each with its own
PIM_WEB_BIND): no control socket, no pid file, no shared metrics folder.
"""

import ipaddress
import os
import shutil
import tempfile


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value else default


def _bool(name: str) -> bool:
    return os.environ.get(name, "").lower() in {"1", "true", "yes", "on"}


wsgi_app = "pim_portal.wsgi:application"
bind = [item.strip() for item in os.environ.get("PIM_WEB_BIND", "127.0.0.1:8000").split(",") if item.strip()]
# Synchronous workers: each request holds one. 2 × cores + 1 is gunicorn's advice.
workers = _int("PIM_WEB_WORKERS", 2 * (os.cpu_count() or 1) + 1)
threads = _int("PIM_WEB_THREADS", 1)
timeout = _int("PIM_WEB_TIMEOUT", 30)  # a worker silent for this long is killed and replaced
# On SIGTERM (a deploy, a restart) each worker finishes the requests in hand for up to this long.
graceful_timeout = _int("PIM_WEB_GRACEFUL_TIMEOUT", 30)
keepalive = _int("PIM_WEB_KEEPALIVE", 5)
# Recycle workers now and then (with jitter, so they never all restart at once).
max_requests = _int("PIM_WEB_MAX_REQUESTS", 2000)
max_requests_jitter = max_requests // 10
proc_name = os.environ.get("PIM_WEB_NAME", "pim-portal-web")

# Two instances on one host: gunicorn's control socket (one fixed path per user) is off, there is
# no pid file, and the workers' heartbeat files go to memory where there is some (containers).
control_socket_disable = True
pidfile = None
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - gunicorn's advice

# Who may tell gunicorn the client's scheme and address (X-Forwarded-*): nobody, unless the
# portal is behind a proxy (PIM_BEHIND_PROXY), then the proxies of PIM_TRUSTED_PROXIES (the same
# list that may pass on X-Request-ID), or only a proxy on this host when that list is empty.
if _bool("PIM_BEHIND_PROXY"):
    _proxies = [
        str(ipaddress.ip_network(item.strip(), strict=False))
        for item in os.environ.get("PIM_TRUSTED_PROXIES", "").split(",")
        if item.strip()
    ]
    forwarded_allow_ips = ",".join(_proxies) or "127.0.0.1,::1"
else:
    forwarded_allow_ips = ""

# Each request is logged once, by the portal (JSON in production, with its request id), so
# gunicorn's own access log is off; its error log goes to standard error.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("PIM_LOG_LEVEL", "info").lower()
# gunicorn's own lines as JSON too when the portal's are (PIM_LOG_FORMAT, json unless DEBUG).
_json_logs = os.environ.get("PIM_LOG_FORMAT", "plain" if _bool("DJANGO_DEBUG") else "json") == "json"
if _json_logs:
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "format": "%(levelname)s %(name)s %(message)s",
                "rename_fields": {"levelname": "level", "name": "logger"},
                "timestamp": "time",
            }
        },
        "handlers": {
            "error_console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": loglevel.upper(), "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": loglevel.upper(), "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {"level": loglevel.upper(), "handlers": [], "propagate": False},
        },
    }


def on_starting(server):
    """Before the workers fork: a metrics folder of this instance's own (prometheus-client's
    multiprocess mode adds up the request metrics of every worker of the instance)."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        # Given by the operator: start from an empty folder (the files of a previous run would
        # add up with this one's). One folder per instance.
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):
            if name.endswith(".db"):
                os.remove(os.path.join(folder, name))
    else:
        folder = tempfile.mkdtemp(prefix="pim-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        server._pim_metrics_dir = folder  # removed on exit


def child_exit(server, worker):
    """A worker that exits leaves its live gauges behind unless told (prometheus-client)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    folder = getattr(server, "_pim_metrics_dir", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)

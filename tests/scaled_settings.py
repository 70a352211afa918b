"""Settings for the processes of the scaled-out layout test (tests/test_scaled_out.py): two
gunicorn instances, two Celery workers and beat, on the test's PostgreSQL database and Redis.

The test settings with everything that makes them a test undone where the processes need the
real thing: tasks go to the broker, email goes over SMTP to the test's sink, and the directory
back end records each call in a file. A queue and cache prefix of the run's own keep other
tests on the same Redis database away. Beat's entries are due every few seconds.
"""

import os

from tests.settings import *  # noqa: F403

RUN = os.environ["PIM_SCALED_RUN"]  # a fresh id per test run
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_DEFAULT_QUEUE = f"pim-scaled-{RUN}"
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = int(os.environ["PIM_SCALED_SMTP_PORT"])
PIM_DIRECTORY_BACKEND = "tests.scaled_support.RecordingDirectoryBackend"
for _cache in ("api_throttle", "refusals"):
    CACHES[_cache] = {**CACHES[_cache], "KEY_PREFIX": f"pim-scaled-{RUN}"}  # noqa: F405
CELERY_BEAT_SCHEDULE_FILENAME = os.path.join(os.environ["PIM_DATA_DIR"], "celerybeat-schedule")
FAST = {
    "beat-heartbeat": 2.0,
    "activations-expire-due": 2.0,
    "activations-timeout-due": 5.0,
    "directory-outbox-drain": 3.0,
    "email-outbox-drain": 3.0,
}
CELERY_BEAT_SCHEDULE = {
    name: {**CELERY_BEAT_SCHEDULE[name], "schedule": seconds}  # noqa: F405
    for name, seconds in FAST.items()
}
PIM_READY_BEAT_MAX_AGE_SECONDS = 3 * 2  # three ticks of the heartbeat above

"""Settings for the Celery beat process that tests/test_celery_integration.py starts.

The test settings, with tasks always published to the broker (beat must never run them
itself), and the expiry and timeout entries of the real beat schedule due every second so the
test does not wait a minute. The other entries are left out: the test's worker would run them
against the test database for nothing.
"""

from tests.settings import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = False
FAST_ENTRIES = ("activations-expire-due", "activations-timeout-due")
CELERY_BEAT_SCHEDULE = {
    name: {**CELERY_BEAT_SCHEDULE[name], "schedule": 1.0}  # noqa: F405
    for name in FAST_ENTRIES
}

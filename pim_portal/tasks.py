from celery import shared_task


@shared_task(ignore_result=True)
def beat_heartbeat() -> int:
    """Beat's heartbeat: does nothing; its recorded run (pim_portal.jobs) is the heartbeat that
    /readyz checks. Late or missing when beat, the broker or every worker is down."""
    return 1

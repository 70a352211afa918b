from celery import shared_task

from . import directory_services


@shared_task(ignore_result=True)
def directory_operation_run(operation_id: int) -> None:
    directory_services.directory_operation_run(operation_id=operation_id)


@shared_task(ignore_result=True)
def directory_operations_run(operation_ids: list[int]) -> int:
    return directory_services.directory_operations_run(operation_ids=operation_ids)


@shared_task(ignore_result=True)
def directory_outbox_drain() -> int:
    return directory_services.directory_outbox_drain()


@shared_task(ignore_result=True)
def assignment_expire_due() -> int:
    from . import jobs

    return jobs.assignment_expire_due()


@shared_task(ignore_result=True)
def pending_change_expire_due() -> int:
    from . import two_person

    return two_person.pending_change_expire_due()


@shared_task(ignore_result=True)
def directory_effect_check(operation_id: int) -> None:
    directory_services.directory_effect_check(operation_id=operation_id)


@shared_task(ignore_result=True)
def directory_effects_check_due() -> int:
    return directory_services.directory_effects_check_due()

"""Account services, by sub-domain: people (users: sign-in records, creation, profile,
deactivation), groups and their members (groups), MFA enrolment and verification (mfa), and
what they share (shared). Import them from here.
"""

from .groups import group_create, group_member_add, group_member_remove, group_update
from .mfa import (
    CODE_FORMAT_MESSAGE,
    MAX_CODE_INPUT,
    RECOVERY_ALPHABET,
    RECOVERY_CODE_LENGTH,
    RECOVERY_DEVICE_NAME,
    TOTP_DEVICE_NAME,
    MfaError,
    mfa_code_normalize,
    mfa_device_remove,
    mfa_enrolment_confirm,
    mfa_enrolment_start,
    mfa_recovery_codes_regenerate,
    mfa_verify_code,
)
from .shared import AccountError
from .users import (
    USER_EDITABLE_FIELDS,
    time_zones,
    user_create,
    user_deactivate,
    user_reactivate,
    user_sign_in_failure_record,
    user_sign_in_record,
    user_time_zone_set,
    user_update,
)

__all__ = [
    "AccountError",
    "CODE_FORMAT_MESSAGE",
    "MAX_CODE_INPUT",
    "MfaError",
    "RECOVERY_ALPHABET",
    "RECOVERY_CODE_LENGTH",
    "RECOVERY_DEVICE_NAME",
    "TOTP_DEVICE_NAME",
    "USER_EDITABLE_FIELDS",
    "group_create",
    "group_member_add",
    "group_member_remove",
    "group_update",
    "mfa_code_normalize",
    "mfa_device_remove",
    "mfa_enrolment_confirm",
    "mfa_enrolment_start",
    "mfa_recovery_codes_regenerate",
    "mfa_verify_code",
    "time_zones",
    "user_create",
    "user_deactivate",
    "user_reactivate",
    "user_sign_in_failure_record",
    "user_sign_in_record",
    "user_time_zone_set",
    "user_update",
]

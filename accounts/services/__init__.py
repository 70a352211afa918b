"""Account services, by sub-domain: people (users: sign-in records, creation, profile,
deactivation), groups and their members (groups), MFA enrolment and verification (mfa),
passkeys (passkeys), and
what they share (shared). Import them from here.
"""

from .groups import group_create, group_member_add, group_member_remove, group_update
from .invitations import (
    invitation_token_generator,
    invitation_url,
    user_invitation_accept,
    user_invitation_resend,
    user_invite,
)
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
    mfa_reset,
    mfa_verify_code,
)
from .passkeys import (
    PASSKEY_NAME_MAX,
    passkey_authentication_begin,
    passkey_name_clean,
    passkey_registration_begin,
    passkey_registration_complete,
    passkey_remove,
    passkey_verify,
)
from .shared import AccountError
from .sign_ins import users_directory_sign_ins_record
from .sso import SsoRefused, sso_identity_key, sso_sign_in_resolve
from .users import (
    USER_EDITABLE_FIELDS,
    user_break_glass_request_record,
    user_create,
    user_deactivate,
    user_reactivate,
    user_sign_in_failure_record,
    user_sign_in_record,
    user_update,
)

__all__ = [
    "users_directory_sign_ins_record",
    "AccountError",
    "CODE_FORMAT_MESSAGE",
    "MAX_CODE_INPUT",
    "MfaError",
    "PASSKEY_NAME_MAX",
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
    "mfa_reset",
    "mfa_verify_code",
    "SsoRefused",
    "sso_identity_key",
    "sso_sign_in_resolve",
    "user_break_glass_request_record",
    "invitation_token_generator",
    "invitation_url",
    "user_invitation_accept",
    "user_invitation_resend",
    "user_invite",
    "passkey_authentication_begin",
    "passkey_name_clean",
    "passkey_registration_begin",
    "passkey_registration_complete",
    "passkey_remove",
    "passkey_verify",
    "user_create",
    "user_deactivate",
    "user_reactivate",
    "user_sign_in_failure_record",
    "user_sign_in_record",
    "user_update",
]

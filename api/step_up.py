"""POST /api/v1/step-up/: a token's holder proves MFA once (a code, or a passkey assertion) and
opens a step-up window for that token: for PIM_STEP_UP_WINDOW_SECONDS, decisions and
activations made with it need no code of their own (automation and bulk work: one approver
deciding fifty requests). Codes stay single use; a passkey challenge is too. The window
records its factor, so a code's window does not satisfy a phishing-resistant role."""

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.services import MfaError, passkey_authentication_begin, passkey_verify
from common.step_up import Factor, device_factor, verification_is_fresh

from .models import ApiToken
from .serializers import PasskeyOptionsSerializer, StepUpOpenInputSerializer, StepUpWindowSerializer
from .services import (
    TokenError,
    api_step_up_challenge_store,
    api_step_up_challenge_take,
    api_step_up_expires_at,
    api_step_up_open,
)
from .views import _valid, code_attempt_allowed, step_up

TOKEN_ONLY = "The step-up window belongs to an API token: call this with `Authorization: Bearer pim_…`. A portal session steps up on the portal's own Confirm it's you page."  # noqa: E501, S105 - a message, not a secret


def _token(request) -> ApiToken:
    if not isinstance(request.auth, ApiToken):
        raise PermissionDenied(TOKEN_ONLY)
    return request.auth


def _window(token: ApiToken) -> dict:
    token.refresh_from_db(fields=["step_up_at", "step_up_factor"])
    return {
        "open": verification_is_fresh(token.step_up_at),
        "factor": token.step_up_factor or None,
        "opened_at": token.step_up_at,
        "expires_at": api_step_up_expires_at(token),
    }


class StepUpView(APIView):
    """The calling token's step-up window."""

    @extend_schema(
        summary="This token's step-up window",
        description="Whether this token's step-up window is open, since when, until when and what opened it.",
        responses={200: StepUpWindowSerializer},
    )
    def get(self, request):
        return Response(StepUpWindowSerializer(_window(_token(request))).data)

    @extend_schema(
        summary="Open a step-up window for this token (a code or a passkey)",
        description=(
            "Checks one MFA proof of the token's user, either `otp_code` (a fresh code from the "
            "authenticator app, or a recovery code; each code works once, and wrong codes back off) "
            "or `passkey` (an assertion for the challenge of `POST /api/v1/step-up/passkey-options/`, "
            "made at one of the portal's allowed origins). Then, for `PIM_STEP_UP_WINDOW_SECONDS`, "
            "activations and approval decisions made **with this token** need no `otp_code`; other "
            "tokens of the same person are not affected. A code's window does not satisfy a role whose "
            "authentication strength is phishing-resistant: that takes a passkey's window (or a "
            "passkey step-up in the portal). A new step-up replaces the window (and its factor). "
            "Audited as `api.step_up_opened`."
        ),
        request=StepUpOpenInputSerializer,
        responses={
            200: StepUpWindowSerializer,
            403: OpenApiResponse(description="Not called with an API token."),
            429: OpenApiResponse(description="Too many attempts: try again later."),
        },
    )
    def post(self, request):
        token = _token(request)
        data = _valid(StepUpOpenInputSerializer, request.data)
        if data.get("otp_code"):
            verified_at, factor = step_up(request, data["otp_code"])  # checks and throttles the code
        else:
            code_attempt_allowed(request)
            state = api_step_up_challenge_take(token=token)
            try:
                device = passkey_verify(
                    user=request.user, request=request._request, state=state, data=data["passkey"]
                )
            except MfaError as error:
                raise ValidationError({"passkey": error.messages}) from None
            factor = device_factor(device)
        try:
            api_step_up_open(token=token, factor=str(factor or Factor.TOTP), now=timezone.now())
        except TokenError as error:
            raise PermissionDenied(error.messages[0]) from None
        return Response(StepUpWindowSerializer(_window(token)).data)


class PasskeyOptionsView(APIView):
    """A passkey challenge for this token's step-up."""

    @extend_schema(
        summary="A passkey challenge to open a step-up window",
        description=(
            "Options for `navigator.credentials.get()`: the user's own passkeys, user verification "
            "required. The challenge is kept for this token, for one answer, until the browser's "
            "time-out; asking again replaces it. Answer with `POST /api/v1/step-up/` and `passkey`."
        ),
        request=None,
        responses={
            200: PasskeyOptionsSerializer,
            403: OpenApiResponse(description="Not called with an API token."),
        },
    )
    def post(self, request):
        token = _token(request)
        try:
            options, state = passkey_authentication_begin(user=request.user, request=request._request)
        except MfaError as error:
            raise ValidationError({"passkey": error.messages}) from None
        api_step_up_challenge_store(token=token, state=state)
        return Response({"publicKey": options})

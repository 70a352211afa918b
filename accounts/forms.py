from django import forms

from .services import CODE_FORMAT_MESSAGE, MAX_CODE_INPUT, MfaError, mfa_code_normalize


class CodeForm(forms.Form):
    """One MFA code: a TOTP code or a recovery code. Checked for shape here; checked against
    the user's devices by accounts.services.mfa_verify_code."""

    otp_token = forms.CharField(
        label="Code",
        # Generous on purpose: mfa_code_normalize gives the clear message for oversized input.
        max_length=MAX_CODE_INPUT * 16,
        error_messages={"required": CODE_FORMAT_MESSAGE, "max_length": "That is far too long to be a code."},
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false", "size": 12}
        ),
    )

    def clean_otp_token(self):
        token = self.cleaned_data["otp_token"]
        try:
            mfa_code_normalize(token)
        except MfaError as error:
            raise forms.ValidationError(error.messages[0], code=error.code) from None
        return token

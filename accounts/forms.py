from typing import cast

from django import forms

from .models import User
from .services import CODE_FORMAT_MESSAGE, MAX_CODE_INPUT, MfaError, mfa_code_normalize, time_zones


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


class ManagerField(forms.CharField):
    """A manager by username (blank: none), resolved to a person."""

    def clean(self, value):
        username = super().clean(value).strip()
        if not username:
            return None
        manager = User.objects.filter(username__iexact=username).first()
        if manager is None:
            raise forms.ValidationError(f"There is nobody with the username {username}.")
        return manager


class InviteForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="What they sign in with (a password sign-in).")
    email = forms.EmailField(max_length=254, help_text="Where the invitation goes.")
    display_name = forms.CharField(max_length=256, required=False)
    manager = ManagerField(max_length=150, required=False, help_text="The manager's username (optional).")
    kind = forms.ChoiceField(
        choices=[
            ("password", "Password and authenticator app (they choose their password)"),
            ("sso", "Single sign-on only (they link their organisation account)"),
        ],
        initial="password",
        widget=forms.RadioSelect,
        label="How they sign in",
    )


class PersonForm(forms.Form):
    display_name = forms.CharField(max_length=256, required=False)
    manager = ManagerField(max_length=150, required=False, help_text="The manager's username (blank: none).")


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class InvitationPasswordForm(forms.Form):
    password1 = forms.CharField(
        label="New password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password2 = forms.CharField(
        label="The same again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password1") and cleaned.get("password1") != cleaned.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return cleaned


class TimeZoneForm(forms.Form):
    """The time zone the portal shows one's times in."""

    time_zone = forms.ChoiceField(
        label="Time zone",
        help_text="Times in the portal are shown in this zone; they are stored in UTC.",
        error_messages={"invalid_choice": "Choose a time zone from the list (such as Europe/Paris)."},
    )
    # Set by static/js/time-zone.js: the browser's zone, recorded only if none is chosen yet.
    detected = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["time_zone"]).choices = [
            (name, name) for name in sorted(time_zones())
        ]

"""Forms of the roles pages."""

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from common.text import clean_text


class ChangeDecisionForm(forms.Form):
    """A second PIM Administrator approves or rejects a pending change (the session's fresh
    step-up is the MFA confirmation: the page asks for a code first when it is stale)."""

    decision = forms.ChoiceField(
        choices=[("approve", "Approve"), ("reject", "Reject")],
        widget=forms.HiddenInput,
        error_messages={
            "required": "Choose Approve or Reject.",
            "invalid_choice": "Choose Approve or Reject.",
        },
    )
    reason = forms.CharField(
        label="Reason",
        required=False,
        max_length=settings.PIM_MAX_TEXT_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required to reject; the proposer will read it.",
        error_messages={"max_length": f"The reason is at most {settings.PIM_MAX_TEXT_LENGTH} characters."},
    )

    def clean_reason(self):
        try:
            return clean_text(self.cleaned_data["reason"], field="reason")
        except ValidationError as error:
            raise forms.ValidationError(error.messages) from None

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("decision") == "reject" and "reason" in cleaned and not cleaned["reason"]:
            self.add_error("reason", "A reason is required to reject a change.")
        return cleaned

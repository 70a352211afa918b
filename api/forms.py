from django import forms

# Days a token made on the profile page lives; "never" is for tokens that a person revokes
# by hand (service accounts get theirs from manage.py api_token).
EXPIRY_CHOICES = [("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("365", "1 year"), ("", "Never")]


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What the token is for, e.g. “deploy script on build-01”.",
        widget=forms.TextInput(attrs={"autofocus": True}),
    )
    expires_in_days = forms.ChoiceField(
        label="Expires after", choices=EXPIRY_CHOICES, initial="30", required=False
    )

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        from . import checks, signals  # noqa: F401  (sign-in settings checks, sign-in auditing)

from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations (webhooks, Slack, Teams)"

    def ready(self) -> None:
        from alerts.rules import kind_register
        from audit.registry import event_hook_register

        from . import outbox, webhooks

        # Rows for every audit event, written in the event's own transaction.
        event_hook_register(outbox.audit_events_written)
        kind_register("webhook_subscription_paused", webhooks.PAUSED_ALERT)

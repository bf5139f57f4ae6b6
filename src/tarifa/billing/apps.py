from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "tarifa.billing"
    label = "billing"
    verbose_name = "Billing"

    def ready(self):
        # Event handlers must be registered in every process that emits (web, CLI, worker),
        # so that emit() enqueues their job in the emitting transaction.
        from . import handlers  # noqa: F401
